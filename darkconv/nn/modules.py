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
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from darkconv.nn.activations import ACTIVATIONS, Activation, Identity, activate, check_activation
from darkconv.nn.batchnorm import BN_EPS, BN_MODES, BatchNormLayer, DarknetBatchNorm
from darkconv.nn.train_mode import activate_train

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
    "BN_EPS",
    "as_chw",
    "conv_out",
    "RAW_1X1_RULES",
    "SharedConvolutional",
]

Shape3 = tuple[int, int, int]


def shape3(shape: Sequence[int]) -> Shape3:
    """A (c, h, w) triple from any sequence of three ints."""
    c, h, w = shape
    return (int(c), int(h), int(w))


def as_chw(x: Tensor, shape: Shape3) -> Tensor:
    """View a batch of Darknet flat buffers as ``(B, c, h, w)``.  A tensor already of that shape
    is returned as is: ``reshape`` of a batch-1 channels_last tensor rewrites its batch stride,
    and torch then no longer sees it as channels_last (every following kernel takes the slow
    strided path; maxpool was half of yolov3-tiny's time)."""
    c, h, w = shape
    if x.dim() == 4 and x.shape[1] == c and x.shape[2] == h and x.shape[3] == w:
        return x
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


# --- convolutional (convolutional_layer.c) ------------------------------------------------------


def conv_out(size_in: int, size: int, stride: int, padding: int) -> int:
    """convolutional_out_height: ``(h + 2*pad - size) / stride + 1`` in C integer division."""
    return int((size_in + 2 * padding - size) / stride) + 1


#: Which 1x1 convolutions skip im2col and multiply the raw input buffer (dialect fact
#: ``conv_raw_1x1``), as a predicate of (stride_x, stride_y, padding, dilation).  Only a
#: non-trivial geometry makes a difference.  pjreddie: every size-1 conv
#: (forward_convolutional_layer); AlexeyAB: ``l.size == 1 && l.stride == 1 && l.dilation == 1``
#: with ``l.stride`` = stride_x, so a 1x1 stride_y-only conv reads the raw buffer.
RAW_1X1_RULES: dict[str, Callable[[int, int, int, int], bool]] = {
    "size1": lambda sx, sy, pad, dil: sx != 1 or sy != 1 or pad != 0,
    "size1_stride_x1_dilation1": lambda sx, sy, pad, dil: (
        sx == 1 and dil == 1 and (sy != 1 or pad != 0)
    ),
}

# The fixed antialiasing blur (make_convolutional_layer, make_maxpool_layer): a depthwise conv
# with the cfg strides after the stride-1 layer.  size 3: [1,2,1]x[1,2,1]/16, pad 1; size 2:
# all 1/4, pad 0; no bias, linear.
_BLUR = {3: [[1 / 16, 2 / 16, 1 / 16], [2 / 16, 4 / 16, 2 / 16], [1 / 16, 2 / 16, 1 / 16]],
         2: [[1 / 4, 1 / 4], [1 / 4, 1 / 4]]}  # fmt: skip


class Blur(nn.Module):
    """The antialiasing blur: ``(size, stride_x, stride_y, pad)`` on ``channels`` planes."""

    kernel: Tensor  # the fixed (channels, 1, size, size) weights (a buffer)

    def __init__(self, channels: int, blur: tuple[int, int, int, int]) -> None:
        super().__init__()
        size, sx, sy, pad = blur
        self.stride, self.pad = (sy, sx), pad
        kernel = torch.tensor(_BLUR[size], dtype=torch.float32).expand(channels, 1, size, size)
        self.register_buffer("kernel", kernel.contiguous(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        k = self.kernel.to(x.dtype)
        return F.conv2d(x, k, None, self.stride, self.pad, 1, k.shape[0])


class Convolutional(nn.Module):
    """``[convolutional]``: ``act(conv(x) + bias)`` or ``act(BN(conv(x)))``.

    ``padding`` is the effective pixel padding (``size/2`` when the cfg says ``pad=1``).
    ``stride`` is the horizontal stride (Darknet's ``l.stride`` = ``stride_x``), ``stride_y``
    the vertical one (default: ``stride``).  ``dilation``: im2col pads by ``padding*dilation``
    while the output size stays ``(h + 2*padding - size)/stride + 1`` (AlexeyAB).
    ``antialias`` ``(size, stride_x, stride_y, pad)``: the conv runs at stride 1 and its
    activated output is blurred (:class:`Blur`); the module returns the blurred result, which is
    what the next layer reads.  ``xnor``: weights ``w>0 ? mean|w| : -mean|w|`` per filter
    (binarize_weights), input ``x>0 ? 1 : -1`` (binarize_cpu), zero padding stays 0.  ``binary``
    is a plain float conv on CPU.  ``raw_1x1`` names the dialect's rule (:data:`RAW_1X1_RULES`)
    for the 1x1 convs that skip im2col: gemm then reads the group's raw input buffer as
    ``[c/groups][out_h*out_w]``, so stride and padding lose their geometric meaning there (see
    :meth:`_raw_1x1_input`).  ``math`` picks the activation formulas (``double``: pjreddie,
    ``float``: AlexeyAB).
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
        *,
        stride_y: int | None = None,
        dilation: int = 1,
        antialias: tuple[int, int, int, int] | None = None,
        math: str = "double",
        raw_1x1: str = "size1",
        params: bool = True,
    ) -> None:
        super().__init__()
        check_activation(activation, math)
        c, h, w = in_shape
        sy = stride if stride_y is None else stride_y
        self.in_shape = (c, h, w)
        self.size, self.stride, self.stride_y = size, stride, sy
        self.padding, self.groups, self.dilation = padding, groups, dilation
        self.conv_shape = (
            filters,
            conv_out(h, size, sy, padding),
            conv_out(w, size, stride, padding),
        )
        self.blur = Blur(filters, antialias) if antialias else None
        self.out_shape = self.conv_shape
        if antialias:
            bs, bsx, bsy, bp = antialias
            _, oh, ow = self.conv_shape
            self.out_shape = (filters, conv_out(oh, bs, bsy, bp), conv_out(ow, bs, bsx, bp))
        self.xnor = bool(xnor)
        self.activation, self.math = activation, math
        self.raw_1x1 = size == 1 and RAW_1X1_RULES[raw_1x1](stride, sy, padding, dilation)
        self.batch_normalize = bool(batch_normalize)
        if not params:  # a share_index layer: SharedConvolutional supplies the parameters
            self.bn: DarknetBatchNorm | None = None
            return
        wshape = (filters, c // groups, size, size)
        if batch_normalize:
            self.bn = DarknetBatchNorm(filters, mode=bn_mode)
            self.conv = ParamHolder(weight=wshape)
        else:
            self.bn = None
            self.conv = ParamHolder(bias=(filters,), weight=wshape)
        nn.init.kaiming_normal_(self.conv.weight)

    @property
    def strides(self) -> tuple[int, int]:
        """(stride_y, stride_x) as torch orders them."""
        return (self.stride_y, self.stride)

    def _raw_1x1_input(self, x: Tensor) -> Tensor:
        # forward_convolutional_layer without im2col: b = im.  The gemm reads the first
        # (c/groups)*out_h*out_w floats of each group's input block.  Where that runs past the
        # block Darknet reads the next block / beyond the buffer; we follow the flat buffer and
        # read zeros past its end.
        c, h, w = self.in_shape
        cg = c // self.groups
        _, oh, ow = self.conv_shape
        flat = x.reshape(x.shape[0], -1)
        need = (self.groups - 1) * cg * h * w + cg * oh * ow
        if need > flat.shape[1]:
            flat = F.pad(flat, (0, need - flat.shape[1]))
        blocks = [
            flat[:, g * cg * h * w : g * cg * h * w + cg * oh * ow] for g in range(self.groups)
        ]
        return torch.cat(blocks, dim=1).reshape(x.shape[0], c, oh, ow)

    def convolve(self, x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
        """The bare convolution with this layer's geometry (no BN, no activation)."""
        if self.raw_1x1:
            return F.conv2d(self._raw_1x1_input(x), weight, bias, 1, 0, 1, self.groups)
        y = F.conv2d(
            x, weight, bias, self.strides, self.padding * self.dilation, self.dilation, self.groups
        )
        _, oh, ow = self.conv_shape
        return y if y.shape[2:] == (oh, ow) else y[:, :, :oh, :ow]

    def finish(self, y: Tensor) -> Tensor:
        """Activation, then the antialiasing blur if any."""
        if self.training:  # in place: autograd keeps only the output (gradient_array)
            y = activate_train(y, self.activation, self.math)
        else:
            y = activate(y, self.activation, self.math)
        return self.blur(y) if self.blur is not None else y

    def forward(self, x: Tensor) -> Tensor:
        x = as_chw(x, self.in_shape)
        weight = self.conv.weight
        if self.xnor:
            scale = weight.abs().mean(dim=(1, 2, 3), keepdim=True)
            weight = torch.where(weight > 0, scale, -scale)
            x = torch.where(x > 0, 1.0, -1.0).to(x.dtype)
        y = self.convolve(x, weight)
        y = self.bn(y) if self.bn is not None else y + self.conv.bias.reshape(-1, 1, 1)
        return self.finish(y)


class SharedConvolutional(Convolutional):
    """A ``share_index`` convolution (AlexeyAB): no parameters of its own; it convolves with the
    weights of the layer it shares (``owner``, bound by the builder with :meth:`bind`) using its
    own geometry and activation.  ``owner_bn=True`` applies the owner's batch norm (what
    ``fuse_conv_batchnorm`` produces at load time: the owner's fused weights, this layer's BN
    switched off; also the unfused result when this layer has BN); ``False`` adds the owner's
    ``biases`` array (the unfused forward of a sharing layer without BN)."""

    def __init__(self, *args: Any, owner_bn: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, params=False, **kwargs)
        self.owner_bn = owner_bn

    def bind(self, owner: Convolutional) -> None:
        # Not a submodule: its parameters belong to (and are saved with) the owner's layer.
        self.__dict__["_owner"] = owner

    @property
    def owner(self) -> Convolutional:
        owner = self.__dict__.get("_owner")
        if owner is None:
            raise RuntimeError("share_index convolution used before bind()")
        return owner

    def forward(self, x: Tensor) -> Tensor:
        owner = self.owner
        y = self.convolve(as_chw(x, self.in_shape), owner.conv.weight)
        if owner.bn is None:
            y = y + owner.conv.bias.reshape(-1, 1, 1)
        elif self.owner_bn:
            y = owner.bn(y)
        else:
            assert owner.bn.bias is not None
            y = y + owner.bn.bias.reshape(-1, 1, 1)
        return self.finish(y)


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
        math: str = "double",
    ) -> None:
        super().__init__()
        c, h, w = in_shape
        self.in_shape = (c, h, w)
        self.math = math
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
        return activate(y, self.activation, self.math)


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
        math: str = "double",
    ) -> None:
        super().__init__()
        c, h, w = in_shape
        self.in_shape = (c, h, w)
        self.math = math
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
        return activate(y, self.activation, self.math)


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
        math: str = "double",
    ) -> None:
        super().__init__()
        self.inputs, self.output = inputs, output
        self.math = math
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
        if self.training:  # in place: autograd keeps only the output (gradient_array)
            return activate_train(y, self.activation, self.math)
        return activate(y, self.activation, self.math)

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
