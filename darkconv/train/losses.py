"""Darknet's losses as deltas: for each layer with a cost (softmax, cost, yolo, region, detection)
the ``l.delta`` and ``l.cost`` its forward computes (softmax_layer.c, cost_layer.c, yolo_layer.c,
region_layer.c, detection_layer.c), vectorised over the batch.

``l.delta`` is not always the gradient of ``l.cost`` (yolo, region, detection): :func:`darknet_loss`
therefore returns a scalar whose value is Darknet's cost and whose backward injects
``-delta`` through a custom autograd Function.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from darkconv.errors import UnsupportedError
from darkconv.parse.graph import Layer, Network
from darkconv.train.boxes import layer_options
from darkconv.train.deltas import HeadLoss, truth_rows
from darkconv.train.detectors import detection_loss, region_loss, yolo_loss

__all__ = ["LOSS_TYPES", "HeadLoss", "LossResult", "darknet_loss", "head_loss", "check_trainable"]

SECRET_NUM = -1234.0  # darknet.h: the "masked" cost type's "no truth" marker


@dataclass(frozen=True)
class LossResult:
    loss: Tensor  # scalar: value net_cost / batch, backward -delta / batch
    cost: float  # *net->cost: the mean of the layers' costs
    layer_costs: Mapping[int, float]
    heads: tuple[HeadLoss, ...]


# --- softmax and [cost] --------------------------------------------------------------------------


def softmax_loss(
    la: Layer, net: Network, inp: Tensor, out: Tensor, truth: Tensor, seen: int
) -> HeadLoss | None:
    if int(layer_options(la)["noloss"]):
        return None
    p = out.reshape(out.shape[0], -1)
    t = truth_rows(truth, p.shape[0], p.shape[1]).to(p.dtype)
    # softmax_x_ent_cpu: delta = t - p; error = t ? -log(p) : 0 (not weighted by t).
    err = torch.where(t != 0, -torch.log(p.double()), torch.zeros_like(p, dtype=torch.float64))
    return HeadLoss(la.index, out, (t - p).reshape(out.shape), 1.0, err.float().sum())


def cost_loss(
    la: Layer, net: Network, inp: Tensor, out: Tensor, truth: Tensor, seen: int
) -> HeadLoss:
    o = layer_options(la)
    x = inp.reshape(inp.shape[0], -1)
    t = truth_rows(truth, x.shape[0], x.shape[1]).to(x.dtype)
    kind = o["type"]
    if kind == "masked":  # forward_cost_layer: masked truth -> the input takes SECRET_NUM too
        x = torch.where(t == SECRET_NUM, t, x)
    diff = t - x
    if kind == "smooth":  # smooth_l1_cpu
        small = diff.abs() < 1
        delta = torch.where(small, diff, torch.where(diff < 0, 1.0, -1.0).to(x.dtype))
        error = torch.where(small, diff * diff, 2 * diff.abs() - 1)
    elif kind == "L1":  # l1_cpu
        delta = torch.where(diff > 0, 1.0, -1.0).to(x.dtype)
        error = diff.abs()
    else:  # l2_cpu (sse, and seg/wgan/masked on the CPU)
        delta, error = diff, diff * diff
    return HeadLoss(la.index, inp, delta.reshape(inp.shape), float(o["scale"]), error.sum(), error)


def logistic_loss(
    la: Layer, net: Network, inp: Tensor, out: Tensor, truth: Tensor, seen: int
) -> HeadLoss:
    """``[logistic]`` (forward_logistic_layer, blas.c logistic_x_ent_cpu): ``delta = t - p``,
    ``error = -t*log(p) - (1-t)*log(1-p)``; it reads ``net.truth`` with its own row stride."""
    p = out.reshape(out.shape[0], -1)
    t = truth_rows(truth, p.shape[0], p.shape[1]).to(p.dtype)
    pd, td = p.double(), t.double()
    err = -td * torch.log(pd) - (1 - td) * torch.log(1 - pd)
    return HeadLoss(la.index, out, (t - p).reshape(out.shape), 1.0, err.float().sum())


# --- dispatch ----------------------------------------------------------------------------------------

LossFn = Any
LOSS_TYPES: dict[str, LossFn] = {
    "softmax": softmax_loss,
    "cost": cost_loss,
    "logistic": logistic_loss,
    "yolo": yolo_loss,
    "region": region_loss,
    "detection": detection_loss,
}


def head_loss(
    la: Layer, net: Network, inp: Tensor, out: Tensor, truth: Tensor, seen: int
) -> HeadLoss | None:
    fn = LOSS_TYPES.get(la.type)
    if fn is None:
        return None
    return fn(la, net, inp, out, truth, seen)


class _Inject(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, value: Tensor, *pairs: Tensor) -> Tensor:
        ctx.grads = pairs[len(pairs) // 2 :]
        return value.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        grads = tuple(g * grad for g in ctx.grads)
        return (None, *grads, *(None,) * len(grads))


def darknet_loss(
    model: Any,
    outputs: Sequence[Tensor | None],
    truth: Tensor,
    *,
    seen: int,
    batch: int | None = None,
) -> LossResult:
    """Darknet's cost of one forward (``calc_network_cost``: the mean over the cost layers) as a
    scalar tensor ``net_cost / batch`` whose backward is ``-delta * scale / batch`` on each head.
    ``seen`` is ``*net->seen`` already advanced for this batch (``[region]``'s prior phase)."""
    net: Network = model.network
    check_trainable(net)
    rows = outputs[0].shape[0] if outputs and outputs[0] is not None else truth.shape[0]
    batch = batch or rows
    heads: list[HeadLoss] = []
    with torch.no_grad():
        for la in net.layers:
            if la.type not in LOSS_TYPES:
                continue
            src = la.sources[0]
            inp = outputs[src] if src >= 0 else None
            out = outputs[la.index]
            h = head_loss(la, net, inp, out, truth, seen)  # type: ignore[arg-type]
            if h is not None:
                heads.append(h)
    if not heads:
        raise UnsupportedError(
            "the network has no layer with a cost (softmax, cost, logistic, yolo, region, detection)"
        )
    costs = torch.stack([h.cost.float() for h in heads])
    net_cost = costs.mean()
    value = net_cost / batch
    grads = [(-h.delta * (h.scale / batch)).to(h.target.dtype) for h in heads]
    loss = _Inject.apply(value.to(heads[0].target.dtype), *[h.target for h in heads], *grads)
    return LossResult(loss, float(net_cost), {h.index: float(h.cost) for h in heads}, tuple(heads))


# Layers whose Darknet training is not reproduced: the recurrent layers keep their hidden state
# across datums and calls and split the batch into time_steps (forward_rnn_layer & co), which
# the training forward does not model (measured against pjreddie: 3e-2 off after one call).
UNTRAINABLE = frozenset({"rnn", "gru", "lstm", "crnn", "conv_lstm"})


def check_trainable(net: Network) -> None:
    """Refuse what the loss code does not reproduce, naming the option."""
    dialect = getattr(net, "dialect", "pjreddie")
    for la in net.layers:
        if la.type in UNTRAINABLE:
            raise UnsupportedError(
                f"layer {la.index}: training a recurrent [{la.type}] layer is not supported",
                la.span,
            )
        if dialect != "pjreddie" and la.type in (
            "yolo",
            "region",
            "detection",
            "Gaussian_yolo",
            "gaussian_yolo",
        ):
            opts = dict(la.cfg)
            named = ", ".join(
                f"{k}={opts[k]}"
                for k in ("iou_loss", "iou_normalizer", "cls_normalizer", "scale_x_y", "new_coords")
                if k in opts
            )
            raise UnsupportedError(
                f"layer {la.index}: training the AlexeyAB [{la.type}] loss is not supported yet"
                + (
                    f" ({named})"
                    if named
                    else " (its deltas differ from pjreddie's: iou_loss, normalizers)"
                ),
                la.span,
            )
        if la.type == "region" and (la.options.get("coords", 4) > 4 or dict(la.cfg).get("tree")):
            raise UnsupportedError(
                f"layer {la.index}: training [region] with tree= or coords > 4 is not supported",
                la.span,
            )
        if la.type in ("yolo", "region") and dict(la.cfg).get("map"):
            raise UnsupportedError(
                f"layer {la.index}: [{la.type}] map= is not supported in training", la.span
            )
