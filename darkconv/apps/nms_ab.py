"""AlexeyAB's NMS (``src/box.c``): ``do_nms_sort`` and ``diounms_sort`` by ``nms_kind``.

Both first swap every box with objectness exactly 0 to the end (the same unstable partition as
pjreddie), then per class: a stable sort descending by ``prob[k]`` (glibc's ``qsort`` is a merge
sort) and, for each box with a non-zero ``prob[k]``, ``prob[k] = 0`` on every later box whose
value against it is ``> nms`` (float32).  The value depends on ``nms_kind`` (the last head's):

* ``default`` (``do_nms_sort``) and ``cornersnms``: ``box_iou``, 0 when the intersection or the
  union is 0;
* ``greedynms``: ``box_diou`` = IoU - (d/c)^0.6 (the exponent is fixed, ``beta_nms`` unused);
* ``diounms``: ``box_diounms`` = IoU - (d/c)^beta_nms;

with d the squared centre distance and c the squared diagonal of the enclosing box, in float
(``pow`` in double, stored float).  ``[yolo]`` maps an unknown ``nms_kind`` to ``default``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from darkconv.apps.decode import Boxes, F32Array
from darkconv.apps.nms import NmsTest, nms_sort

__all__ = ["NMS_KINDS", "box_diou", "box_iou_ab", "nms_ab", "nms_kind_name"]

_F32 = np.float32


def _overlap(x1: Any, w1: Any, x2: Any, w2: Any) -> Any:
    two = _F32(2)
    left = np.maximum(x1 - w1 / two, x2 - w2 / two)
    right = np.minimum(x1 + w1 / two, x2 + w2 / two)
    return right - left


def box_iou_ab(a: F32Array, b: F32Array) -> F32Array:
    """AlexeyAB's ``box_iou``, ``a`` (..., 4) against ``b`` (..., 4): ``I/U``, 0 if ``I`` or ``U`` is 0."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        ow = _overlap(a[..., 0], a[..., 2], b[..., 0], b[..., 2])
        oh = _overlap(a[..., 1], a[..., 3], b[..., 1], b[..., 3])
        inter = np.where((ow < 0) | (oh < 0), _F32(0), ow * oh).astype(np.float32)
        union = ((a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3]) - inter).astype(np.float32)
        iou = np.where((inter == 0) | (union == 0), _F32(0), inter / union)
    return iou.astype(np.float32)


def box_diou(a: F32Array, b: F32Array, beta: float) -> F32Array:
    """``box_diounms(a, b, beta)`` (``box_diou`` is the same with beta 0.6): ``IoU - (d/c)^beta``,
    ``a`` (..., 4) against ``b`` (..., 4).

    ``c`` is the squared diagonal of the smallest box enclosing both (``box_c``); when it is 0
    the value is the IoU.
    """
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    two = _F32(2)
    iou = box_iou_ab(a, b)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        top = np.minimum(a[..., 1] - a[..., 3] / two, b[..., 1] - b[..., 3] / two)
        bot = np.maximum(a[..., 1] + a[..., 3] / two, b[..., 1] + b[..., 3] / two)
        left = np.minimum(a[..., 0] - a[..., 2] / two, b[..., 0] - b[..., 2] / two)
        right = np.maximum(a[..., 0] + a[..., 2] / two, b[..., 0] + b[..., 2] / two)
        w = (right - left).astype(np.float32)
        h = (bot - top).astype(np.float32)
        c = (w * w + h * h).astype(np.float32)
        dx = (a[..., 0] - b[..., 0]).astype(np.float32)
        dy = (a[..., 1] - b[..., 1]).astype(np.float32)
        d = (dx * dx + dy * dy).astype(np.float32)
        ratio = (d / c).astype(np.float32)
        u = np.power(ratio.astype(np.float64), float(_F32(beta))).astype(np.float32)
        value = (iou - u).astype(np.float32)
    return np.where(c == 0, iou, value).astype(np.float32)


def _iou_test(a: F32Array, b: F32Array, thr: np.float32) -> NDArray[np.bool_]:
    return box_iou_ab(a, b) > thr


def _diou_test(beta: float | None) -> NmsTest:
    """``box_diounms(a, b, beta) > thr`` (``box_diou``: beta None = the fixed 0.6).

    The value is the IoU minus a non-negative term, so only pairs with ``IoU > thr`` can pass:
    the term is computed for those pairs only (the same float32 operations on each).
    """

    def test(a: F32Array, b: F32Array, thr: np.float32) -> NDArray[np.bool_]:
        hit = box_iou_ab(a, b) > thr
        where = np.nonzero(hit)
        if len(where[0]):
            full = (*hit.shape, 4)
            pa = np.broadcast_to(np.asarray(a, np.float32), full)[where]
            pb = np.broadcast_to(np.asarray(b, np.float32), full)[where]
            hit[where] = box_diou(pa, pb, 0.6 if beta is None else beta) > thr
        return hit

    return test


#: nms_kind -> (beta_nms -> the suppression test of box.c)
NMS_KINDS: dict[str, Callable[[float], NmsTest]] = {
    "default": lambda beta: _iou_test,  # do_nms_sort
    "cornersnms": lambda beta: _iou_test,  # diounms_sort's first branch (Gaussian_yolo only)
    "greedynms": lambda beta: _diou_test(None),  # box_diou: exponent fixed at 0.6
    "diounms": _diou_test,  # box_diounms(a, b, beta_nms)
}


def nms_kind_name(value: object) -> str:
    """The kind Darknet uses for an ``nms_kind=`` string: unknown names fall back to ``default``."""
    name = str(value) if value is not None else "default"
    return name if name in NMS_KINDS else "default"


def nms_ab(boxes: Boxes, classes: int, nms: float, kind: str, beta: float) -> Boxes:
    """``do_nms_sort`` / ``diounms_sort`` of ``nms_kind`` ``kind``; returns the reordered array."""
    return nms_sort(boxes, classes, nms, NMS_KINDS[nms_kind_name(kind)](beta))
