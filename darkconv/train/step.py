"""One Darknet ``train_network(net, d)`` call (network.c train_network, train_network_datum)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from darkconv.errors import DarkconvError
from darkconv.train.hyper import TrainHyper
from darkconv.train.losses import LossResult, darknet_loss
from darkconv.train.optim import DarknetLR

__all__ = ["StepResult", "train_step", "set_semantics"]


@dataclass(frozen=True)
class StepResult:
    loss: float  # what train_network returns: sum of the datums' costs / images
    lr: float | None  # the rate of the update that ran in this call (None: no update)
    seen: int  # *net->seen after the call
    updated: bool
    datums: tuple[LossResult, ...] = ()


def set_semantics(model: Any, semantics: str) -> Any:
    """``"cpu"`` (stock CPU Darknet) or ``"gpu"`` (CUDA/cuDNN build, the default)."""
    return model.set_semantics(semantics)


def _tensor(a: Tensor | np.ndarray, like: Tensor) -> Tensor:
    t = torch.from_numpy(np.ascontiguousarray(a)) if isinstance(a, np.ndarray) else a
    return t.to(like.device, torch.float32)


def train_step(
    model: Any,
    x: Tensor | np.ndarray,
    y: Tensor | np.ndarray,
    optimizer: torch.optim.Optimizer,
    scheduler: DarknetLR | None = None,
    *,
    hyper: TrainHyper | None = None,
    semantics: str | None = None,
    keep: bool = False,
    tracer: Any = None,
) -> StepResult:
    """train_network: split ``x``/``y`` into datums of ``net_batch`` rows; per datum advance
    ``seen`` (before the forward), run the training forward and Darknet's backward (gradients
    accumulate over the subdivisions), and update when ``(seen / net_batch) % subdivisions == 0``.
    ``keep=True`` keeps each datum's :class:`LossResult` (deltas, costs) in the result;
    ``tracer`` (:class:`darkconv.train.trace.Tracer`) records Darknet's buffers."""
    if hyper is None:
        hyper = scheduler.hyper if scheduler is not None else TrainHyper.from_network(model.network)
    if semantics is not None:
        model.set_semantics(semantics)
    model.train()
    x_t = _tensor(x, model.header)
    y_t = _tensor(y, model.header)
    b = hyper.net_batch
    rows = x_t.shape[0]
    if rows % b or y_t.shape[0] != rows:
        raise DarkconvError(
            f"train_step: {rows} input rows and {y_t.shape[0]} truth rows: both must be the same "
            f"multiple of batch/subdivisions = {b}"
        )
    total, lr, updated, kept = 0.0, None, False, []
    for i in range(rows // b):
        xi, yi = x_t[i * b : (i + 1) * b], y_t[i * b : (i + 1) * b]
        model.header[3] += b  # *net->seen += net->batch, before the forward
        seen = int(model.header[3])
        if tracer is not None:
            tracer.before_forward(model, i)
        outs = model(xi, all_outputs=True)
        res = darknet_loss(model, outs, yi, seen=seen, batch=hyper.batch)
        if tracer is not None:
            tracer.before_backward(outs)
        if res.loss.requires_grad:
            res.loss.backward()
        if tracer is not None:
            tracer.after_backward(model, outs, res, hyper.batch)
        total += res.cost
        if keep:
            kept.append(res)
        del outs, res
        if (seen // b) % hyper.subdivisions == 0:
            if scheduler is not None:
                scheduler.step(seen)
            lr = float(optimizer.param_groups[0]["lr"])
            if tracer is not None:
                tracer.before_update(model, optimizer, hyper.batch)
            optimizer.step()
            if tracer is not None:
                tracer.after_update(model, optimizer)
            optimizer.zero_grad(set_to_none=True)
            updated = True
    return StepResult(total / rows, lr, int(model.header[3]), updated, tuple(kept))
