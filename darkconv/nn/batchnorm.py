"""Darknet's inference batch norm: the formulas of both Darknets (``normalize_cpu`` in
pjreddie's and AlexeyAB's blas.c, cuDNN in pjreddie's GPU build), the ``[batchnorm]`` layer."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from darkconv.nn.train_mode import DEFAULT_SEMANTICS, batch_norm_train

__all__ = ["BN_MODES", "BN_EPS", "DarknetBatchNorm", "BatchNormLayer"]

Shape3 = tuple[int, int, int]


# --- batch norm (batchnorm_layer.c, blas.c normalize_cpu) ---------------------------------------

#: Darknet's inference batch-norm formulas, by mode:
#: ``cpu`` pjreddie's CPU ``normalize_cpu``: ``(x - mean) / (sqrt(var) + 1e-6)``;
#: ``gpu`` pjreddie's GPU build (cuDNN): ``(x - mean) / sqrt(var + 1e-5)``;
#: ``alexeyab`` AlexeyAB's ``normalize_cpu`` (blas.c): ``(x - mean) / sqrt(var + 1e-5f)``, the
#: square root and the division in double.
BN_MODES = ("cpu", "gpu", "alexeyab")
#: (epsilon, added inside the square root) per mode; fuse.py folds with the same table.
BN_EPS: dict[str, tuple[float, bool]] = {
    "cpu": (1e-6, False),
    "gpu": (1e-5, True),
    "alexeyab": (1e-5, True),
}


def _alexeyab_normalize(x: Tensor, mean: Tensor, var: Tensor) -> Tensor:
    # normalize_cpu: (x - mean) / sqrt(variance + .00001f): the float sum, then sqrt and the
    # division in double, rounded to float once.
    return ((x - mean).double() / torch.sqrt((var + 1e-5).double())).to(x.dtype)


_BN_NORMALIZE: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    "cpu": lambda x, mean, var: (x - mean) / (torch.sqrt(var) + 1e-6),
    "gpu": lambda x, mean, var: (x - mean) / torch.sqrt(var + 1e-5),
    "alexeyab": _alexeyab_normalize,
}


def _squared_denominator(var: Tensor) -> tuple[Tensor, float]:
    denom = torch.sqrt(var) + 1e-6
    return denom * denom, 0.0


#: The modes whose formula one ``F.batch_norm`` kernel computes: mode -> (variance, eps).
#: ``cpu``: normalize_cpu's denominator ``sqrt(var) + 1e-6`` goes in squared, eps 0 (~1 ulp).
_BN_KERNEL: dict[str, Callable[[Tensor], tuple[Tensor, float]]] = {
    "cpu": _squared_denominator,
    "gpu": lambda var: (var, 1e-5),
}


class DarknetBatchNorm(nn.Module):
    """Darknet batch norm.  ``eval()``: the rolling statistics, formula by ``mode``
    (:data:`BN_MODES`; default ``cpu``, pjreddie's CPU build), then ``* weight + bias``
    (``scale_bias``, ``add_bias``).  ``train()``: the batch statistics and the rolling update as
    the training ``semantics`` computes them (:func:`darkconv.nn.train_mode.batch_norm_train`).
    ``bias=False`` for pjreddie's ``[batchnorm]``, whose biases Darknet never stores (they stay
    0); AlexeyAB stores them.
    """

    bias: Tensor | None
    running_mean: Tensor
    running_var: Tensor

    def __init__(self, channels: int, bias: bool = True, mode: str = "cpu") -> None:
        super().__init__()
        if mode not in BN_MODES:
            raise ValueError(f"bn mode must be one of {BN_MODES}, got {mode!r}")
        self.mode = mode
        if bias:
            self.bias = nn.Parameter(torch.zeros(channels))
        else:
            self.register_parameter("bias", None)
        self.weight = nn.Parameter(torch.ones(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.semantics = DEFAULT_SEMANTICS  # train() only; eval() follows ``mode``

    def forward(self, x: Tensor) -> Tensor:
        if self.training:  # forward_batchnorm_layer with net.train = 1
            return batch_norm_train(
                x, self.weight, self.bias, self.running_mean, self.running_var,
                self.semantics, BN_EPS[self.mode],
            )  # fmt: skip
        kernel = _BN_KERNEL.get(self.mode)
        if kernel is not None:  # one batch_norm kernel instead of five elementwise ops
            var, eps = kernel(self.running_var)
            return F.batch_norm(x, self.running_mean, var, self.weight, self.bias, False, 0.0, eps)
        view = (-1,) + (1,) * (x.dim() - 2)
        mean = self.running_mean.reshape(view)
        var = self.running_var.reshape(view)
        y = _BN_NORMALIZE[self.mode](x, mean, var)
        y = y * self.weight.reshape(view)
        if self.bias is not None:
            y = y + self.bias.reshape(view)
        return y

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, mode={self.mode}"


class BatchNormLayer(nn.Module):
    """``[batchnorm]`` (forward_batchnorm_layer at inference): the BN formula; the bias is 0
    (pjreddie, not stored) or stored (AlexeyAB, ``bias=True``)."""

    def __init__(self, in_shape: Shape3, bn_mode: str = "cpu", bias: bool = False) -> None:
        super().__init__()
        self.in_shape: Shape3 = (in_shape[0], in_shape[1], in_shape[2])
        self.bn = DarknetBatchNorm(in_shape[0], bias=bias, mode=bn_mode)

    def forward(self, x: Tensor) -> Tensor:
        c, h, w = self.in_shape
        return self.bn(x.reshape(x.shape[0], c, h, w))
