"""Torch modules for Darknet's parameterised layers: batch norm, convolutional,
deconvolutional, local and connected layers.

Every constructor takes plain Python values (the builder maps graph options to keyword
arguments), so a module can also be built by hand.  Parameters are registered in the order
Darknet stores them in a ``.weights`` file, so ``state_dict()`` lists them in file order with the
keys documented in ``docs/ARCHITECTURE.md``.

Modules accept their input in any shape whose flat C order is Darknet's buffer (they reshape to
the ``(c, h, w)`` they were built for), so the output of any layer can feed any other, as in
Darknet where every layer reads the previous layer's flat ``l.output``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from darkconv.nn.activations import ACTIVATIONS, Activation, Identity, activate

__all__ = [
    "ACTIVATIONS",
    "activate",
    "Activation",
    "Identity",
    "DarknetBatchNorm",
    "BatchNormLayer",
    "Convolutional",
    "Deconvolutional",
    "Local",
    "Connected",
    "ParamHolder",
    "BN_MODES",
    "as_chw",
]

Shape3 = tuple[int, int, int]


def shape3(shape: Sequence[int]) -> Shape3:
    """A (c, h, w) triple from any sequence of three ints."""
    c, h, w = shape
    return (int(c), int(h), int(w))


def as_chw(x: Tensor, shape: Shape3) -> Tensor:
    """View a batch of Darknet flat buffers as ``(B, c, h, w)``."""
    c, h, w = shape
    return x.reshape(x.shape[0], c, h, w)


class ParamHolder(nn.Module):
    """Holds parameters registered in a given order (Darknet file order: bias before weight)."""

    weight: Tensor
    bias: Tensor

    def __init__(self, **shapes: tuple[int, ...] | None) -> None:
        super().__init__()
        for name, shape in shapes.items():
            if shape is not None:
                self.register_parameter(name, nn.Parameter(torch.zeros(shape)))


# --- batch norm (batchnorm_layer.c, blas.c normalize_cpu) ---------------------------------------

BN_MODES = ("cpu", "gpu")


class DarknetBatchNorm(nn.Module):
    """Inference batch norm with Darknet's rolling statistics.

    ``mode="cpu"`` (default, what the fixtures use): ``(x - mean) / (sqrt(var) + 1e-6)``, as
    ``normalize_cpu``; ``mode="gpu"``: ``(x - mean) / sqrt(var + 1e-5)`` as cuDNN in the GPU build.
    Then ``* weight + bias`` (``scale_bias``, ``add_bias``).  ``bias=False`` for ``[batchnorm]``,
    whose biases Darknet never stores (they stay 0).
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

    def forward(self, x: Tensor) -> Tensor:
        view = (-1,) + (1,) * (x.dim() - 2)
        mean = self.running_mean.reshape(view)
        var = self.running_var.reshape(view)
        if self.mode == "cpu":
            y = (x - mean) / (torch.sqrt(var) + 1e-6)
        else:
            y = (x - mean) / torch.sqrt(var + 1e-5)
        y = y * self.weight.reshape(view)
        if self.bias is not None:
            y = y + self.bias.reshape(view)
        return y

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, mode={self.mode}"


class BatchNormLayer(nn.Module):
    """``[batchnorm]`` (forward_batchnorm_layer at inference): CPU BN formula, bias 0."""

    def __init__(self, in_shape: Shape3, bn_mode: str = "cpu") -> None:
        super().__init__()
        self.in_shape: Shape3 = (in_shape[0], in_shape[1], in_shape[2])
        self.bn = DarknetBatchNorm(in_shape[0], bias=False, mode=bn_mode)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(as_chw(x, self.in_shape))


# --- convolutional (convolutional_layer.c) ------------------------------------------------------


def conv_out(size_in: int, size: int, stride: int, padding: int) -> int:
    """convolutional_out_height: ``(h + 2*pad - size) / stride + 1`` in C integer division."""
    return int((size_in + 2 * padding - size) / stride) + 1


class Convolutional(nn.Module):
    """``[convolutional]``: ``act(conv(x) + bias)`` or ``act(BN(conv(x)))``.

    ``padding`` is the effective pixel padding (``size/2`` when the cfg says ``pad=1``).
    ``xnor``: weights ``w>0 ? mean|w| : -mean|w|`` per filter (binarize_weights), input
    ``x>0 ? 1 : -1`` (binarize_cpu), zero padding stays 0.  ``binary`` is a plain float conv on
    CPU.  Quirk: for ``size == 1`` Darknet skips im2col and multiplies the weights with the group's
    raw input buffer read as ``[c/groups][out_h*out_w]``, so stride and padding have no
    geometric meaning there (see :meth:`_raw_1x1_input`).
    """

    def __init__(
        self,
        in_shape: Shape3,
        filters: int,
        size: int = 1,
        stride: int = 1,
        padding: int = 0,
        groups: int = 1,
        batch_normalize: bool = False,
        activation: str = "logistic",
        xnor: bool = False,
        bn_mode: str = "cpu",
    ) -> None:
        super().__init__()
        c, h, w = in_shape
        self.in_shape = (c, h, w)
        self.size, self.stride, self.padding, self.groups = size, stride, padding, groups
        self.out_shape = (
            filters,
            conv_out(h, size, stride, padding),
            conv_out(w, size, stride, padding),
        )
        self.xnor = bool(xnor)
        self.activation = activation
        self.raw_1x1 = size == 1 and (stride != 1 or padding != 0)
        wshape = (filters, c // groups, size, size)
        if batch_normalize:
            self.bn: DarknetBatchNorm | None = DarknetBatchNorm(filters, mode=bn_mode)
            self.conv = ParamHolder(weight=wshape)
        else:
            self.bn = None
            self.conv = ParamHolder(bias=(filters,), weight=wshape)
        nn.init.kaiming_normal_(self.conv.weight)

    def _raw_1x1_input(self, x: Tensor) -> Tensor:
        # forward_convolutional_layer with l.size == 1: b = im (no im2col).  The gemm reads the
        # first (c/groups)*out_h*out_w floats of each group's input block.  Where that runs past
        # the block Darknet reads the next block / beyond the buffer; we follow the flat buffer and
        # read zeros past its end.
        c, h, w = self.in_shape
        cg = c // self.groups
        _, oh, ow = self.out_shape
        flat = x.reshape(x.shape[0], -1)
        need = (self.groups - 1) * cg * h * w + cg * oh * ow
        if need > flat.shape[1]:
            flat = F.pad(flat, (0, need - flat.shape[1]))
        blocks = [
            flat[:, g * cg * h * w : g * cg * h * w + cg * oh * ow] for g in range(self.groups)
        ]
        return torch.cat(blocks, dim=1).reshape(x.shape[0], c, oh, ow)

    def forward(self, x: Tensor) -> Tensor:
        x = as_chw(x, self.in_shape)
        weight = self.conv.weight
        if self.xnor:
            scale = weight.abs().mean(dim=(1, 2, 3), keepdim=True)
            weight = torch.where(weight > 0, scale, -scale)
            x = torch.where(x > 0, 1.0, -1.0).to(x.dtype)
        if self.raw_1x1:
            y = F.conv2d(self._raw_1x1_input(x), weight, groups=self.groups)
        else:
            y = F.conv2d(x, weight, None, self.stride, self.padding, 1, self.groups)
        y = self.bn(y) if self.bn is not None else y + self.conv.bias.reshape(-1, 1, 1)
        return activate(y, self.activation)


class Deconvolutional(nn.Module):
    """``[deconvolutional]`` (deconvolutional_layer.c): ``conv_transpose2d`` with weights
    ``[c_in][n][size][size]``, output ``(h-1)*stride + size - 2*padding``, then BN or bias, then
    the activation."""

    def __init__(
        self,
        in_shape: Shape3,
        filters: int,
        size: int = 1,
        stride: int = 1,
        padding: int = 0,
        batch_normalize: bool = False,
        activation: str = "logistic",
        bn_mode: str = "cpu",
    ) -> None:
        super().__init__()
        c, h, w = in_shape
        self.in_shape = (c, h, w)
        self.stride, self.padding = stride, padding
        self.out_shape = (
            filters,
            (h - 1) * stride + size - 2 * padding,
            (w - 1) * stride + size - 2 * padding,
        )
        self.activation = activation
        wshape = (c, filters, size, size)
        if batch_normalize:
            self.bn: DarknetBatchNorm | None = DarknetBatchNorm(filters, mode=bn_mode)
            self.deconv = ParamHolder(weight=wshape)
        else:
            self.bn = None
            self.deconv = ParamHolder(bias=(filters,), weight=wshape)
        nn.init.normal_(self.deconv.weight, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        x = as_chw(x, self.in_shape)
        y = F.conv_transpose2d(x, self.deconv.weight, None, self.stride, self.padding)
        y = self.bn(y) if self.bn is not None else y + self.deconv.bias.reshape(-1, 1, 1)
        return activate(y, self.activation)


class Local(nn.Module):
    """``[local]`` (local_layer.c): an unshared convolution.

    ``pad`` is used directly as the pixel padding; output ``(h-1)/stride+1`` with pad, else
    ``(h-size)/stride+1``.  Weights ``[out_h*out_w][n][c][size][size]``, bias per output element.
    Darknet runs im2col with its own geometry and reads the column buffer as a
    ``[c*size*size][out_h*out_w]`` matrix; both agree for size 3 or pad 0, and otherwise we read
    the column buffer the same way (zeros past its end).
    """

    def __init__(
        self,
        in_shape: Shape3,
        filters: int,
        size: int = 1,
        stride: int = 1,
        pad: int = 0,
        activation: str = "logistic",
    ) -> None:
        super().__init__()
        c, h, w = in_shape
        self.in_shape = (c, h, w)
        self.size, self.stride, self.pad = size, stride, pad
        oh = (h - (1 if pad else size)) // stride + 1
        ow = (w - (1 if pad else size)) // stride + 1
        self.out_shape = (filters, oh, ow)
        self.activation = activation
        self.bias = nn.Parameter(torch.zeros(filters, oh, ow))
        self.weight = nn.Parameter(torch.zeros(oh * ow, filters, c, size, size))
        nn.init.uniform_(
            self.weight, -((2.0 / (size * size * c)) ** 0.5), (2.0 / (size * size * c)) ** 0.5
        )

    def forward(self, x: Tensor) -> Tensor:
        x = as_chw(x, self.in_shape)
        n, oh, ow = self.out_shape
        k = self.in_shape[0] * self.size * self.size
        cols = F.unfold(x, self.size, padding=self.pad, stride=self.stride)
        if cols.shape[2] != oh * ow:
            flat = cols.reshape(x.shape[0], -1)
            if flat.shape[1] < k * oh * ow:
                flat = F.pad(flat, (0, k * oh * ow - flat.shape[1]))
            cols = flat[:, : k * oh * ow].reshape(x.shape[0], k, oh * ow)
        y = torch.einsum("lnk,bkl->bnl", self.weight.reshape(oh * ow, n, k), cols)
        y = y.reshape(x.shape[0], n, oh, ow) + self.bias
        return activate(y, self.activation)


class Connected(nn.Module):
    """``[connected]`` (connected_layer.c): flatten (C,H,W order), ``W x``, then BN (spatial 1)
    or bias, then the activation.  Keys in file order: ``fc.bias`` | ``bn.bias``, ``fc.weight``,
    then ``bn.weight, bn.running_mean, bn.running_var`` (BN comes after the weights in the file,
    so :meth:`state_dict` is reordered)."""

    def __init__(
        self,
        inputs: int,
        output: int,
        batch_normalize: bool = False,
        activation: str = "logistic",
        bn_mode: str = "cpu",
    ) -> None:
        super().__init__()
        self.inputs, self.output = inputs, output
        self.out_shape = (output, 1, 1)
        self.activation = activation
        if batch_normalize:
            self.fc = ParamHolder(weight=(output, inputs))
            self.bn: DarknetBatchNorm | None = DarknetBatchNorm(output, mode=bn_mode)
            self._order = ["bn.bias", "fc.weight", "bn.weight", "bn.running_mean", "bn.running_var"]
        else:
            self.fc = ParamHolder(bias=(output,), weight=(output, inputs))
            self.bn = None
            self._order = ["fc.bias", "fc.weight"]
        bound = (2.0 / inputs) ** 0.5
        nn.init.uniform_(self.fc.weight, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        y = F.linear(x.reshape(x.shape[0], self.inputs), self.fc.weight)
        y = self.bn(y) if self.bn is not None else y + self.fc.bias
        return activate(y, self.activation)

    def state_dict(
        self, *args: Any, destination: Any = None, prefix: str = "", keep_vars: bool = False
    ) -> Any:
        tmp = super().state_dict(prefix=prefix, keep_vars=keep_vars)
        if destination is None:
            destination = OrderedDict()
            destination._metadata = OrderedDict()
        meta = getattr(destination, "_metadata", None)
        if meta is not None:
            meta.update(getattr(tmp, "_metadata", {}))
        for key in self._order:
            destination[prefix + key] = tmp[prefix + key]
        return destination
