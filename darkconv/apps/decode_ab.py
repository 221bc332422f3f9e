"""AlexeyAB's ``get_network_boxes`` (``src/network.c``): its yolo, Gaussian_yolo and region decoding.

Differences from pjreddie's (``darkconv.apps.decode``), all from AlexeyAB's C code:

* ``get_yolo_box``: with ``new_coords=1`` the size is ``t*t*4*anchor/net`` in float (no exp; the
  conv before already applied the logistic).  ``scale_x_y`` is applied by the layer's forward pass,
  so the head output already holds it.
* ``correct_yolo_boxes`` takes a ``letter`` flag: without letterbox nothing moves; with it the size
  is scaled by ``1/ratio`` (two float roundings, pjreddie: ``net/new``).
* ``[Gaussian_yolo]``: 9+classes entries per anchor, box from entries 0, 2, 4, 6, probabilities
  scaled by ``1 - mean(uncertainties)``, pjreddie's box correction (``correct_gaussian_yolo_boxes``).
* ``[region]``: the output is cell-major (``flatten`` in ``forward_region_layer``), objectness 1 for
  every box, logistic on x, y here (``get_region_boxes`` via ``custom_get_region_detections``).
* every prob array has the classes of the **first** head (``make_network_boxes``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from darkconv.apps.decode import Boxes, F32Array, Head, detection_boxes
from darkconv.apps.image import letterbox_geometry
from darkconv.errors import UnsupportedError

__all__ = [
    "DECODERS",
    "FAST_MATH_RECIPROCAL",
    "SETS_CLASSES",
    "Frame",
    "correct_yolo_boxes_ab",
    "detection_classes",
    "fast_reciprocal",
    "get_network_boxes_ab",
]

_F32 = np.float32


def _ratios(im_w: int, im_h: int, net_w: int, net_h: int, letter: bool) -> tuple[int, int]:
    """``new_w, new_h`` of ``correct_yolo_boxes``: the letterbox size, or the network size."""
    if not letter:
        return net_w, net_h
    geo = letterbox_geometry(im_w, im_h, net_w, net_h)
    return geo.new_w, geo.new_h


#: ``1/ratio`` as AlexeyAB's ``-Ofast`` build computes it in ``correct_yolo_boxes``, where it differs
#: from the correctly rounded quotient.  gcc's ``-ffast-math`` turns the vectorised float
#: ``1/ratiow, 1/ratioh`` into ``rcpps`` plus one Newton step, ``(r0 + r0) - (a*r0)*r0``.  ``rcpps``
#: depends only on the significand, so the table is keyed by the significand of ``ratio`` in
#: [1, 2).  Intel's ``rcpps(1) = 1 - 2**-12`` (the CPU of fixtures/alexeyab) gives exactly
#: ``1 - 2**-24`` for every power-of-two ratio: ratio 1 is every box without letterbox, and the
#: filled axis with it, so Darknet shrinks those w, h by that factor (the 1-ulp offset of every
#: resize case in fixtures/alexeyab/apps).  Other significands keep the true quotient: ``rcpps`` is
#: a CPU-specific table, so those stay within 2 ulp.
FAST_MATH_RECIPROCAL: dict[float, np.float32] = {1.0: _F32(1 - 2**-24)}


def fast_reciprocal(ratio: np.float32) -> np.float32:
    """``1/ratio`` in float as the ``-Ofast`` ``correct_yolo_boxes`` computes it."""
    mantissa, exp = np.frexp(_F32(ratio))  # ratio = mantissa * 2**exp, mantissa in [0.5, 1)
    table = FAST_MATH_RECIPROCAL.get(float(mantissa) * 2)
    if table is None:
        return _F32(1) / _F32(ratio)
    return _F32(np.ldexp(table, 1 - int(exp)))  # exact: a power-of-two scaling


def correct_yolo_boxes_ab(
    bbox: F32Array, im_w: int, im_h: int, net_w: int, net_h: int, letter: bool
) -> F32Array:
    """AlexeyAB's ``correct_yolo_boxes`` (relative boxes), as its ``-Ofast`` build runs it:
    ``x = (x - dw/2./netw) * (1./ratio)`` in double, ``w *= 1/ratio`` with ``1/ratio`` in float
    (see :data:`FAST_MATH_RECIPROCAL`)."""
    new_w, new_h = _ratios(im_w, im_h, net_w, net_h, letter)
    out = bbox.copy()
    for axis, net, new in ((0, net_w, new_w), (1, net_h, new_h)):
        delta = float(_F32(net - new))  # float deltaw = netw - new_w
        ratio = _F32(new) / _F32(net)  # float ratiow = (float)new_w/netw
        b = bbox[:, axis].astype(np.float64)
        # -ffast-math: the division by the loop-invariant ratio becomes a product with 1./ratio
        out[:, axis] = (b - delta / 2.0 / net) * (1.0 / float(ratio))
        out[:, axis + 2] = bbox[:, axis + 2] * fast_reciprocal(ratio)
    return out


def _correct_gaussian(
    bbox: F32Array, im_w: int, im_h: int, net_w: int, net_h: int, letter: bool
) -> F32Array:
    """``correct_gaussian_yolo_boxes``: pjreddie's formula (``w *= (float)netw/new_w``), letter flag,
    as the ``-Ofast`` build runs it: both float quotients become ``a * rcp(b)`` (``rcpps`` plus a
    Newton step, :func:`fast_reciprocal`), and ``x`` is multiplied by ``1./ratio`` in double."""
    new_w, new_h = _ratios(im_w, im_h, net_w, net_h, letter)
    out = bbox.copy()
    for axis, net, new in ((0, net_w, new_w), (1, net_h, new_h)):
        b = bbox[:, axis].astype(np.float64)
        ratio = _F32(new) * fast_reciprocal(_F32(net))  # (float)new_w/netw
        out[:, axis] = (b - (net - new) / 2.0 / net) * (1.0 / float(ratio))
        out[:, axis + 2] = bbox[:, axis + 2] * (_F32(net) * fast_reciprocal(_F32(new)))
    return out


def _origin(head: Head, r: np.ndarray, c: np.ndarray, n: np.ndarray) -> np.ndarray:
    return np.stack([np.zeros_like(r), np.full_like(r, head.index), r, c, n], 1).astype(np.int64)


def _probs(obj: F32Array, cls: F32Array, thresh: np.float32, classes: int) -> F32Array:
    """``prob = objectness*class`` (float), kept if ``> thresh`` else 0, in ``classes`` slots."""
    prob = np.zeros((len(obj), classes), dtype=np.float32)
    m = min(cls.shape[1], classes)
    p = (obj[:, None] * cls[:, :m]).astype(np.float32)
    prob[:, :m] = np.where(p > thresh, p, _F32(0))
    return prob


def _anchor_wh(head: Head, n_idx: np.ndarray, masked: bool) -> tuple[F32Array, F32Array]:
    ids = [head.mask[k] if masked else k for k in range(head.n)]
    aw = np.array([head.anchor(i)[0] for i in ids], dtype=np.float32)[n_idx]
    ah = np.array([head.anchor(i)[1] for i in ids], dtype=np.float32)[n_idx]
    return aw, ah


def _yolo(head: Head, out: F32Array, t: np.float32, classes: int, net_w: int, net_h: int) -> Boxes:
    """``get_yolo_detections``: cells outer, anchors inner, kept if objectness > thresh."""
    n, h, w, nc = head.n, head.h, head.w, head.classes
    a = out.reshape(n, 5 + nc, h, w).transpose(2, 3, 0, 1)  # (row, col, anchor, entry)
    r, c, k = np.nonzero(a[..., 4] > t)
    sel = a[r, c, k]
    bbox = np.empty((len(sel), 4), dtype=np.float32)
    bbox[:, 0] = (c.astype(np.float32) + sel[:, 0]) / _F32(w)  # (i + x)/lw in float
    bbox[:, 1] = (r.astype(np.float32) + sel[:, 1]) / _F32(h)
    aw, ah = _anchor_wh(head, k, masked=True)
    if head.new_coords:
        # x*x*4*biases/w, left to right in float
        bbox[:, 2] = sel[:, 2] * sel[:, 2] * _F32(4) * aw / _F32(net_w)
        bbox[:, 3] = sel[:, 3] * sel[:, 3] * _F32(4) * ah / _F32(net_h)
    else:
        # exp(x)*biases/w in double, stored float
        bbox[:, 2] = np.exp(sel[:, 2].astype(np.float64)) * aw.astype(np.float64) / net_w
        bbox[:, 3] = np.exp(sel[:, 3].astype(np.float64)) * ah.astype(np.float64) / net_h
    obj = sel[:, 4].astype(np.float32)
    prob = _probs(obj, sel[:, 5:], t, classes)
    return Boxes(bbox, obj, prob, np.zeros(len(sel), np.int64), _origin(head, r, c, k))


_YOLO_POINT = {"center": 0, "left_top": 1, "right_bottom": -1}  # sign of the +w/2 shift


def _gaussian(
    head: Head, out: F32Array, t: np.float32, classes: int, net_w: int, net_h: int
) -> Boxes:
    """``get_gaussian_yolo_detections``: entries x, sx, y, sy, w, sw, h, sh, obj, classes."""
    n, h, w, nc = head.n, head.h, head.w, head.classes
    a = out.reshape(n, 9 + nc, h, w).transpose(2, 3, 0, 1)
    r, c, k = np.nonzero(a[..., 8] > t)
    sel = a[r, c, k]
    aw, ah = _anchor_wh(head, k, masked=True)
    bbox = np.empty((len(sel), 4), dtype=np.float32)
    bbox[:, 2] = np.exp(sel[:, 4].astype(np.float64)) * aw.astype(np.float64) / net_w
    bbox[:, 3] = np.exp(sel[:, 6].astype(np.float64)) * ah.astype(np.float64) / net_h
    bbox[:, 0] = (c.astype(np.float32) + sel[:, 0]) / _F32(w)
    bbox[:, 1] = (r.astype(np.float32) + sel[:, 2]) / _F32(h)
    try:
        shift = _YOLO_POINT[head.yolo_point]
    except KeyError:
        raise UnsupportedError(
            f"layer {head.index}: yolo_point={head.yolo_point!r} is not supported"
        ) from None
    if shift:
        bbox[:, 0] += _F32(shift) * (bbox[:, 2] / _F32(2))
        bbox[:, 1] += _F32(shift) * (bbox[:, 3] / _F32(2))
    obj = sel[:, 8].astype(np.float32)
    # uc_aver = (u0+u1+u2+u3)/4.0 (float sum, double divide, stored float)
    uc = ((sel[:, 1] + sel[:, 3]) + sel[:, 5]) + sel[:, 7]
    uc_aver = (uc.astype(np.float64) / 4.0).astype(np.float32)
    prob = np.zeros((len(sel), classes), dtype=np.float32)
    m = min(nc, classes)
    # prob = objectness*class * (1.0 - uc_aver): float product, then double, stored float
    p = (obj[:, None] * sel[:, 9 : 9 + m]).astype(np.float64)
    p = (p * (1.0 - uc_aver.astype(np.float64))[:, None]).astype(np.float32)
    prob[:, :m] = np.where(p > t, p, _F32(0))
    return Boxes(bbox, obj, prob, np.zeros(len(sel), np.int64), _origin(head, r, c, k))


def _logistic(x: F32Array) -> F32Array:
    """``logistic_activate``: ``1.f/(1.f + expf(-x))`` in float."""
    with np.errstate(over="ignore"):
        return (_F32(1) / (_F32(1) + np.exp(-x.astype(np.float32)))).astype(np.float32)


def _region(head: Head, out: F32Array, t: np.float32, classes: int) -> Boxes:
    """``custom_get_region_detections`` -> ``get_region_boxes(l, 1, 1, ...)``: every box,
    cell-major (``cell*n + anchor``), objectness 1, x,y through the logistic here."""
    if head.tree:
        raise UnsupportedError(f"layer {head.index}: a [region] with tree= is not supported")
    if head.coords != 4:
        raise UnsupportedError(f"layer {head.index}: AlexeyAB's [region] needs coords=4")
    n, h, w, nc = head.n, head.h, head.w, head.classes
    a = out.reshape(h * w * n, nc + 5)  # flatten(): (cell, anchor, entry)
    cell = np.repeat(np.arange(h * w), n)
    k = np.tile(np.arange(n), h * w)
    r, c = cell // w, cell % w
    bbox = np.empty((len(a), 4), dtype=np.float32)
    bbox[:, 0] = (c.astype(np.float32) + _logistic(a[:, 0])) / _F32(w)
    bbox[:, 1] = (r.astype(np.float32) + _logistic(a[:, 1])) / _F32(h)
    aw, ah = _anchor_wh(head, k, masked=False)
    bbox[:, 2] = np.exp(a[:, 2].astype(np.float64)) * aw.astype(np.float64) / w  # DOABS
    bbox[:, 3] = np.exp(a[:, 3].astype(np.float64)) * ah.astype(np.float64) / h
    scale = a[:, 4].astype(np.float32)
    if head.classfix == -1:
        scale = np.where(scale < _F32(0.5), _F32(0), scale)
    prob = _probs(scale, a[:, 5:], t, classes)
    obj = np.ones(len(a), dtype=np.float32)
    return Boxes(bbox, obj, prob, np.zeros(len(a), np.int64), _origin(head, r, c, k))


@dataclass(frozen=True)
class Frame:
    """Image and network sizes, and whether the input was letterboxed."""

    im_w: int
    im_h: int
    net_w: int
    net_h: int
    letter: bool


def _yolo_head(head: Head, out: F32Array, t: np.float32, classes: int, f: Frame) -> Boxes:
    b = _yolo(head, out, t, classes, f.net_w, f.net_h)
    b.bbox[:] = correct_yolo_boxes_ab(b.bbox, f.im_w, f.im_h, f.net_w, f.net_h, f.letter)
    return b


def _gaussian_head(head: Head, out: F32Array, t: np.float32, classes: int, f: Frame) -> Boxes:
    b = _gaussian(head, out, t, classes, f.net_w, f.net_h)
    b.bbox[:] = _correct_gaussian(b.bbox, f.im_w, f.im_h, f.net_w, f.net_h, f.letter)
    return b


def _region_head(head: Head, out: F32Array, t: np.float32, classes: int, f: Frame) -> Boxes:
    b = _region(head, out, t, classes)
    b.bbox[:] = correct_yolo_boxes_ab(b.bbox, f.im_w, f.im_h, f.net_w, f.net_h, f.letter)
    return b


def _detection_head(head: Head, out: F32Array, t: np.float32, classes: int, f: Frame) -> Boxes:
    return detection_boxes(head, out, t, classes, f.im_w, f.im_h)  # as pjreddie, no correction


#: head types whose detections carry ``dets[i].classes = l.classes``; ``get_detection_detections``
#: never sets it, so a [detection] (yolov1) box keeps 0 classes and ``draw_detections_v3`` shows
#: none of them
SETS_CLASSES = frozenset({"yolo", "Gaussian_yolo", "region"})


def detection_classes(boxes: Boxes, heads: Sequence[Head]) -> list[int]:
    """Each box's ``dets[i].classes`` (its head's classes, 0 for a [detection] head)."""
    own = {h.index: (h.classes if h.type in SETS_CLASSES else 0) for h in heads}
    return [own[int(layer)] for layer in boxes.origin[:, 1]]


#: head type -> its part of ``fill_network_boxes``
DECODERS: dict[str, Callable[[Head, F32Array, np.float32, int, Frame], Boxes]] = {
    "yolo": _yolo_head,
    "Gaussian_yolo": _gaussian_head,
    "region": _region_head,
    "detection": _detection_head,
}


def get_network_boxes_ab(
    heads: Sequence[Head],
    outputs: Mapping[int, np.ndarray],
    im_w: int,
    im_h: int,
    net_w: int,
    net_h: int,
    thresh: float,
    letter: bool,
    classes: int | None = None,
) -> Boxes:
    """AlexeyAB's ``get_network_boxes(net, im_w, im_h, thresh, hier, 0, 1, &n, letter)``.

    ``classes`` (every prob array's length) defaults to the first head's, as
    ``make_network_boxes`` does.  Boxes are relative (``detector test`` passes ``relative=1``).
    """
    t = _F32(thresh)
    heads = sorted(heads, key=lambda hd: hd.index)
    if classes is None:
        classes = heads[0].classes if heads else 0
    frame = Frame(im_w, im_h, net_w, net_h, letter)
    parts: list[Boxes] = []
    for head in heads:
        decoder = DECODERS.get(head.type)
        if decoder is None:
            raise UnsupportedError(f"layer {head.index}: {head.type} is not a detection head")
        out = np.asarray(outputs[head.index], dtype=np.float32).reshape(-1)
        parts.append(decoder(head, out, t, classes, frame))
    return Boxes.concat(parts, classes)
