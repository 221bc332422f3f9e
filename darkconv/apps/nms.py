"""Darknet's non-maximum suppression (``do_nms_sort``) and its float32 ``box_iou``."""

from __future__ import annotations

from typing import Any

import numpy as np

from darkconv.apps.decode import Boxes, F32Array

__all__ = ["box_iou", "do_nms_sort"]

_F32 = np.float32


def box_iou(a: F32Array, b: F32Array) -> F32Array:
    """Darknet's ``box_iou`` in float32, broadcasting ``a`` (4,) against ``b`` (N, 4)."""
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


def do_nms_sort(boxes: Boxes, classes: int, nms: float) -> Boxes:
    """Darknet's ``do_nms_sort``; returns the reordered array (the input is not modified).

    1. Every box with objectness exactly 0 is swapped with the current last one (an unstable
       partition, which reorders the array).
    2. Per class ``k``: a stable sort descending by ``prob[k]`` (glibc's ``qsort`` is a merge
       sort here, so ties keep their order), then every later box whose float32 IoU with a
       kept box is strictly greater than ``nms`` gets ``prob[k] = 0``.  Nothing is removed.
    """
    total = len(boxes)
    order = list(range(total))
    k = total - 1
    i = 0
    obj = boxes.objectness
    while i <= k:
        if obj[order[i]] == 0:
            order[i], order[k] = order[k], order[i]
            k -= 1
        else:
            i += 1
    live = k + 1
    out = boxes.take(order)
    thr = _F32(nms)
    for c in range(classes):
        out.sort_class[:live] = c
        perm = np.argsort(-out.prob[:live, c], kind="stable")
        head = out.take(perm)
        out = Boxes(
            np.concatenate([head.bbox, out.bbox[live:]]),
            np.concatenate([head.objectness, out.objectness[live:]]),
            np.concatenate([head.prob, out.prob[live:]]),
            np.concatenate([head.sort_class, out.sort_class[live:]]),
            np.concatenate([head.origin, out.origin[live:]]),
        )
        for i in np.nonzero(out.prob[:live, c] != 0)[0].tolist():
            if out.prob[i, c] == 0:  # zeroed by an earlier box of this pass
                continue
            if i + 1 < live:
                iou = box_iou(out.bbox[i], out.bbox[i + 1 : live])
                hit = np.nonzero(iou > thr)[0] + i + 1
                out.prob[hit, c] = 0
    return out
