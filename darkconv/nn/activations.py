"""Darknet activations (activations.h / activations.c) as torch functions, plus the
``[activation]``/``[logistic]`` and ``[dropout]``/``[empty]`` layers.

Two formula tables, chosen by the dialect's ``activation_math`` fact:

* ``"double"`` (pjreddie): each activation computed in double (its constants are double
  literals), stored as float;
* ``"float"`` (AlexeyAB): computed in float (``expf``, ``floorf``), with AlexeyAB's own
  formulas (``tanh`` as ``2/(1+expf(-2x))-1``) and its new names (swish, mish, hard_mish, relu6,
  gelu, normalize_channels*).

Functions take a ``(B, C, ...)`` tensor: the ``normalize_channels*`` formulas work across dim 1
(per pixel over the channels), all others elementwise.  ``cpu_zero`` is what AlexeyAB's CPU
``activate()`` returns for a name it has no case for (the builder picks it from the registry's
facts, see :func:`resolve`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ACTIVATIONS",
    "FLOAT_ACTIVATIONS",
    "TABLES",
    "CPU_ZERO",
    "ACROSS_CHANNELS",
    "activate",
    "Activation",
    "Identity",
]

Fn = Callable[[Tensor], Tensor]
CPU_ZERO = "cpu_zero"

# Darknet computes each activation in double (its constants are double literals) and stores a
# float.  The piecewise-linear ones are computed here in the tensor's dtype (at most 1 ulp from
# Darknet's rounding); the transcendental ones in float64 then cast back, which also reproduces
# tanh's NaN for x > ~354.9 (exp overflow in ``tanh_activate``).


def _f64(fn: Fn) -> Fn:
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


_PIECEWISE: dict[str, Fn] = {
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
}

#: pjreddie's formulas (activations.h), transcendental ones in double.
ACTIVATIONS: dict[str, Fn] = {
    **_PIECEWISE,
    "logistic": _f64(lambda x: 1.0 / (1.0 + torch.exp(-x))),
    "loggy": _f64(lambda x: 2.0 / (1.0 + torch.exp(-x)) - 1.0),
    "tanh": _f64(_tanh),
    "elu": _f64(lambda x: torch.where(x >= 0, x, torch.expm1(x))),
    "selu": _f64(lambda x: torch.where(x >= 0, 1.0507 * x, 1.0507 * 1.6732 * torch.expm1(x))),
}


# --- AlexeyAB (activations.h / activations.c of AlexeyAB/darknet), in float ---------------------


def _logistic_f(x: Tensor) -> Tensor:
    return 1.0 / (1.0 + torch.exp(-x))


def _tanh_f(x: Tensor) -> Tensor:
    # tanh_activate: 2/(1+expf(-2x)) - 1 (saturates to -1/1 instead of pjreddie's NaN)
    return 2.0 / (1.0 + torch.exp(-2.0 * x)) - 1.0


def _softplus_f(x: Tensor, threshold: float = 20.0) -> Tensor:
    # softplus_activate: x above the threshold, expf(x) below -threshold, else logf(expf(x)+1)
    return torch.where(
        x > threshold, x, torch.where(x < -threshold, torch.exp(x), torch.log(torch.exp(x) + 1.0))
    )


def _gelu_f(x: Tensor) -> Tensor:
    # gelu_activate: 0.5*x*(1 + tanhf(0.797885*x + 0.035677*powf(x, 3))), double literals
    d = x.double()
    inner = (0.797885 * d + 0.035677 * torch.pow(x, 3).double()).float()
    return (0.5 * d * (1.0 + torch.tanh(inner).double())).to(x.dtype)


def _normalize_channels(x: Tensor) -> Tensor:
    # activate_array_normalize_channels: per pixel, x_k > 0 ? x_k / (1e-4 + sum_{x_j>0} x_j) : 0
    pos = torch.where(x > 0, x, torch.zeros_like(x))
    total = pos.sum(dim=1, keepdim=True) + 1e-4
    return torch.where(x > 0, x / total, torch.zeros_like(x))


def _normalize_channels_softmax(maxval: bool) -> Fn:
    # activate_array_normalize_channels_softmax: expf(x_k - m) / (1e-4 + sum_j expf(x_j - m)),
    # m = the pixel's max over channels with _maxval, else 0 (no overflow guard).
    def fn(x: Tensor) -> Tensor:
        shifted = x - x.amax(dim=1, keepdim=True) if maxval else x
        e = torch.exp(shifted)
        return e / (e.sum(dim=1, keepdim=True) + 1e-4)

    return fn


#: AlexeyAB's formulas, in float.
FLOAT_ACTIVATIONS: dict[str, Fn] = {
    **_PIECEWISE,
    "revleaky": _PIECEWISE["leaky"],
    "logistic": _logistic_f,
    "loggy": lambda x: 2.0 / (1.0 + torch.exp(-x)) - 1.0,
    "tanh": _tanh_f,
    "elu": lambda x: torch.where(x >= 0, x, torch.exp(x) - 1.0),
    "selu": lambda x: torch.where(x >= 0, 1.0507 * x, 1.0507 * 1.6732 * (torch.exp(x) - 1.0)),
    "relu6": lambda x: torch.clamp(x, 0.0, 6.0),
    "swish": lambda x: x * _logistic_f(x),
    "mish": lambda x: x * _tanh_f(_softplus_f(x)),
    "hard_mish": lambda x: torch.where(
        x > 0, x, torch.where(x > -2, x * x / 2 + x, torch.zeros_like(x))
    ),
    "gelu": _gelu_f,
    "normalize_channels": _normalize_channels,
    "normalize_channels_softmax": _normalize_channels_softmax(False),
    "normalize_channels_softmax_maxval": _normalize_channels_softmax(True),
    # activate() in AlexeyAB's activations.c has no case for relu6/swish/mish/...: it returns 0.
    CPU_ZERO: torch.zeros_like,
}

#: the formulas that work across the channels of a pixel (dim 1); every other one is elementwise.
ACROSS_CHANNELS = frozenset(
    ("normalize_channels", "normalize_channels_softmax", "normalize_channels_softmax_maxval")
)

#: formula tables by the dialect fact ``activation_math``.
TABLES: dict[str, dict[str, Fn]] = {"double": ACTIVATIONS, "float": FLOAT_ACTIVATIONS}


def activate(x: Tensor, name: str, math: str = "double") -> Tensor:
    """Apply Darknet activation ``name`` (channels on dim 1) with the ``math`` formula table."""
    try:
        fn = TABLES[math][name]
    except KeyError:
        raise ValueError(f"unknown Darknet activation {name!r} ({math} formulas)") from None
    return fn(x)


def check_activation(name: str, math: str = "double") -> None:
    if name not in TABLES.get(math, {}):
        raise ValueError(f"unknown Darknet activation {name!r} ({math} formulas)")


class Activation(nn.Module):
    """``[activation]``/``[logistic]`` layers (activation_layer.c): the activation alone.
    ``in_shape`` (c, h, w) lets the per-pixel ``normalize_channels*`` formulas see the
    channels; without it the input is used as given."""

    def __init__(
        self,
        activation: str = "linear",
        math: str = "double",
        in_shape: tuple[int, int, int] | None = None,
    ) -> None:
        super().__init__()
        check_activation(activation, math)
        self.activation, self.math = activation, math
        self.in_shape = tuple(in_shape) if in_shape is not None and all(in_shape) else None

    def forward(self, x: Tensor) -> Tensor:
        if self.in_shape is not None:
            x = x.reshape((x.shape[0], *self.in_shape))
        return activate(x, self.activation, self.math)

    def extra_repr(self) -> str:
        return self.activation if self.math == "double" else f"{self.activation}, math={self.math}"


class Identity(nn.Module):
    """``[dropout]`` at inference (and AlexeyAB's ``[empty]``/``[silence]``): Darknet shares the
    previous output buffer."""

    def forward(self, x: Tensor) -> Tensor:
        return x
