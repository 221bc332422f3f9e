"""Box arithmetic of box.c (``box_iou``, ``box_rmse``) on tensors, and the training options of
the cost layers read with Darknet's defaults (parse_yolo, parse_region, parse_detection,
parse_cost, parse_softmax in parser.c)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from darkconv.parse.graph import Layer

__all__ = ["Boxes", "box_iou", "box_rmse", "first_valid", "layer_options", "TRAIN_OPTIONS"]

# Per layer type: training-only option -> (type, Darknet's default).  The graph keeps these as
# written (they do not change inference), so they are parsed here.
TRAIN_OPTIONS: Mapping[str, Mapping[str, tuple[str, Any]]] = {
    "softmax": {"noloss": ("int", 0)},
    "cost": {"type": ("str", "sse"), "scale": ("float", 1.0)},
    "yolo": {"ignore_thresh": ("float", 0.5), "truth_thresh": ("float", 1.0), "max": ("int", 90)},
    "region": {
        "thresh": ("float", 0.5),
        "coord_scale": ("float", 1.0),
        "object_scale": ("float", 1.0),
        "noobject_scale": ("float", 1.0),
        "class_scale": ("float", 1.0),
        "rescore": ("int", 0),
        "bias_match": ("int", 0),
        "max": ("int", 30),
    },
    "detection": {
        "coord_scale": ("float", 1.0),
        "object_scale": ("float", 1.0),
        "noobject_scale": ("float", 1.0),
        "class_scale": ("float", 1.0),
        "rescore": ("int", 0),
        "sqrt": ("int", 0),
        "forced": ("int", 0),
        "random": ("int", 0),
    },
}


def _parse(kind: str, raw: str) -> Any:
    from darkconv.train.hyper import _atof, _atoi

    return _atoi(raw) if kind == "int" else _atof(raw) if kind == "float" else raw.strip()


def layer_options(la: Layer) -> dict[str, Any]:
    """The layer's parsed options plus its training options (cfg value or Darknet's default)."""
    raw = dict(reversed(la.cfg))  # option_find: the first occurrence wins
    values = dict(la.options)
    for key, (kind, default) in TRAIN_OPTIONS.get(la.type, {}).items():
        values[key] = _parse(kind, raw[key]) if key in raw else default
    return values


class Boxes(NamedTuple):
    """Centre x, y and size w, h (Darknet's ``box``), each a tensor of the same shape."""

    x: Tensor
    y: Tensor
    w: Tensor
    h: Tensor

    @staticmethod
    def of_size(w: Tensor, h: Tensor) -> Boxes:
        z = torch.zeros_like(w * h)
        return Boxes(z, z, w + z, h + z)

    def unsqueeze(self, dim: int) -> Boxes:
        return Boxes(*(t.unsqueeze(dim) for t in self))

    def view(self, *shape: int) -> Boxes:
        return Boxes(*(t.reshape(shape) for t in self))


def _overlap(x1: Tensor, w1: Tensor, x2: Tensor, w2: Tensor) -> Tensor:
    left = torch.maximum(x1 - w1 / 2, x2 - w2 / 2)
    right = torch.minimum(x1 + w1 / 2, x2 + w2 / 2)
    return right - left


def box_iou(a: Boxes, b: Boxes) -> Tensor:
    """box_iou: intersection (0 when either overlap is negative) over union, broadcast."""
    w = _overlap(a.x, a.w, b.x, b.w)
    h = _overlap(a.y, a.h, b.y, b.h)
    inter = torch.where((w < 0) | (h < 0), torch.zeros_like(w * h), w * h)
    union = a.w * a.h + b.w * b.h - inter
    return inter / union


def box_rmse(a: Boxes, b: Boxes) -> Tensor:
    return torch.sqrt((a.x - b.x) ** 2 + (a.y - b.y) ** 2 + (a.w - b.w) ** 2 + (a.h - b.h) ** 2)


def first_valid(x: Tensor) -> Tensor:
    """Truth rows are read until the first ``x == 0`` (``if(!truth.x) break;``)."""
    return torch.cumprod((x != 0).to(torch.int32), dim=-1).bool()


def f32(v: float) -> float:
    return float(np.float32(v))
