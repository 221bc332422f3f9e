"""Darknet activations (activations.h / activations.c) as torch functions, plus the
``[activation]``/``[logistic]`` and ``[dropout]`` layers."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ACTIVATIONS", "activate", "Activation", "Identity"]

# Darknet computes each activation in double (its constants are double literals) and stores a
# float.  The piecewise-linear ones are computed here in the tensor's dtype (at most 1 ulp from
# Darknet's rounding); the transcendental ones in float64 then cast back, which also reproduces
# tanh's NaN for x > ~354.9 (exp overflow in ``tanh_activate``).


def _f64(fn: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    def wrapped(x: Tensor) -> Tensor:
        return fn(x.double()).to(x.dtype)

    return wrapped


def _stair(x: Tensor) -> Tensor:
    # stair_activate: n = floor(x); even n -> floor(x/2), odd n -> (x - n) + floor(x/2)
    n = torch.floor(x)
    half = torch.floor(x / 2)
    return torch.where(torch.remainder(n, 2) == 0, half, (x - n) + half)


def _tanh(x: Tensor) -> Tensor:
    e = torch.exp(2 * x)
    return (e - 1) / (e + 1)


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "linear": lambda x: x,
    "leaky": lambda x: F.leaky_relu(x, 0.1),
    "relu": F.relu,
    "relie": lambda x: torch.where(x > 0, x, 0.01 * x),
    "ramp": lambda x: x * (x > 0) + 0.1 * x,
    "hardtan": lambda x: torch.clamp(x, -1.0, 1.0),
    "lhtan": lambda x: torch.where(x < 0, 0.001 * x, torch.where(x > 1, 0.001 * (x - 1) + 1, x)),
    "plse": lambda x: torch.where(
        x < -4, 0.01 * (x + 4), torch.where(x > 4, 0.01 * (x - 4) + 1, 0.125 * x + 0.5)
    ),
    "stair": _stair,
    "logistic": _f64(lambda x: 1.0 / (1.0 + torch.exp(-x))),
    "loggy": _f64(lambda x: 2.0 / (1.0 + torch.exp(-x)) - 1.0),
    "tanh": _f64(_tanh),
    "elu": _f64(lambda x: torch.where(x >= 0, x, torch.expm1(x))),
    "selu": _f64(lambda x: torch.where(x >= 0, 1.0507 * x, 1.0507 * 1.6732 * torch.expm1(x))),
}


def activate(x: Tensor, name: str) -> Tensor:
    """Apply Darknet activation ``name`` elementwise."""
    try:
        fn = ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown Darknet activation {name!r}") from None
    return fn(x)


class Activation(nn.Module):
    """``[activation]``/``[logistic]`` layers (activation_layer.c): the activation alone."""

    def __init__(self, activation: str = "linear") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown Darknet activation {activation!r}")
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        return activate(x, self.activation)

    def extra_repr(self) -> str:
        return self.activation


class Identity(nn.Module):
    """``[dropout]`` at inference: Darknet shares the previous output buffer."""

    def forward(self, x: Tensor) -> Tensor:
        return x
