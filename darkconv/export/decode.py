"""Darknet's box decoding as torch ops, so that it can live inside an exported graph.

Each head's output (already activated by the layer, as Darknet's ``l.output``) becomes
``boxes (N, K, 4)``, corners ``x1 y1 x2 y2`` as fractions of the network input, and
``scores (N, K, classes)`` = objectness x class probability.  K runs over every candidate box in
Darknet's array order (``get_network_boxes``): heads in layer order; yolo cells outer, anchors
inner; region anchors outer; detection ``cell*n + anchor``.  Nothing is thresholded here: Darknet's
``> thresh`` tests happen in NMS (or in the caller).

The letterbox correction (``correct_yolo_boxes``) is left out: the graph does not know the image
size.  :func:`undo_letterbox` is that correction, for callers (and tests) that need it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from darkconv.apps.decode import Head
from darkconv.errors import UnsupportedError

__all__ = ["DecodeHeads", "decoded_index", "model_heads", "prob_classes", "undo_letterbox"]

#: the heads --decode knows (Gaussian_yolo's layout, with its sigmas, is not decoded)
DECODED = ("yolo", "region", "detection")


def model_heads(model: Any, network: Any) -> list[Head]:
    """The heads ``model.forward`` returns, in layer order, as decoding parameters."""
    layers = [network.layers[i] for i in getattr(model, "heads", ())]
    if not layers:
        raise UnsupportedError("--decode: the network has no [yolo], [region] or [detection]")
    other = [f"{la.index} ([{la.type}])" for la in layers if la.type not in DECODED]
    if other:
        raise UnsupportedError(f"--decode: layer {', '.join(other)} cannot be decoded")
    return [Head.from_layer(la) for la in layers]


def _last_layer_classes(network: Any, heads: Sequence[Head]) -> int:
    value = network.layers[-1].options.get("classes")
    return int(value) if value is not None else heads[-1].classes


#: the length of every prob array, per dialect: pjreddie's get_network_boxes sizes them by
#: ``net->layers[net->n-1].classes``; AlexeyAB's (network.c make_network_boxes) by the first
#: head's classes
PROB_CLASSES: dict[str, Callable[[Any, Sequence[Head]], int]] = {
    "pjreddie": _last_layer_classes,
    "alexeyab": lambda network, heads: heads[0].classes,
}


def prob_classes(network: Any, heads: Sequence[Head]) -> int:
    return PROB_CLASSES[getattr(network, "dialect", None) or "pjreddie"](network, heads)


def _corners(x: Tensor, y: Tensor, w: Tensor, h: Tensor) -> Tensor:
    return torch.stack([x - w / 2, y - h / 2, x + w / 2, y + h / 2], dim=-1)


def _size(t: Tensor, anchor: Tensor, scale: float, new_coords: bool) -> Tensor:
    """A box side from its raw output.  get_yolo_box / get_region_box: ``exp(t)*anchor/scale``
    computed in double and stored as float; AlexeyAB's ``new_coords=1``: ``t*t*4*anchor/scale``
    in float (the conv before the head already applied the logistic)."""
    if new_coords:
        return t * t * 4 * anchor / scale
    return (torch.exp(t.double()) * anchor.double() / scale).to(t.dtype)


class _Grid(nn.Module):
    """What the ``[yolo]`` and ``[region]`` decoders share: ``n`` anchors on ``h x w`` cells, the
    head's class count ``nc`` and the exported table's ``classes``; per box (in the decoder's
    order) its cell's ``col``/``row`` and its anchor."""

    col: Tensor
    row: Tensor
    anchors: Tensor

    def __init__(self, head: Head, classes: int) -> None:
        super().__init__()
        self.n, self.h, self.w = head.n, head.h, head.w
        self.nc, self.classes = head.classes, classes

    def _centers(self, a: Tensor) -> tuple[Tensor, Tensor]:
        """Box centres relative to the image: ``(col + out_x)/w``, ``(row + out_y)/h``."""
        dt = a.dtype
        return (self.col.to(dt) + a[..., 0]) / self.w, (self.row.to(dt) + a[..., 1]) / self.h


class _Yolo(_Grid):
    """``get_yolo_detections`` without the objectness test: cell ``row*w + col`` outer, anchor
    inner.  x, y: ``(col + out_x)/l.w`` (AlexeyAB's ``scale_x_y`` is already applied to the
    output by the layer); w, h relative to the network size."""

    def __init__(self, head: Head, classes: int, net_w: int, net_h: int) -> None:
        super().__init__(head, classes)
        self.net_w, self.net_h = net_w, net_h
        self.new_coords = bool(getattr(head, "new_coords", 0))
        rows, cols = torch.meshgrid(torch.arange(head.h), torch.arange(head.w), indexing="ij")
        # (cells*n,) in Darknet's order: cell outer, anchor inner
        self.register_buffer(
            "col", cols.reshape(-1, 1).expand(-1, head.n).reshape(-1).float(), False
        )
        self.register_buffer(
            "row", rows.reshape(-1, 1).expand(-1, head.n).reshape(-1).float(), False
        )
        anchors = torch.tensor([head.anchor(m) for m in head.mask], dtype=torch.float32)
        self.register_buffer("anchors", anchors.repeat(head.h * head.w, 1), False)

    def forward(self, out: Tensor) -> tuple[Tensor, Tensor]:
        b = out.shape[0]
        entries = 5 + self.nc
        a = out.reshape(b, self.n, entries, self.h * self.w).permute(0, 3, 1, 2)
        a = a.reshape(b, self.h * self.w * self.n, entries)
        dt = a.dtype
        x, y = self._centers(a)
        w = _size(a[..., 2], self.anchors[:, 0].to(dt), self.net_w, self.new_coords)
        h = _size(a[..., 3], self.anchors[:, 1].to(dt), self.net_h, self.new_coords)
        scores = a[..., 4:5] * a[..., 5 : 5 + min(self.nc, self.classes)]
        return _corners(x, y, w, h), _pad_classes(scores, self.classes)


class _Region(_Grid):
    """``get_region_detections`` (no tree) without the objectness test: anchor-major
    (``n*w*h + cell``), anchors in grid cells, objectness 1 with ``background``."""

    def __init__(self, head: Head, classes: int) -> None:
        if head.tree:
            raise UnsupportedError(f"layer {head.index}: a [region] with tree= is not supported")
        super().__init__(head, classes)
        self.coords, self.background = head.coords, bool(head.background)
        cells = head.h * head.w
        rows, cols = torch.meshgrid(torch.arange(head.h), torch.arange(head.w), indexing="ij")
        self.register_buffer("col", cols.reshape(-1).repeat(head.n).float(), False)
        self.register_buffer("row", rows.reshape(-1).repeat(head.n).float(), False)
        anchors = torch.tensor([head.anchor(k) for k in range(head.n)], dtype=torch.float32)
        self.register_buffer("anchors", anchors.repeat_interleave(cells, dim=0), False)

    def forward(self, out: Tensor) -> tuple[Tensor, Tensor]:
        b = out.shape[0]
        entries = self.coords + self.nc + 1
        a = out.reshape(b, self.n, entries, self.h * self.w).permute(0, 1, 3, 2)
        a = a.reshape(b, self.n * self.h * self.w, entries)
        dt = a.dtype
        x, y = self._centers(a)
        w = _size(a[..., 2], self.anchors[:, 0].to(dt), self.w, False)
        h = _size(a[..., 3], self.anchors[:, 1].to(dt), self.h, False)
        c0 = self.coords + 1
        probs = a[..., c0 : c0 + min(self.nc, self.classes)]
        scores = probs if self.background else a[..., self.coords : c0] * probs
        return _corners(x, y, w, h), _pad_classes(scores, self.classes)


class _Detection(nn.Module):
    """``get_detection_detections`` (yolov1) with ``w = h = 1`` (relative boxes, as
    ``darknet yolo test``): ``[cells][classes]`` scores, ``[cells][n]`` confidences, then
    ``[cells][n][4]`` boxes; ``w = b_w^(sqrt ? 2 : 1)``; score = confidence x class."""

    col: Tensor
    row: Tensor
    cell: Tensor

    def __init__(self, head: Head, classes: int) -> None:
        super().__init__()
        self.side, self.n, self.nc, self.classes = head.side, head.n, head.classes, classes
        self.power = 2.0 if head.sqrt else 1.0
        cells = head.side * head.side
        cell = torch.arange(cells).repeat_interleave(head.n)
        self.register_buffer("col", (cell % head.side).float(), False)
        self.register_buffer("row", (cell // head.side).float(), False)
        self.register_buffer("cell", cell, False)

    def forward(self, out: Tensor) -> tuple[Tensor, Tensor]:
        b = out.shape[0]
        cells = self.side * self.side
        flat = out.reshape(b, -1)
        cls = flat[:, : cells * self.nc].reshape(b, cells, self.nc)
        conf = flat[:, cells * self.nc : cells * (self.nc + self.n)].reshape(b, cells * self.n, 1)
        start = cells * (self.nc + self.n)
        box = flat[:, start : start + cells * self.n * 4].reshape(b, cells * self.n, 4)
        dt = box.dtype
        x = (box[..., 0] + self.col.to(dt)) / self.side
        y = (box[..., 1] + self.row.to(dt)) / self.side
        w, h = box[..., 2], box[..., 3]
        if self.power != 1.0:
            w, h = w * w, h * h
        scores = conf * cls[:, self.cell, : min(self.nc, self.classes)]
        return _corners(x, y, w, h), _pad_classes(scores, self.classes)


def _pad_classes(scores: Tensor, classes: int) -> Tensor:
    # Darknet sizes every prob array by one layer's classes; a head with fewer leaves zeros.
    missing = classes - scores.shape[-1]
    if missing <= 0:
        return scores
    return torch.cat([scores, scores.new_zeros(scores.shape[:-1] + (missing,))], dim=-1)


def _decoder(head: Head, classes: int, net_w: int, net_h: int) -> nn.Module:
    if head.type == "yolo":
        return _Yolo(head, classes, net_w, net_h)
    if head.type == "region":
        return _Region(head, classes)
    if head.type == "detection":
        return _Detection(head, classes)
    raise UnsupportedError(f"layer {head.index}: {head.type} is not a detection head")


class DecodeHeads(nn.Module):
    """Every head of a network decoded and concatenated in Darknet's order.

    ``forward(outputs)`` takes the head outputs in layer order (what ``DarknetModel.forward``
    returns for a detector) and gives ``(boxes (N, K, 4), scores (N, K, classes))``.
    """

    def __init__(self, heads: Sequence[Head], classes: int, net_w: int, net_h: int) -> None:
        super().__init__()
        if not heads:
            raise UnsupportedError("--decode: the network has no [yolo], [region] or [detection]")
        self.heads = tuple(heads)
        self.decoders = nn.ModuleList(_decoder(h, classes, net_w, net_h) for h in heads)

    def forward(self, outputs: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        parts = [dec(out) for dec, out in zip(self.decoders, outputs, strict=True)]
        if len(parts) == 1:
            return parts[0]
        boxes = torch.cat([p[0] for p in parts], dim=1)
        scores = torch.cat([p[1] for p in parts], dim=1)
        return boxes, scores


def head_sizes(heads: Sequence[Head]) -> list[int]:
    """How many candidate boxes each head contributes to K."""
    return [h.side * h.side * h.n if h.type == "detection" else h.h * h.w * h.n for h in heads]


def decoded_index(heads: Sequence[Head], layer: int, row: int, col: int, anchor: int) -> int:
    """The K index of Darknet's box at (head ``layer``, ``row``, ``col``, ``anchor``)."""
    offset = 0
    for head, size in zip(heads, head_sizes(heads), strict=True):
        if head.index == layer:
            if head.type == "yolo":
                return offset + (row * head.w + col) * head.n + anchor
            if head.type == "region":
                return offset + anchor * head.h * head.w + row * head.w + col
            return offset + (row * head.side + col) * head.n + anchor
        offset += size
    raise ValueError(f"layer {layer} is not a head")


def undo_letterbox(
    boxes: NDArray[np.float32], im_w: int, im_h: int, net_w: int, net_h: int
) -> NDArray[np.float64]:
    """``correct_yolo_boxes`` on corner boxes (..., 4): from fractions of the letterboxed network
    input to fractions of the original image (same geometry as ``letterbox_image``)."""
    from darkconv.apps.image import letterbox_geometry

    geo = letterbox_geometry(im_w, im_h, net_w, net_h)
    b = np.asarray(boxes, dtype=np.float64)
    ox, oy = (net_w - geo.new_w) / 2.0 / net_w, (net_h - geo.new_h) / 2.0 / net_h
    sx, sy = geo.new_w / net_w, geo.new_h / net_h
    out = np.empty_like(b)
    out[..., 0::2] = (b[..., 0::2] - ox) / sx
    out[..., 1::2] = (b[..., 1::2] - oy) / sy
    return out
