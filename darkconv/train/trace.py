"""Darknet's training buffers of one ``train_step`` call, named as the darknet-train fixtures name
them (``layer_NNN_output``, ``_x``, ``_rolling_mean``, ``_delta_in``, ``_delta``,
``_bias_updates_after``, ``subJ_`` per datum with subdivisions...), for checking and debugging.

``delta`` arrays are Darknet's sign and scale: the sum over the batch of the negative gradient."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from darkconv.train.losses import LossResult

__all__ = ["Tracer", "GRADIENTS"]

# gradient_array (activations.c): the derivative computed from the OUTPUT y.
GRADIENTS = {
    "linear": lambda y: torch.ones_like(y),
    "leaky": lambda y: torch.where(y > 0, 1.0, 0.1).to(y.dtype),
    "relu": lambda y: (y > 0).to(y.dtype),
    "logistic": lambda y: (1 - y) * y,
}
_UPDATE_KEYS = {"bias": "bias_updates", "scale": "scale_updates", "weight": "weight_updates"}


def _np(t: Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).contiguous().numpy().copy()


def _shape(model: Any, i: int, batch: int) -> tuple[int, ...]:
    (c, h, w), n = model.out_dims[i]
    return (batch, c, h, w) if c * h * w == n else (batch, n)


def _param_roles(layer: nn.Module) -> dict[str, Tensor]:
    """Darknet's names for a layer's trained tensors: bias, scale (BN), weight."""
    roles: dict[str, Tensor] = {}
    bn = getattr(layer, "bn", None)
    for name, p in layer.named_parameters():
        parent, _, leaf = name.rpartition(".")
        if parent.rpartition(".")[2] == "bn":
            roles["scale" if leaf == "weight" else "bias"] = p
        elif leaf == "bias" and bn is None:
            roles["bias"] = p
        elif leaf == "weight":
            roles["weight"] = p
    return roles


class Tracer:
    """Collects the buffers of the datums of one call into :attr:`arrays`."""

    def __init__(self, subdivisions: int = 1) -> None:
        self.prefix_datums = subdivisions > 1
        self.arrays: dict[str, np.ndarray] = {}
        self._bn_in: dict[int, Tensor] = {}
        self._handles: list[Any] = []
        self._datum = 0
        self._before: dict[str, np.ndarray] = {}

    def _key(self, i: int, what: str) -> str:
        pre = f"sub{self._datum}_" if self.prefix_datums else ""
        return f"{pre}layer_{i:03d}_{what}"

    def before_forward(self, model: Any, datum: int) -> None:
        self._datum = datum
        self._bn_in = {}
        for i, layer in enumerate(model.layers):
            bn = getattr(layer, "bn", None)
            if bn is not None:

                def hook(mod: nn.Module, args: tuple[Tensor, ...], i: int = i) -> None:
                    self._bn_in[i] = args[0]

                self._handles.append(bn.register_forward_pre_hook(hook))

    def before_backward(self, outs: list[Tensor | None]) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        for t in list(outs) + list(self._bn_in.values()):
            if t is not None and t.requires_grad:
                t.retain_grad()

    def after_backward(
        self, model: Any, outs: list[Tensor | None], res: LossResult, batch: int
    ) -> None:
        heads = {h.index: h for h in res.heads}
        b = next(o.shape[0] for o in outs if o is not None)
        a = self.arrays
        for i, layer in enumerate(model.layers):
            y = outs[i]
            assert y is not None
            head = heads.get(i)
            out = head.output if head is not None and head.output is not None else y
            a[self._key(i, "output")] = _np(out).reshape(_shape(model, i, b))
            g = y.grad if y.requires_grad else None
            delta_in = (
                head.delta
                if head is not None and (g is None or model.types[i] == "cost")
                else (-g * batch if g is not None else torch.zeros_like(y))
            )
            a[self._key(i, "delta_in")] = _np(delta_in).reshape(_shape(model, i, b))
            delta = delta_in
            x = self._bn_in.get(i)
            if x is not None:
                bn = layer.bn
                a[self._key(i, "x")] = _np(x).reshape(_shape(model, i, b))
                dims = [0] + list(range(2, x.dim()))
                var, mean = torch.var_mean(x.detach(), dim=dims, correction=1)
                a[self._key(i, "mean")] = _np(mean)
                a[self._key(i, "variance")] = _np(var)
                a[self._key(i, "rolling_mean")] = _np(bn.running_mean)
                a[self._key(i, "rolling_variance")] = _np(bn.running_var)
                delta = -x.grad * batch if x.grad is not None else torch.zeros_like(x)
            elif model.types[i] in ("convolutional", "connected", "shortcut"):
                act = getattr(layer, "activation", "linear")
                if act in GRADIENTS:
                    delta = delta_in * GRADIENTS[act](y.detach().reshape(delta_in.shape))
            elif model.types[i] == "region" and layer.semantics.region_trains:
                # backward_region_layer_gpu: gradient_array on x, y, objectness, in place.
                yy = y.detach().reshape((y.shape[0], layer.n, layer.entries) + y.shape[2:])
                fac = torch.where(layer.trained, (1 - yy) * yy, torch.ones_like(yy))
                delta = delta_in * fac.reshape(delta_in.shape)
            elif model.types[i] == "dropout" and layer.last_rand is not None:
                dropped = layer.last_rand.reshape(delta_in.shape) < layer.probability
                delta = torch.where(dropped, 0.0, delta_in * layer.scale)
                a[self._key(i, "rand")] = _np(layer.last_rand).reshape(_shape(model, i, b))
            a[self._key(i, "delta")] = _np(delta).reshape(_shape(model, i, b))

    def before_update(self, model: Any, optimizer: torch.optim.Optimizer, batch: int) -> None:
        for i, layer in enumerate(model.layers):
            for role, p in _param_roles(layer).items():
                state = optimizer.state.get(p, {})
                u = state.get("updates", torch.zeros_like(p))
                if p.grad is not None:
                    u = u - p.grad * batch
                self.arrays[f"layer_{i:03d}_{_UPDATE_KEYS[role]}"] = _np(u)

    def after_update(self, model: Any, optimizer: torch.optim.Optimizer) -> None:
        for i, layer in enumerate(model.layers):
            for role, p in _param_roles(layer).items():
                u = optimizer.state.get(p, {}).get("updates")
                if u is not None:
                    self.arrays[f"layer_{i:03d}_{_UPDATE_KEYS[role]}_after"] = _np(u)
