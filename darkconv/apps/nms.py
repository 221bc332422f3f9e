"""Darknet's NMS: ``do_nms_sort`` (pjreddie ``src/box.c``) and the sort-and-suppress loop that
AlexeyAB's ``do_nms_sort`` / ``diounms_sort`` share (their values: :mod:`darkconv.apps.nms_ab`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from darkconv.apps.decode import Boxes, F32Array

__all__ = ["NmsTest", "box_iou", "do_nms_sort", "iou_test", "nms_sort"]

_F32 = np.float32

#: ``suppress(kept (..., 4), later (..., 4), nms)``, broadcasting: where Darknet's value
#: (IoU, DIoU...) of the pair is ``> nms``
NmsTest = Callable[[F32Array, F32Array, np.float32], NDArray[np.bool_]]


def box_iou(a: F32Array, b: F32Array) -> F32Array:
    """pjreddie's ``box_iou`` in float32, ``a`` (..., 4) broadcast against ``b`` (..., 4)."""
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


#: pair values computed per block (rows x later boxes), to bound the memory of one block
_BLOCK_VALUES = 1 << 20


def iou_test(a: F32Array, b: F32Array, thr: np.float32) -> NDArray[np.bool_]:
    """pjreddie's ``box_iou(a, b) > thresh``."""
    return box_iou(a, b) > thr


def _suppress(bbox: F32Array, prob: F32Array, thr: np.float32, test: NmsTest) -> F32Array:
    """One class's pass in sorted order: each box whose prob is non-zero when reached zeroes
    the prob of every later box with ``value > thr``.

    Only boxes with a non-zero prob can change, so only they are compared (Darknet compares all,
    with the same result).  The values of a block of rows against every later box come from one
    broadcast call: the same float32 operations, element by element, as one call per row.
    """
    out = prob.copy()
    nz = np.nonzero(prob != 0)[0]
    k = len(nz)
    alive = np.ones(k, dtype=bool)
    box = bbox[nz]
    step = max(1, _BLOCK_VALUES // max(k, 1))
    for start in range(0, k, step):
        rows = [r for r in range(start, min(start + step, k)) if alive[r]]
        if not rows or start + 1 >= k:
            continue
        hit = test(box[rows][:, None, :], box[None, start + 1 :, :], thr)
        for n, r in enumerate(rows):
            if alive[r]:  # not zeroed by an earlier box of this pass
                alive[r + 1 :] &= ~hit[n, r - start :]
    out[nz[~alive]] = 0
    return out


def nms_sort(boxes: Boxes, classes: int, nms: float, test: NmsTest) -> Boxes:
    """The loop of ``do_nms_sort``; returns the reordered array (the input is not modified).

    1. Every box with objectness exactly 0 is swapped with the current last one (an unstable
       partition, which reorders the array).
    2. Per class ``k``: a stable sort descending by ``prob[k]`` (glibc's ``qsort`` is a merge
       sort here, so ties keep their order), then every later box whose float32 value (``test``)
       against a kept box is strictly greater than ``nms`` gets ``prob[k] = 0``.  Nothing is
       removed.
    """
    order, live = _partition(boxes)
    out = boxes.take(order)
    for c in range(classes):
        out.sort_class[:live] = c
        perm = np.concatenate([np.argsort(-out.prob[:live, c], kind="stable"),
                               np.arange(live, len(out))])  # fmt: skip
        out = out.take(perm)
        out.prob[:live, c] = _suppress(out.bbox[:live], out.prob[:live, c], _F32(nms), test)
    return out


def do_nms_sort(boxes: Boxes, classes: int, nms: float) -> Boxes:
    """pjreddie's ``do_nms_sort`` (plain IoU); returns the reordered array."""
    return nms_sort(boxes, classes, nms, iou_test)
