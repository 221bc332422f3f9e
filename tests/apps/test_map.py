"""mAP (darkconv.apps.map) against hand-worked figures and against pycocotools."""

from __future__ import annotations

import numpy as np
import pytest

from darkconv.apps.map import ImageEval, average_precision, evaluate_map


def _one(boxes, probs, truth) -> ImageEval:
    return ImageEval(np.asarray(boxes, np.float32), np.asarray(probs, np.float32),
                     np.asarray(truth, np.float32))  # fmt: skip


def test_all_point_hand_worked() -> None:
    # ranks: TP, FP, TP, FP with 3 truths -> precision 1, 1/2, 2/3, 1/2; recall 1/3, 1/3, 2/3, 2/3
    # envelope 1, 2/3, 2/3, 1/2 -> AP = 1/3*1 + 1/3*2/3 = 5/9
    r = [1 / 3, 1 / 3, 2 / 3, 2 / 3]
    p = [1, 1 / 2, 2 / 3, 1 / 2]
    assert average_precision(r, p) == pytest.approx(5 / 9)
    # 11 points: recall 0, .1, .2, .3 -> 1; .4 .. .6 -> 2/3; .7 .. 1 -> 0  => (4 + 3*2/3)/11
    assert average_precision(r, p, points=11) == pytest.approx(6 / 11)


def test_evaluate_map_hand_worked() -> None:
    # image 0: two class-0 truths, detections: exact hit (.9), duplicate of it (.8) -> FP,
    # a miss (.7), the second truth (.6).  image 1: one class-1 truth found at .5.
    t0 = [[0, 0.25, 0.25, 0.2, 0.2], [0, 0.75, 0.75, 0.2, 0.2]]
    boxes0 = [[0.25, 0.25, 0.2, 0.2], [0.26, 0.25, 0.2, 0.2], [0.5, 0.1, 0.1, 0.1],
              [0.75, 0.75, 0.2, 0.2]]  # fmt: skip
    probs0 = [[0.9, 0], [0.8, 0], [0.7, 0], [0.6, 0]]
    t1 = [[1, 0.5, 0.5, 0.4, 0.4]]
    res = evaluate_map(
        [_one(boxes0, probs0, t0), _one([[0.5, 0.5, 0.4, 0.4]], [[0, 0.5]], t1)],
        classes=2,
        names=["a", "b"],
    )
    # class 0: precision 1, 1/2, 1/3, 1/2; recall 1/2, 1/2, 1/2, 1 -> AP = 1/2*1 + 1/2*1/2 = 3/4
    assert res.classes[0].ap == pytest.approx(0.75)
    assert res.classes[1].ap == pytest.approx(1.0)
    assert res.mean_ap == pytest.approx(0.875)
    assert (res.detections_count, res.unique_truth_count) == (5, 3)
    # conf_thresh .25: TP = 3 (.9, .6, .5), FP = 2 (.8 duplicate, .7 miss)
    assert (res.tp, res.fp, res.fn) == (3, 2, 0)
    lines = res.lines()
    assert "class_id = 0, name = a, ap = 75.00%   \t (TP = 2, FP = 2) " in lines
    assert lines[-1] == " mean average precision (mAP@0.50) = 0.875000, or 87.50 % "
    assert " IoU threshold = 50 %, used Area-Under-Curve for each unique Recall " in lines


def test_no_detections_gives_zero() -> None:
    res = evaluate_map([_one(np.zeros((0, 4)), np.zeros((0, 2)), [[0, 0.5, 0.5, 0.1, 0.1]])], 2)
    assert res.mean_ap == 0.0 and res.detections_count == 0


def _scene(rng: np.random.Generator, classes: int) -> ImageEval:
    """Truths on a 3x3 grid (never overlapping), detections jittered around some of them plus
    clutter; each detection overlaps at most one truth, so greedy matching is unambiguous."""
    cells = rng.permutation(9)[: rng.integers(1, 5)]
    truth, boxes, probs = [], [], []
    for cell in cells:
        cx, cy = (cell % 3 + 0.5) / 3, (cell // 3 + 0.5) / 3
        c = int(rng.integers(classes))
        truth.append([c, cx, cy, 0.2, 0.2])
        for _ in range(rng.integers(0, 3)):
            j = rng.uniform(-0.06, 0.06, 2)
            p = np.zeros(classes)
            p[c if rng.random() < 0.8 else rng.integers(classes)] = rng.uniform(0.01, 1)
            boxes.append([cx + j[0], cy + j[1], 0.2, 0.2])
            probs.append(p)
    for _ in range(rng.integers(0, 3)):  # clutter far from every truth (between grid cells)
        p = np.zeros(classes)
        p[rng.integers(classes)] = rng.uniform(0.01, 1)
        boxes.append([rng.integers(1, 3) / 3, rng.integers(1, 3) / 3, 0.02, 0.02])
        probs.append(p)
    return _one(np.reshape(boxes, (-1, 4)), np.reshape(probs, (-1, classes)), truth)


def test_against_pycocotools() -> None:
    pytest.importorskip("pycocotools", reason="pycocotools is the independent AP implementation")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(7)
    classes = 3
    scenes = [_scene(rng, classes) for _ in range(40)]
    size = 100.0
    images, anns, dets = [], [], []
    for i, s in enumerate(scenes):
        images.append({"id": i, "width": size, "height": size})
        for t in s.truth:
            c, x, y, w, h = (float(v) for v in t)
            box = [(x - w / 2) * size, (y - h / 2) * size, w * size, h * size]
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(c), "bbox": box,
                         "area": box[2] * box[3], "iscrowd": 0})  # fmt: skip
        for b, p in zip(s.boxes, s.probs, strict=True):
            x, y, w, h = (float(v) for v in b)
            for c in np.flatnonzero(p > 0):
                box = [(x - w / 2) * size, (y - h / 2) * size, w * size, h * size]
                dets.append({"image_id": i, "category_id": int(c), "bbox": box,
                             "score": float(p[c])})  # fmt: skip
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns,
                  "categories": [{"id": c} for c in range(classes)]}  # fmt: skip
    gt.createIndex()
    ev = COCOeval(gt, gt.loadRes(dets), "bbox")
    ev.params.iouThrs = np.array([0.5])
    ev.params.maxDets = [1000]
    ev.params.areaRng = [[0, 1e10]]
    ev.params.areaRngLbl = ["all"]
    ev.evaluate()
    ev.accumulate()
    precision = ev.eval["precision"][0, :, :, 0, 0]  # (recall points, classes)
    ours = evaluate_map(scenes, classes, map_points=101)
    for c in range(classes):
        coco_ap = float(np.mean(np.maximum(precision[:, c], 0)))
        assert ours.classes[c].ap == pytest.approx(coco_ap, abs=1e-9), c
    # all-point AP is the limit of the N-point mean: 101 points is within 1/101 of it
    exact = evaluate_map(scenes, classes)
    assert abs(exact.mean_ap - ours.mean_ap) < 0.02
