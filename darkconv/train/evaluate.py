"""Validation during and after training: top-1/top-k of a classifier, mAP of a detector.

Both read the images as ``darkconv predict`` / ``detect`` do (``load_image_color`` +
``letterbox_image`` to the network size) and run the model in ``eval()`` mode, so the figures
equal what those commands give for the same ``.weights``.  The detector path is AlexeyAB's
``validate_detector_map``: ``thresh = .005``, ``do_nms_sort`` at ``.45``, then
:func:`darkconv.apps.map.evaluate_map`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from darkconv.apps.dialects import AppDialect, network_dialect
from darkconv.apps.map import ImageEval, MapResult, evaluate_map
from darkconv.apps.steps import BOXES, NMS, detector_setup
from darkconv.train.data import Sample
from darkconv.train.loader import ValidSet, checked, collate, loader_kwargs

__all__ = ["TopK", "classifier_topk", "detector_map"]

MAP_THRESH = 0.005  # validate_detector_map
MAP_NMS = 0.45


@dataclass(frozen=True)
class TopK:
    top1: float
    topk: float
    k: int
    count: int


def _batches(valid: ValidSet, batch: int, workers: int) -> DataLoader[Any]:
    return DataLoader(
        valid,
        batch_size=batch,
        shuffle=False,
        collate_fn=collate,
        **{**loader_kwargs(workers), "persistent_workers": False},
    )


def _device(model: Any) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def classifier_topk(
    model: Any, samples: Sequence[Sample], k: int = 5, batch: int = 32, workers: int = 0
) -> TopK:
    """Top-1 and top-k accuracy (Darknet's ``top_k``: ties keep the lower index)."""
    net = model.network
    _, h, w = net.input
    was = model.training
    model.eval()
    hit1 = hitk = n = 0
    dev = _device(model)
    try:
        d: AppDialect = network_dialect(net)
        for item in _batches(ValidSet(samples, w, h, d, "classifier"), batch, workers):
            x, meta = checked(item)
            out = model(x.to(dev)).reshape(x.shape[0], -1).float().cpu().numpy()
            for row, m in zip(out, meta.numpy(), strict=True):
                truth = samples[int(m[0])].label
                order = np.argsort(-row, kind="stable")[:k]
                hit1 += int(order[0] == truth)
                hitk += int(truth in order)
                n += 1
    finally:
        model.train(was)
    return TopK(hit1 / n if n else 0.0, hitk / n if n else 0.0, k, n)


@torch.no_grad()
def detector_map(
    model: Any,
    samples: Sequence[Sample],
    names: Sequence[str] | None = None,
    *,
    iou_thresh: float = 0.5,
    conf_thresh: float = 0.25,
    map_points: int = 0,
    batch: int = 8,
    workers: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> MapResult:
    """mAP over ``samples`` (each with its truth boxes), as ``detector map`` computes it."""
    net = model.network
    setup = detector_setup(net)  # the network's dialect: decoder, NMS, letterbox
    heads = setup.heads
    classes = setup.prob_classes
    _, net_h, net_w = net.input
    valid = ValidSet(samples, net_w, net_h, setup.dialect, "detector", setup.letter_box)
    was = model.training
    model.eval()
    dev = _device(model)
    evals: list[ImageEval] = []
    try:
        for item in _batches(valid, batch, workers):
            x, meta = checked(item)
            outs = model(x.to(dev))
            flat = [o.reshape(x.shape[0], -1).float().cpu().numpy() for o in outs]
            for b, m in enumerate(meta.numpy()):
                i, im_w, im_h = (int(v) for v in m)
                outputs = {hd.index: flat[k][b] for k, hd in enumerate(heads)}
                size = (im_w, im_h, net_w, net_h)
                boxes = BOXES[setup.dialect.decoder](setup, outputs, size, MAP_THRESH)
                boxes = NMS[setup.dialect.nms](setup, boxes, MAP_NMS)
                truth = samples[i].boxes
                evals.append(
                    ImageEval(
                        boxes.bbox, boxes.prob, truth if truth is not None else np.zeros((0, 5))
                    )
                )
            if progress is not None:
                progress(len(evals), len(samples))
    finally:
        model.train(was)
    return evaluate_map(
        evals, classes, names, iou_thresh=iou_thresh, conf_thresh=conf_thresh,
        map_points=map_points,
    )  # fmt: skip
