"""What every cost layer hands to :func:`darkconv.train.losses.darknet_loss`, and the index
helpers the detector losses share (Darknet's loops vectorised: last writer wins, first maximum)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["HeadLoss", "truth_rows", "winners", "first_argmax", "mark_classes"]


@dataclass(frozen=True)
class HeadLoss:
    """One cost layer's result: ``delta`` is injected (times ``scale``) as ``-gradient`` into
    ``target`` (the head's output; the input for ``[cost]``)."""

    index: int
    target: Tensor
    delta: Tensor
    scale: float
    cost: Tensor
    output: Tensor | None = None  # the training output when it is not the module's (``[cost]``)


def truth_rows(truth: Tensor, batch: int, stride: int) -> Tensor:
    """Darknet reads ``net.truth`` as one flat buffer with the layer's own row stride."""
    flat = truth.reshape(-1)
    need = batch * stride
    if flat.numel() < need:
        flat = torch.cat([flat, flat.new_zeros(need - flat.numel())])
    return flat[:need].reshape(batch, stride)


def winners(pos: Tensor, order: Tensor, size: int) -> Tensor:
    """Mask of the entries that write last at their position (a later truth overwrites)."""
    last = torch.full((size,), -1, dtype=torch.long, device=pos.device)
    last.scatter_reduce_(0, pos, order, reduce="amax")
    return last[pos] == order


def first_argmax(scores: Tensor) -> Tensor:
    """Index of the first strictly greatest value, 0 when all are <= 0 (``if (iou > best)``)."""
    if scores.shape[-1] == 0:
        return torch.zeros(scores.shape[:-1], dtype=torch.long, device=scores.device)
    best = scores.max(dim=-1, keepdim=True).values
    idx = torch.arange(scores.shape[-1], device=scores.device).expand_as(scores)
    first = torch.where(scores == best, idx, scores.shape[-1]).min(dim=-1).values
    return torch.where(best.squeeze(-1) > 0, first, torch.zeros_like(first))


def mark_classes(cls_set: Tensor, b: Tensor, n: Tensor, j: Tensor, i: Tensor, cls: Tensor) -> None:
    c = cls.long()
    ok = (c >= 0) & (c < cls_set.shape[2])
    cls_set[b[ok], n[ok], c[ok], j[ok], i[ok]] = True
