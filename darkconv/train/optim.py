"""Darknet's update (update_network, update_convolutional_layer, update_connected_layer in
network.c / convolutional_layer.c / connected_layer.c) as a ``torch.optim.Optimizer``, and its
learning-rate schedule as a scheduler that composes with ordinary loops."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from darkconv.errors import UnsupportedError
from darkconv.train.hyper import GlibcRand, TrainHyper, get_current_rate

__all__ = ["DarknetSGD", "DarknetLR", "param_groups", "make_optimizer"]


class DarknetSGD(torch.optim.Optimizer):
    """Darknet's SGD.  ``p.grad`` is the gradient of (sum over the images of the loss) / ``batch``
    (what :func:`darkconv.train.darknet_loss` produces); per parameter, with Darknet's buffer
    ``u`` (state ``"updates"``, the momentum state Darknet keeps in ``*_updates``)::

        u += -batch * grad            (backward: *_updates sum the deltas over the batch)
        u += -decay * batch * p       (weights only: the group's ``decay``)
        p += lr / batch * u
        u *= momentum

    This equals ``torch.optim.SGD`` with ``weight_decay=decay`` and buffer ``-u / batch``.  A
    parameter without a gradient still decays and keeps its momentum, as in Darknet.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.001,
        momentum: float = 0.9,
        decay: float = 0.0001,
        batch: int = 1,
    ) -> None:
        defaults = {"lr": lr, "momentum": momentum, "decay": decay, "batch": batch, "lr_scale": 1.0}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            batch = group["batch"]
            lr = float(torch.tensor(group["lr"], dtype=torch.float32) / batch)
            decay = float(torch.tensor(-group["decay"], dtype=torch.float32) * batch)
            for p in group["params"]:
                state = self.state[p]
                u = state.get("updates")
                if u is None:
                    u = state["updates"] = torch.zeros_like(p)
                if p.grad is not None:
                    u.add_(p.grad, alpha=-batch)
                if group["decay"]:
                    u.add_(p, alpha=decay)
                p.add_(u, alpha=lr)
                u.mul_(group["momentum"])
        return loss


def _modules_with_updates(model: nn.Module) -> Iterable[tuple[nn.Module, float]]:
    """Each layer with an update function and its ``learning_rate=`` option (parse_network_cfg
    reads it into ``l.learning_rate_scale`` for every layer, default 1)."""
    from darkconv.nn.modules import BatchNormLayer

    layers = getattr(model, "layers", [model])
    net = getattr(model, "network", None)
    for i, layer in enumerate(layers):
        # A standalone [batchnorm] has no update function: its scales are never trained.
        if isinstance(layer, BatchNormLayer):
            continue
        raw = dict(net.layers[i].cfg).get("learning_rate") if net is not None else None
        yield layer, float(np.float32(raw)) if raw is not None else 1.0


def param_groups(model: nn.Module, decay: float = 0.0001) -> list[dict[str, Any]]:
    """Darknet's parameters: weights of conv/connected/local/deconv layers with ``decay``; their
    biases and batch-norm scales without (``update_*_layer`` decays ``weights`` only).  A layer's
    ``learning_rate=`` scales its rate (update_convolutional_layer: ``lr * learning_rate_scale``),
    one group per (decay, scale)."""
    groups: dict[tuple[bool, float], list[Tensor]] = {}
    for layer, scale in _modules_with_updates(model):
        for name, p in layer.named_parameters():
            parent, _, leaf = name.rpartition(".")
            weights = leaf == "weight" and parent.rpartition(".")[2] != "bn"
            groups.setdefault((weights, scale), []).append(p)
    order = sorted(groups, key=lambda k: (not k[0], k[1] != 1.0, k[1]))
    return [{"params": groups[k], "decay": decay if k[0] else 0.0, "lr_scale": k[1]} for k in order]


class DarknetLR:
    """get_current_rate as a scheduler: ``step(seen)`` sets every group's ``lr`` to the rate at
    ``seen`` (times the group's ``lr_scale``); ``step()`` advances ``seen`` by one update
    (``hyper.batch`` images).  ``rand`` replays ``policy=random`` (else torch's generator)."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        hyper: TrainHyper,
        seen: int = 0,
        rand: GlibcRand | None = None,
    ) -> None:
        self.optimizer = optimizer
        self.hyper = hyper
        self.seen = seen
        self.rand = rand
        if hyper.policy == "random" and rand is None:
            self.rand = GlibcRand(int(torch.randint(1, 2**31 - 1, ()).item()))
        self.last_lr: list[float] = [g["lr"] for g in optimizer.param_groups]

    def rate(self, seen: int | None = None) -> float:
        return get_current_rate(self.hyper, self.seen if seen is None else seen, self.rand)

    def step(self, seen: int | None = None) -> float:
        self.seen = self.seen + self.hyper.batch if seen is None else seen
        rate = self.rate()
        for g in self.optimizer.param_groups:
            g["lr"] = float(torch.tensor(rate, dtype=torch.float32) * g.get("lr_scale", 1.0))
        self.last_lr = [g["lr"] for g in self.optimizer.param_groups]
        return rate

    def get_last_lr(self) -> list[float]:
        return list(self.last_lr)

    def state_dict(self) -> dict[str, Any]:
        return {"seen": self.seen, "last_lr": list(self.last_lr)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seen = int(state["seen"])
        self.last_lr = list(state["last_lr"])


def make_optimizer(
    model: nn.Module, hyper: TrainHyper | None = None, rand: GlibcRand | None = None
) -> tuple[DarknetSGD, DarknetLR]:
    """DarknetSGD and DarknetLR configured from the cfg's ``[net]`` section."""
    if hyper is None:
        hyper = TrainHyper.from_network(model.network)  # type: ignore[arg-type]
    sem = getattr(model, "semantics", None)
    if hyper.adam and sem is not None and sem.name == "gpu":
        raise UnsupportedError("[net] adam=1 (the GPU build's Adam update) is not supported yet")
    opt = DarknetSGD(
        param_groups(model, hyper.decay),
        hyper.learning_rate,
        hyper.momentum,
        hyper.decay,
        hyper.batch,
    )
    sched = DarknetLR(opt, hyper, seen=int(getattr(model, "seen", 0)), rand=rand)
    return opt, sched
