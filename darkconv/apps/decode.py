"""Detection heads decoded exactly as Darknet's ``get_network_boxes`` (NMS: ``darkconv.apps.nms``).

The arithmetic follows the C code's types: float32 where Darknet computes in ``float``
(probabilities, box centres, IoU), double where it calls ``exp``/``pow`` or mixes in a double
literal (box sizes, ``correct_*_boxes``), rounded to float32 wherever Darknet stores a ``float``.
All threshold and NMS comparisons are float32 comparisons.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from darkconv.apps.image import letterbox_geometry
from darkconv.errors import UnsupportedError

__all__ = [
    "Boxes",
    "F32Array",
    "Head",
    "detection_boxes",
    "get_network_boxes",
]

_F32 = np.float32
F32Array = NDArray[np.float32]
#: the yolo-style heads (mask, anchors, per-anchor entry planes)
YOLO_TYPES = ("yolo", "Gaussian_yolo", "gaussian_yolo")


@dataclass(frozen=True)
class Head:
    """The parameters of one ``[yolo]``, ``[region]`` or ``[detection]`` layer."""

    index: int
    type: str  # "yolo" | "region" | "detection"
    w: int
    h: int
    n: int  # anchors used by this layer (yolo: len(mask))
    classes: int
    mask: tuple[int, ...] = ()
    anchors: tuple[tuple[float, float], ...] = ()
    coords: int = 4
    softmax: int = 0
    background: int = 0
    side: int = 0
    sqrt: int = 0
    tree: str | None = None
    # AlexeyAB's options (defaults = pjreddie's behaviour); read by decode_ab / nms_ab
    new_coords: int = 0
    scale_x_y: float = 1.0  # applied by the layer's forward pass, kept for reference
    nms_kind: str = "default"
    beta_nms: float = 0.6
    yolo_point: str = "center"
    classfix: int = 0

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Head:
        """From an ``output_layers`` entry of an apps fixture ``case.json``."""
        kind = str(d["type"])
        kind = "Gaussian_yolo" if kind in YOLO_TYPES[1:] else kind
        anchors = tuple((float(a[0]), float(a[1])) for a in d.get("anchors", ()))
        if kind == "detection":
            side = int(d["side"])
            return cls(int(d["index"]), kind, side, side, int(d["n"]), int(d["classes"]),
                       coords=int(d.get("coords", 4)), softmax=int(d.get("softmax", 0)),
                       side=side, sqrt=int(d.get("sqrt", 0)))  # fmt: skip
        return cls(int(d["index"]), kind, int(d["w"]), int(d["h"]), int(d["n"]),
                   int(d["classes"]), mask=tuple(int(m) for m in d.get("mask", ())),
                   anchors=anchors, coords=int(d.get("coords", 4)),
                   softmax=int(d.get("softmax", 0)), background=int(d.get("background", 0)),
                   tree=d.get("tree"), **_ab_options(d))  # fmt: skip

    @classmethod
    def from_layer(cls, layer: Any) -> Head:
        """From a :class:`darkconv.graph.Layer` of type yolo, region or detection."""
        o = layer.options
        kind = "Gaussian_yolo" if layer.type in YOLO_TYPES[1:] else layer.type
        _, h, w = layer.input  # heads keep their input's spatial size
        flat = [float(v) for v in (o.get("anchors") or ())]
        if kind in YOLO_TYPES:
            total = int(o.get("num", 1))
            mask = tuple(int(m) for m in (o.get("mask") or ())) or tuple(range(total))
            if not flat:  # make_yolo_layer initialises every bias to .5
                flat = [0.5] * (2 * total)
            pairs = tuple((flat[2 * i], flat[2 * i + 1]) for i in range(len(flat) // 2))
            return cls(layer.index, kind, w, h, len(mask), int(o["classes"]), mask=mask,
                       anchors=pairs, **_ab_options(o))  # fmt: skip
        if kind == "region":
            n = int(o.get("num", 1))
            if not flat:
                flat = [0.5] * (2 * n)
            pairs = tuple((flat[2 * i], flat[2 * i + 1]) for i in range(len(flat) // 2))
            return cls(layer.index, kind, w, h, n, int(o["classes"]), anchors=pairs,
                       coords=int(o.get("coords", 4)), softmax=int(o.get("softmax", 0)),
                       background=int(o.get("background", 0)), tree=o.get("tree"),
                       classfix=int(o.get("classfix") or 0))  # fmt: skip
        if kind == "detection":
            side = int(o.get("side", 7))
            return cls(layer.index, kind, side, side, int(o.get("num", 1)), int(o["classes"]),
                       coords=int(o.get("coords", 4)), softmax=int(o.get("softmax", 0)),
                       side=side, sqrt=int(o.get("sqrt", 0)))  # fmt: skip
        raise UnsupportedError(f"layer {layer.index} ({kind}) is not a detection head")

    def anchor(self, k: int) -> tuple[float, float]:
        """Anchor pair ``k`` (Darknet's ``biases[2k], biases[2k+1]``; .5 where none was given)."""
        return self.anchors[k] if k < len(self.anchors) else (0.5, 0.5)


def _ab_options(o: Mapping[str, Any]) -> dict[str, Any]:
    """AlexeyAB's head options from a layer's options or a fixture's ``output_layers`` entry."""

    def get(key: str, default: Any) -> Any:
        value = o.get(key)
        return default if value is None else value

    return {
        "new_coords": int(get("new_coords", 0)),
        "scale_x_y": float(get("scale_x_y", 1.0)),
        "nms_kind": str(get("nms_kind", "default")),
        "beta_nms": float(get("beta_nms", 0.6)),
        "yolo_point": str(get("yolo_point", "center")),
    }


@dataclass
class Boxes:
    """Darknet's ``detection`` array as parallel NumPy arrays (array order = Darknet's order)."""

    bbox: F32Array  # (N, 4) x, y, w, h
    objectness: F32Array  # (N,)
    prob: F32Array  # (N, classes)
    sort_class: NDArray[np.int64]  # (N,)
    origin: NDArray[np.int64]  # (N, 5): pre-NMS index, layer, row, col, anchor

    def __len__(self) -> int:
        return int(self.bbox.shape[0])

    def take(self, order: NDArray[np.intp] | Sequence[int]) -> Boxes:
        idx = np.asarray(order, dtype=np.intp)
        return Boxes(self.bbox[idx], self.objectness[idx], self.prob[idx],
                     self.sort_class[idx], self.origin[idx])  # fmt: skip

    def copy(self) -> Boxes:
        return self.take(np.arange(len(self)))

    @classmethod
    def concat(cls, parts: Sequence[Boxes], classes: int) -> Boxes:
        """The parts one after the other, ``origin[:, 0]`` renumbered (``get_network_boxes``)."""
        if not parts:
            empty = np.zeros((0, 4), dtype=np.float32)
            return cls(empty, np.zeros(0, np.float32), np.zeros((0, classes), np.float32),
                       np.zeros(0, np.int64), np.zeros((0, 5), np.int64))  # fmt: skip
        boxes = cls(
            np.concatenate([p.bbox for p in parts]),
            np.concatenate([p.objectness for p in parts]),
            np.concatenate([p.prob for p in parts]),
            np.concatenate([p.sort_class for p in parts]),
            np.concatenate([p.origin for p in parts]),
        )
        boxes.origin[:, 0] = np.arange(len(boxes))
        return boxes


def _correct_boxes(
    bbox: F32Array, im_w: int, im_h: int, net_w: int, net_h: int, relative: bool
) -> F32Array:
    """``correct_yolo_boxes`` / ``correct_region_boxes``: undo the letterbox.

    The offset is the exact half ``(netw-new_w)/2.`` (double), although the image was embedded at
    the floored integer offset, so boxes shift by half a network pixel on an odd leftover.
    """
    geo = letterbox_geometry(im_w, im_h, net_w, net_h)
    sx = float(_F32(geo.new_w) / _F32(net_w))  # (float)new_w/netw
    sy = float(_F32(geo.new_h) / _F32(net_h))
    b = bbox.astype(np.float64)
    out = np.empty_like(bbox)
    out[:, 0] = (b[:, 0] - (net_w - geo.new_w) / 2.0 / net_w) / sx
    out[:, 1] = (b[:, 1] - (net_h - geo.new_h) / 2.0 / net_h) / sy
    out[:, 2] = bbox[:, 2] * (_F32(net_w) / _F32(geo.new_w))  # float *= float
    out[:, 3] = bbox[:, 3] * (_F32(net_h) / _F32(geo.new_h))
    if not relative:
        out[:, 0] *= _F32(im_w)
        out[:, 2] *= _F32(im_w)
        out[:, 1] *= _F32(im_h)
        out[:, 3] *= _F32(im_h)
    return out


def _grid(h: int, w: int) -> tuple[F32Array, F32Array]:
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return rows.astype(np.float32), cols.astype(np.float32)


def _yolo(
    head: Head, out: F32Array, thresh: F32Array, classes: int, net_w: int, net_h: int
) -> Boxes:
    """``get_yolo_detections``: cells outer, anchors inner, kept only if objectness > thresh."""
    n, h, w, nc = head.n, head.h, head.w, head.classes
    a = out.reshape(n, 4 + 1 + nc, h, w).transpose(2, 3, 0, 1)  # (row, col, anchor, entry)
    rows, cols = _grid(h, w)
    obj = a[..., 4]
    keep = obj > thresh
    r_idx, c_idx, n_idx = np.nonzero(keep)  # C order: row, col, anchor = Darknet's loop order
    sel = a[r_idx, c_idx, n_idx]  # (N, entries)
    bbox = np.empty((len(sel), 4), dtype=np.float32)
    # get_yolo_box: x = (i + x)/lw in float; w = exp(tw)*anchor/netw in double, stored float
    bbox[:, 0] = (cols[r_idx, c_idx] + sel[:, 0]) / _F32(w)
    bbox[:, 1] = (rows[r_idx, c_idx] + sel[:, 1]) / _F32(h)
    aw = np.array([head.anchor(head.mask[k])[0] for k in range(n)], dtype=np.float32)
    ah = np.array([head.anchor(head.mask[k])[1] for k in range(n)], dtype=np.float32)
    objs = sel[:, 4]
    prob = np.zeros((len(sel), classes), dtype=np.float32)
    m = min(nc, classes)
    p = objs[:, None] * sel[:, 5 : 5 + m]  # float32 product
    prob[:, :m] = np.where(p > thresh, p, _F32(0))
    origin = np.stack(
        [np.zeros_like(r_idx), np.full_like(r_idx, head.index), r_idx, c_idx, n_idx], axis=1
    )
    boxes = Boxes(bbox, objs.astype(np.float32), prob,
                  np.zeros(len(sel), dtype=np.int64), origin.astype(np.int64))  # fmt: skip
    boxes.bbox[:, 2] = np.exp(sel[:, 2].astype(np.float64)) * aw[n_idx].astype(np.float64) / net_w
    boxes.bbox[:, 3] = np.exp(sel[:, 3].astype(np.float64)) * ah[n_idx].astype(np.float64) / net_h
    return boxes


def _region(head: Head, out: F32Array, thresh: F32Array, classes: int) -> Boxes:
    """``get_region_detections`` (no tree): every box, anchor-major (``n*w*h + cell``)."""
    if head.tree:
        raise UnsupportedError(f"layer {head.index}: a [region] with tree= is not supported")
    n, h, w, nc, coords = head.n, head.h, head.w, head.classes, head.coords
    a = out.reshape(n, coords + nc + 1, h * w).transpose(0, 2, 1)  # (anchor, cell, entry)
    a = a.reshape(n * h * w, coords + nc + 1)
    cell = np.tile(np.arange(h * w), n)
    n_idx = np.repeat(np.arange(n), h * w)
    r_idx, c_idx = cell // w, cell % w
    bbox = np.empty((len(a), 4), dtype=np.float32)
    bbox[:, 0] = (c_idx.astype(np.float32) + a[:, 0]) / _F32(w)
    bbox[:, 1] = (r_idx.astype(np.float32) + a[:, 1]) / _F32(h)
    aw = np.array([head.anchor(k)[0] for k in range(n)], dtype=np.float32)[n_idx]
    ah = np.array([head.anchor(k)[1] for k in range(n)], dtype=np.float32)[n_idx]
    # get_region_box: exp(tw)*biases[2n]/lw in double (region anchors are in grid cells)
    bbox[:, 2] = np.exp(a[:, 2].astype(np.float64)) * aw.astype(np.float64) / w
    bbox[:, 3] = np.exp(a[:, 3].astype(np.float64)) * ah.astype(np.float64) / h
    scale = np.ones(len(a), dtype=np.float32) if head.background else a[:, coords]
    objectness = np.where(scale > thresh, scale, _F32(0)).astype(np.float32)
    m = min(nc, classes)
    p = scale[:, None] * a[:, coords + 1 : coords + 1 + m]
    prob = np.zeros((len(a), classes), dtype=np.float32)
    # the class probabilities are only computed for boxes whose objectness survived
    prob[:, :m] = np.where((p > thresh) & (objectness[:, None] != 0), p, _F32(0))
    origin = np.stack([np.zeros_like(cell), np.full_like(cell, head.index), r_idx, c_idx, n_idx], 1)
    return Boxes(bbox, objectness, prob, np.zeros(len(a), dtype=np.int64),
                 origin.astype(np.int64))  # fmt: skip


def detection_boxes(
    head: Head, out: F32Array, thresh: np.float32, classes: int, w: int, h: int
) -> Boxes:
    """``get_detection_detections`` (yolov1): every box at ``cell*n + a``, in units of (w, h).

    No letterbox correction; ``w, h`` are the arguments (the image size in ``detector test``).
    """
    side, n, nc = head.side, head.n, head.classes
    flat = out.reshape(-1)
    cells = side * side
    cls = flat[: cells * nc].reshape(cells, nc)
    conf = flat[cells * nc : cells * (nc + n)].reshape(cells * n)
    box = flat[cells * (nc + n) : cells * (nc + n) + cells * n * 4].reshape(cells * n, 4)
    cell = np.repeat(np.arange(cells), n)
    r_idx, c_idx = cell // side, cell % side
    bbox = np.empty((cells * n, 4), dtype=np.float32)
    # (b + col)/side*w: float arithmetic; pow(b, sqrt?2:1)*w: double, stored float
    bbox[:, 0] = (box[:, 0] + c_idx.astype(np.float32)) / _F32(side) * _F32(w)
    bbox[:, 1] = (box[:, 1] + r_idx.astype(np.float32)) / _F32(side) * _F32(h)
    power = 2.0 if head.sqrt else 1.0
    bbox[:, 2] = np.power(box[:, 2].astype(np.float64), power) * w
    bbox[:, 3] = np.power(box[:, 3].astype(np.float64), power) * h
    m = min(nc, classes)
    p = conf[:, None] * cls[cell, :m]
    prob = np.zeros((cells * n, classes), dtype=np.float32)
    prob[:, :m] = np.where(p > thresh, p, _F32(0))
    origin = np.stack(
        [
            np.zeros_like(cell),
            np.full_like(cell, head.index),
            r_idx,
            c_idx,
            np.tile(np.arange(n), cells),
        ],
        1,
    )
    return Boxes(bbox, conf.astype(np.float32), prob, np.zeros(cells * n, dtype=np.int64),
                 origin.astype(np.int64))  # fmt: skip


def get_network_boxes(
    heads: Sequence[Head],
    outputs: Mapping[int, np.ndarray],
    im_w: int,
    im_h: int,
    net_w: int,
    net_h: int,
    thresh: float,
    classes: int | None = None,
    relative: bool = True,
) -> Boxes:
    """Darknet's ``get_network_boxes(net, im_w, im_h, thresh, hier, 0, relative)``.

    ``outputs[head.index]`` is the head's flat ``l.output``; heads are visited in layer order and
    their boxes appended.  ``classes`` (the length of every prob array) defaults to the classes of
    the last head, as Darknet sizes them from the network's last layer.
    """
    t = _F32(thresh)
    heads = sorted(heads, key=lambda hd: hd.index)
    if classes is None:
        classes = heads[-1].classes if heads else 0
    parts: list[Boxes] = []
    for head in heads:
        out = np.asarray(outputs[head.index], dtype=np.float32).reshape(-1)
        if head.type == "yolo":
            b = _yolo(head, out, t, classes, net_w, net_h)
            b.bbox[:] = _correct_boxes(b.bbox, im_w, im_h, net_w, net_h, relative)
        elif head.type == "region":
            b = _region(head, out, t, classes)
            b.bbox[:] = _correct_boxes(b.bbox, im_w, im_h, net_w, net_h, relative)
        elif head.type == "detection":
            b = detection_boxes(head, out, t, classes, im_w, im_h)
        else:
            raise UnsupportedError(f"layer {head.index}: {head.type} is not a detection head")
        parts.append(b)
    return Boxes.concat(parts, classes)
