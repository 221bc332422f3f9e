"""mAP over a validation list, computed and printed as AlexeyAB's ``detector map`` does
(``validate_detector_map`` in AlexeyAB/darknet ``src/detector.c``).  numpy only: it takes
detections that the caller already decoded (``get_network_boxes`` + ``do_nms_sort``).

How a detection counts (``validate_detector_map``):

* every box contributes one entry per class whose probability is ``> 0`` (after
  ``get_network_boxes`` zeroed those below ``thresh = .005``);
* an entry matches the truth of **its class** with the highest IoU, only if that IoU is ``>``
  ``iou_thresh`` (strict); it is a true positive if that truth was not taken by a
  higher-ranked entry, otherwise a false positive (no fall-back to the second best truth);
* entries are ranked by probability over the whole set (the C code's ``qsort`` is not stable;
  here ties keep image, box, class order);
* AP per class is the area under the precision envelope at each unique recall
  (``map_points = 0``, "all-point interpolation", PascalVOC 2010+), or the mean of the
  envelope at ``N`` evenly spaced recalls (``-points 11`` VOC2007, ``101`` COCO);
* mAP is the mean over **all** ``classes``, including classes with no truth (AP 0).

The TP/FP/FN, precision, recall, F1 and average IoU lines at ``conf_thresh`` (``-thresh``,
default .25) follow the same function: an entry above that threshold is a TP when it matched a
truth that no earlier entry of the same image matched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["ClassAP", "ImageEval", "MapResult", "average_precision", "evaluate_map", "iou_xywh"]

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class ImageEval:
    """One validation image: decoded boxes and its truth, both relative to the image (0..1).

    ``boxes`` ``(n, 4)`` centre x, y, w, h; ``probs`` ``(n, classes)`` after NMS;
    ``truth`` ``(m, 5)`` rows ``class, x, y, w, h`` as a YOLO label file holds them.
    """

    boxes: NDArray[np.floating]
    probs: NDArray[np.floating]
    truth: NDArray[np.floating]


@dataclass(frozen=True)
class ClassAP:
    index: int
    name: str
    ap: float
    tp: int  # at conf_thresh
    fp: int
    truths: int

    @property
    def line(self) -> str:
        return (
            f"class_id = {self.index}, name = {self.name}, ap = {self.ap * 100:2.2f}%   \t "
            f"(TP = {self.tp}, FP = {self.fp}) "
        )


@dataclass(frozen=True)
class MapResult:
    classes: tuple[ClassAP, ...]
    mean_ap: float
    iou_thresh: float
    conf_thresh: float
    map_points: int
    detections_count: int
    unique_truth_count: int
    tp: int
    fp: int
    avg_iou: float

    @property
    def fn(self) -> int:
        return self.unique_truth_count - self.tp

    def lines(self) -> list[str]:
        """What ``detector map`` prints after its progress counter (the summary part)."""
        tp, fp, fn = self.tp, self.fp, self.fn
        # float32 divisions as in the C code; 0/0 prints nan like printf does
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.float32(tp) / np.float32(tp + fp)
            recall = np.float32(tp) / np.float32(tp + fn)
            f1 = np.float32(2) * precision * recall / (precision + recall)
        ct = self.conf_thresh
        how = (
            f"used {self.map_points} Recall-points "
            if self.map_points
            else "used Area-Under-Curve for each unique Recall "
        )
        return [
            "",
            f" detections_count = {self.detections_count}, "
            f"unique_truth_count = {self.unique_truth_count}  ",
            *(c.line for c in self.classes),
            "",
            f" for conf_thresh = {ct:1.2f}, precision = {_c(precision, '1.2f')}, "
            f"recall = {_c(recall, '1.2f')}, F1-score = {_c(f1, '1.2f')} ",
            f" for conf_thresh = {ct:0.2f}, TP = {tp}, FP = {fp}, FN = {fn}, "
            f"average IoU = {self.avg_iou * 100:2.2f} % ",
            "",
            f" IoU threshold = {self.iou_thresh * 100:2.0f} %, {how}",
            f" mean average precision (mAP@{self.iou_thresh:0.2f}) = {self.mean_ap:f}, "
            f"or {self.mean_ap * 100:2.2f} % ",
        ]


def _c(v: np.floating, fmt: str) -> str:
    """printf of a float that may be NaN (glibc prints ``-nan`` for 0/0)."""
    return "-nan" if np.isnan(v) else format(float(v), fmt)


def iou_xywh(a: NDArray[np.floating], b: NDArray[np.floating]) -> F64:
    """IoU matrix ``(len(a), len(b))`` of centre-size boxes (Darknet's ``box_iou``)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)

    def overlap(c1: F64, s1: F64, c2: F64, s2: F64) -> F64:
        left = np.maximum(c1 - s1 / 2, c2 - s2 / 2)
        right = np.minimum(c1 + s1 / 2, c2 + s2 / 2)
        return right - left

    ax, ay, aw, ah = (a[:, i : i + 1] for i in range(4))
    bx, by, bw, bh = (b[None, :, i] for i in range(4))
    w = overlap(ax, aw, bx, bw)
    h = overlap(ay, ah, by, bh)
    inter = np.where((w < 0) | (h < 0), 0.0, w * h)
    union = aw * ah + bw * bh - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(union > 0, inter / union, 0.0)
    return out


def average_precision(
    recall: Sequence[float] | F64, precision: Sequence[float] | F64, points: int = 0
) -> float:
    """AP of one class from its cumulative recall/precision in rank order.

    ``points = 0``: all-point interpolation, ``sum (r_k - r_{k-1}) * max_{j >= k} p_j``; the
    envelope walk of ``validate_detector_map`` from the last rank down.  ``points = N``: the
    mean over ``N`` recalls ``0, 1/(N-1), .., 1`` of the best precision at recall ``>=`` it.
    """
    r = np.asarray(recall, dtype=np.float64)
    p = np.asarray(precision, dtype=np.float64)
    if r.size == 0:
        return 0.0
    if points == 0:
        envelope = np.maximum.accumulate(p[::-1])[::-1]
        steps = np.diff(np.concatenate(([0.0], r)))
        return float(np.sum(steps * envelope))
    total = 0.0
    for k in range(points):
        cur = k * 1.0 / (points - 1)
        ok = r >= cur
        total += float(p[ok].max()) if ok.any() else 0.0
    return total / points


def evaluate_map(
    images: Sequence[ImageEval],
    classes: int,
    names: Sequence[str] | None = None,
    *,
    iou_thresh: float = 0.5,
    conf_thresh: float = 0.25,
    map_points: int = 0,
) -> MapResult:
    """``validate_detector_map`` over already-decoded detections (see the module docstring)."""
    probs_all, cls_all, tid_all, best_all = [], [], [], []
    truth_count = np.zeros(classes, dtype=np.int64)
    tp_thr = np.zeros(classes, dtype=np.int64)
    fp_thr = np.zeros(classes, dtype=np.int64)
    iou_sum = 0.0
    offset = 0
    for item in images:
        truth = np.asarray(item.truth, dtype=np.float64).reshape(-1, 5)
        tcls = truth[:, 0].astype(np.int64)
        truth_count += np.bincount(tcls[(tcls >= 0) & (tcls < classes)], minlength=classes)
        probs = np.asarray(item.probs, dtype=np.float64).reshape(len(item.boxes), classes)
        # one entry per (box, class) with prob > 0, in the C loops' order (box, then class)
        ent_box, ent_cls = np.nonzero(probs > 0)
        prob = probs[ent_box, ent_cls]
        ious = iou_xywh(item.boxes, truth[:, 1:5])[ent_box]
        cand = np.where((tcls[None, :] == ent_cls[:, None]) & (ious > iou_thresh), ious, 0.0)
        if truth.shape[0]:
            j = np.argmax(cand, axis=1)  # first of equal maxima, as the strict `>` scan
            best = cand[np.arange(len(j)), j]
        else:
            j = np.zeros(len(prob), dtype=np.int64)
            best = np.zeros(len(prob))
        tid = np.where(best > 0, offset + j, -1)
        # TP/FP at conf_thresh: the C code's `found` scan over this image's earlier entries
        first: dict[int, int] = {}
        for k, t in enumerate(tid.tolist()):
            first.setdefault(t, k)
        for k in np.flatnonzero(prob > conf_thresh).tolist():
            t = int(tid[k])
            if t >= 0 and first[t] == k:
                iou_sum += float(best[k])
                tp_thr[ent_cls[k]] += 1
            else:
                fp_thr[ent_cls[k]] += 1
        probs_all.append(prob)
        cls_all.append(ent_cls)
        tid_all.append(tid)
        best_all.append(best)
        offset += len(truth)

    prob = np.concatenate(probs_all) if probs_all else np.zeros(0)
    cls = np.concatenate(cls_all) if cls_all else np.zeros(0, np.int64)
    tid = np.concatenate(tid_all) if tid_all else np.zeros(0, np.int64)
    order = np.argsort(-prob, kind="stable")
    cls, tid = cls[order], tid[order]
    # a truth counts once: the highest-ranked entry that matched it is the TP
    is_tp = np.zeros(len(tid), dtype=bool)
    if len(tid):
        uniq, first_rank = np.unique(tid, return_index=True)
        is_tp[first_rank[uniq >= 0]] = True
    per_class_r: list[F64] = []
    per_class_p: list[F64] = []
    for c in range(classes):
        hits = is_tp[cls == c]
        tp = np.cumsum(hits)
        fp = np.cumsum(~hits)
        per_class_p.append(tp / np.maximum(tp + fp, 1))
        per_class_r.append(tp / truth_count[c] if truth_count[c] > 0 else np.zeros(len(tp)))

    rows = []
    for c in range(classes):
        name = names[c] if names is not None and c < len(names) else str(c)
        ap = average_precision(per_class_r[c], per_class_p[c], map_points)
        rows.append(ClassAP(c, name, ap, int(tp_thr[c]), int(fp_thr[c]), int(truth_count[c])))
    tp_all, fp_all = int(tp_thr.sum()), int(fp_thr.sum())
    avg_iou = iou_sum / (tp_all + fp_all) if tp_all + fp_all > 0 else 0.0
    mean_ap = sum(r.ap for r in rows) / classes if classes else 0.0
    return MapResult(
        classes=tuple(rows),
        mean_ap=mean_ap,
        iou_thresh=iou_thresh,
        conf_thresh=conf_thresh,
        map_points=map_points,
        detections_count=len(prob),
        unique_truth_count=offset,
        tp=tp_all,
        fp=fp_all,
        avg_iou=avg_iou,
    )
