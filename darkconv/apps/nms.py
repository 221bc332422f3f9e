"""Darknet's NMS: ``do_nms_sort`` (pjreddie ``src/box.c``) and the sort-and-suppress loop that
AlexeyAB's ``do_nms_sort`` / ``diounms_sort`` share (their values: :mod:`darkconv.apps.nms_ab`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from darkconv.apps.decode import Boxes, F32Array

__all__ = ["box_iou", "do_nms_sort", "nms_sort"]

_F32 = np.float32

#: ``value(kept_box (4,), later_boxes (N, 4)) -> (N,)``: suppress where ``value > nms``
NmsValue = Callable[[F32Array, F32Array], F32Array]


def box_iou(a: F32Array, b: F32Array) -> F32Array:
    """pjreddie's ``box_iou`` in float32, broadcasting ``a`` (4,) against ``b`` (N, 4)."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    two = _F32(2)

    def overlap(x1: Any, w1: Any, x2: Any, w2: Any) -> Any:
        left = np.maximum(x1 - w1 / two, x2 - w2 / two)
        right = np.minimum(x1 + w1 / two, x2 + w2 / two)
        return right - left

    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        ow = overlap(a[..., 0], a[..., 2], b[..., 0], b[..., 2])
        oh = overlap(a[..., 1], a[..., 3], b[..., 1], b[..., 3])
        inter = np.where((ow < 0) | (oh < 0), _F32(0), ow * oh).astype(np.float32)
        union = (a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3]) - inter
        return (inter / union).astype(np.float32)


def _partition(boxes: Boxes) -> tuple[list[int], int]:
    """Swap every box with objectness exactly 0 with the current last one (unstable)."""
    order = list(range(len(boxes)))
    k = len(boxes) - 1
    i = 0
    obj = boxes.objectness
    while i <= k:
        if obj[order[i]] == 0:
            order[i], order[k] = order[k], order[i]
            k -= 1
        else:
            i += 1
    return order, k + 1


def nms_sort(boxes: Boxes, classes: int, nms: float, value: NmsValue) -> Boxes:
    """The loop of ``do_nms_sort``; returns the reordered array (the input is not modified).

    1. Every box with objectness exactly 0 is swapped with the current last one (an unstable
       partition, which reorders the array).
    2. Per class ``k``: a stable sort descending by ``prob[k]`` (glibc's ``qsort`` is a merge
       sort here, so ties keep their order), then every later box whose float32 ``value`` against
       a kept box is strictly greater than ``nms`` gets ``prob[k] = 0``.  Nothing is removed.
    """
    order, live = _partition(boxes)
    out = boxes.take(order)
    thr = _F32(nms)
    for c in range(classes):
        out.sort_class[:live] = c
        perm = np.concatenate([np.argsort(-out.prob[:live, c], kind="stable"),
                               np.arange(live, len(out))])  # fmt: skip
        out = out.take(perm)
        # Darknet compares box i with every later box; only those whose prob[c] is still
        # non-zero can change, so only they are compared (same result, far fewer values)
        nonzero = np.nonzero(out.prob[:live, c] != 0)[0]
        for n, i in enumerate(nonzero.tolist()):
            if out.prob[i, c] == 0:  # zeroed by an earlier box of this pass
                continue
            later = nonzero[n + 1 :]
            later = later[out.prob[later, c] != 0]
            if len(later):
                hit = later[value(out.bbox[i], out.bbox[later]) > thr]
                out.prob[hit, c] = 0
    return out


def do_nms_sort(boxes: Boxes, classes: int, nms: float) -> Boxes:
    """pjreddie's ``do_nms_sort`` (plain IoU); returns the reordered array."""
    return nms_sort(boxes, classes, nms, box_iou)
