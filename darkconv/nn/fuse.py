"""Fold Darknet's inference batch norm into the preceding convolution or matrix product.

Darknet's BN at inference is an affine map per output channel::

    cpu:       y = scale * (x - mean) / (sqrt(var) + 1e-6) + bias   (pjreddie's normalize_cpu)
    gpu:       y = scale * (x - mean) / sqrt(var + 1e-5) + bias      (pjreddie's GPU build, cuDNN)
    alexeyab:  y = scale * (x - mean) / sqrt(var + 1e-5) + bias      (AlexeyAB; its apps fold it
               the same way when the weights load: fuse_conv_batchnorm, network.c)

so ``BN(conv(x, w))`` equals ``conv(x, w') + b'`` with ``w' = w * scale / d`` and
``b' = bias - scale * mean / d``, ``d`` being the mode's denominator.  The folded values are
computed in float64 and stored in the layer's dtype.

:func:`fuse_model` rewrites a built model in place (and returns it):

* a ``Convolutional`` layer (with or without BN) becomes a :class:`FusedConvolutional`: one
  ``conv2d`` with its bias (strides, dilation kept), then the activation (in place for
  linear/leaky/relu), then the antialiasing blur if any.  Its state dict is that of a
  ``batch_normalize=0`` layer: ``conv.weight``, ``conv.bias``.  A ``share_index`` layer gets its
  own copy of the owner's folded weights (as fuse_conv_batchnorm leaves it).
* a ``Connected`` layer becomes a :class:`FusedConnected` (``fc.weight``, ``fc.bias``).
* a ``Deconvolutional`` layer with BN keeps its class; the BN is folded into ``deconv``.
* a ``[yolo]`` head becomes a :class:`FusedYolo`: its logistic in the tensor's dtype
  (``torch.sigmoid``) instead of Darknet's double (``logistic_activate``), within 1 ulp.
* left alone: ``xnor`` convolutions (the binarisation of the weights depends on their scale),
  standalone ``[batchnorm]`` layers (never folded by Darknet either), AlexeyAB's weighted
  ``[shortcut]`` (it already computes the load-time normalization unless built with
  ``nofuse=True``), and anything the rules above do not name.  Folding never changes what the
  model computes beyond float rounding.

Groups are kept (each output channel's filter is scaled by its own factor).  Darknet's ``size=1``
raw-buffer quirk (stride or padding on a 1x1 convolution) keeps its module, folded in place.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

from darkconv.nn.heads import Yolo
from darkconv.nn.inplace import act_inplace, is_compiling
from darkconv.nn.modules import (
    BN_EPS as _BN_EPS,
)
from darkconv.nn.modules import (
    Blur,
    Connected,
    Convolutional,
    DarknetBatchNorm,
    Deconvolutional,
    ParamHolder,
    SharedConvolutional,
    as_chw,
)

__all__ = ["fuse_model", "fold_bn", "FusedConvolutional", "FusedConnected", "FusedYolo", "BN_EPS"]

#: Darknet's epsilons: pjreddie's CPU adds 1e-6 after the square root; its GPU build (cuDNN) and
#: AlexeyAB (fuse_conv_batchnorm, network.c) add 1e-5 inside.
BN_EPS = {mode: eps for mode, (eps, _) in _BN_EPS.items()}


def fold_bn(
    weight: Tensor,
    bn: DarknetBatchNorm | None,
    bias: Tensor | None,
    dim: int = 0,
    mode: str | None = None,
) -> tuple[Tensor, Tensor]:
    """The ``(weight, bias)`` that one affine op needs to equal ``BN(op(x, weight) + bias)``.

    ``dim`` is the output-channel dimension of ``weight`` (0 for conv/linear, 1 for a transposed
    conv).  ``bn=None`` returns the weight and bias unchanged (bias zeros if ``None``).
    ``mode`` overrides the BN's own ``"cpu"``/``"gpu"`` mode.
    """
    n = weight.shape[dim]
    w64 = weight.detach().double()
    b64 = bias.detach().double() if bias is not None else w64.new_zeros(n)
    if bn is None:
        return weight.detach().clone(), b64.to(weight.dtype)
    mode = mode or bn.mode
    if mode not in _BN_EPS:
        raise ValueError(f"bn mode must be one of {tuple(_BN_EPS)}, got {mode!r}")
    eps, inside = _BN_EPS[mode]
    var = bn.running_var.detach().double()
    denom = (var + eps).sqrt() if inside else var.sqrt() + eps
    factor = bn.weight.detach().double() / denom
    shape = [1] * weight.dim()
    shape[dim] = n
    w_new = w64 * factor.reshape(shape)
    shift = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(factor)
    b_new = shift + (b64 - bn.running_mean.detach().double()) * factor
    return w_new.to(weight.dtype), b_new.to(weight.dtype)


# activations oneDNN applies inside the convolution (a post-op): name -> (attr, scalars)
_ONEDNN_ACT: dict[str, tuple[str, list[float]]] = {
    "linear": ("none", []),
    "leaky": ("leaky_relu", [0.1]),
    "relu": ("relu", []),
    "swish": ("swish", []),  # AlexeyAB's swish: x * logistic(x)
}


def _conv_params(layer: Convolutional) -> tuple[Tensor, DarknetBatchNorm | None, Tensor | None]:
    """(weight, bn, bias) that the layer's ``conv -> BN | bias`` uses.  A ``share_index`` layer
    takes its owner's: fuse_conv_batchnorm (network.c) runs it with the owner's folded weights."""
    if isinstance(layer, SharedConvolutional):
        owner = layer.owner
        if owner.bn is None:
            return owner.conv.weight, None, owner.conv.bias
        if layer.owner_bn:
            return owner.conv.weight, owner.bn, None
        return owner.conv.weight, None, owner.bn.bias
    return layer.conv.weight, layer.bn, getattr(layer.conv, "bias", None)


class FusedConvolutional(nn.Module):
    """``act(conv2d(x, w', b'))``: a ``Convolutional`` layer with its BN folded in (then the
    antialiasing blur, if the layer has one).

    On the CPU in float32 inference (no autograd) the weight is reordered once into oneDNN's
    blocked layout (``torch.ops.mkldnn._convolution_pointwise``, the op inductor uses) and a
    linear, leaky, relu or swish activation runs as a post-op of the same oneDNN convolution
    (others in place after it); without it every call re-orders the weight, which dominates the
    small late layers of a batch-1 network.  Its output is channels_last.  ``prepack=False``
    keeps plain ``conv2d``.
    """

    def __init__(self, layer: Convolutional, mode: str | None = None, prepack: bool = True) -> None:
        super().__init__()
        self.in_shape = layer.in_shape
        self.out_shape = layer.out_shape
        self.conv_shape = layer.conv_shape
        self.size, self.stride, self.padding = layer.size, layer.stride, layer.padding
        self.stride_y, self.dilation = layer.stride_y, layer.dilation
        self.groups = layer.groups
        self.activation, self.math = layer.activation, layer.math
        self.blur: Blur | None = layer.blur
        self.bn = None  # same attribute as Convolutional, so code asking "has BN?" still works
        raw, bn, bias = _conv_params(layer)
        weight, bias = fold_bn(raw, bn, bias, 0, mode)
        filters, cg, k, _ = weight.shape
        conv = nn.Conv2d(
            cg * self.groups, filters, k, (self.stride_y, self.stride),
            self.padding * self.dilation, self.dilation, groups=self.groups,
            device=weight.device, dtype=weight.dtype,
        )  # fmt: skip
        with torch.no_grad():
            conv.weight.copy_(weight)
            conv.bias.copy_(bias)  # type: ignore[union-attr]
        conv.requires_grad_(raw.requires_grad)
        self.conv = conv
        self.prepack = prepack
        self._packed: Tensor | None = None
        self._pack_key: tuple[int, int] | None = None

    def _geometry(self) -> tuple[list[int], list[int], list[int]]:
        """oneDNN's padding, stride and dilation lists (height first)."""
        p, d = self.padding * self.dilation, self.dilation
        return [p, p], [self.stride_y, self.stride], [d, d]

    def _packed_weight(self, x: Tensor) -> Tensor | None:
        """The weight reordered once into oneDNN's blocked layout (CPU float32 inference only);
        None where the plain ``conv2d`` path applies.  Re-packed when the weight changes."""
        w = self.conv.weight
        if (
            not self.prepack
            or x.device.type != "cpu"
            or x.dtype != torch.float32
            or w.dtype != torch.float32
            or (torch.is_grad_enabled() and (w.requires_grad or x.requires_grad))
            or is_compiling()
        ):
            return None
        key = (w.data_ptr(), w._version)
        if self._pack_key != key:
            try:
                self._packed = torch.ops.mkldnn._reorder_convolution_weight(
                    w.detach(), *self._geometry(), self.groups, [x.shape[0], *self.in_shape]
                )
            except (AttributeError, RuntimeError):  # no oneDNN in this torch build
                self.prepack = False
                return None
            self._pack_key = key
        return self._packed

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1:] != self.in_shape:
            c, h, w = self.in_shape
            x = x.reshape(x.shape[0], c, h, w)
        packed = self._packed_weight(x)
        if packed is not None:
            post = _ONEDNN_ACT.get(self.activation)
            attr, scalars = post if post is not None else ("none", [])
            y = torch.ops.mkldnn._convolution_pointwise(
                x, packed, self.conv.bias, *self._geometry(), self.groups, attr, scalars, ""
            )
            # other activations after the prepacked convolution (not an unpacked conv2d, which
            # re-orders the weight on every call: yolov4's mish layers ran at a third of the speed)
            if post is None:
                y = act_inplace(y, self.activation, self.math)
        else:
            y = act_inplace(self.conv(x), self.activation, self.math)
        _, oh, ow = self.conv_shape
        if y.shape[2:] != (oh, ow):  # a dilated conv whose padding disagrees with its out size
            y = y[:, :, :oh, :ow]
        return self.blur(y) if self.blur is not None else y

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)  # the packed copy is a cache: never pickled or deep-copied
        state["_packed"], state["_pack_key"] = None, None
        return state

    def extra_repr(self) -> str:
        return f"activation={self.activation}"


class FusedConnected(nn.Module):
    """``act(linear(x, w', b'))``: a ``Connected`` layer with its BN folded in."""

    def __init__(self, layer: Connected, mode: str | None = None) -> None:
        super().__init__()
        self.inputs, self.output = layer.inputs, layer.output
        self.out_shape = layer.out_shape
        self.activation, self.math = layer.activation, layer.math
        self.bn = None
        weight, bias = fold_bn(layer.fc.weight, layer.bn, getattr(layer.fc, "bias", None), 0, mode)
        fc = nn.Linear(self.inputs, self.output, device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            fc.weight.copy_(weight)
            fc.bias.copy_(bias)
        fc.requires_grad_(layer.fc.weight.requires_grad)
        self.fc = fc

    def forward(self, x: Tensor) -> Tensor:
        y = self.fc(x.reshape(x.shape[0], self.inputs))
        return act_inplace(y, self.activation, self.math)

    def extra_repr(self) -> str:
        return f"activation={self.activation}"


class FusedYolo(Yolo):
    """A ``[yolo]`` head for inference: the logistic in the input's dtype (``torch.sigmoid``, within
    1 ulp) instead of Darknet's double ``logistic_activate``, on the planes the head's ``act`` mask
    names; ~1/8 of yolov3's non-convolution time at 416.  Made from a :class:`Yolo` by
    :meth:`from_yolo` (a copy whose class changes, so every attribute and buffer a dialect adds
    comes along; AlexeyAB's ``scale_x_y`` is applied as that head does).  Calls that autograd
    records run :class:`Yolo`'s forward."""

    @classmethod
    def from_yolo(cls, yolo: Yolo) -> FusedYolo:
        fused = copy.deepcopy(yolo)
        fused.__class__ = cls
        return fused  # type: ignore[return-value]

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return super().forward(x)
        x = as_chw(x, self.in_shape)
        y = torch.where(self.act, torch.sigmoid(x), x)
        scale = float(self.__dict__.get("scale_x_y", 1.0))
        if scale != 1.0:  # AlexeyAB: x, y planes become x*scale - 0.5*(scale - 1)
            scaled = self._buffers["scaled"]
            assert scaled is not None
            y = torch.where(scaled, y * scale + float(self.__dict__["_beta"]), y)
        return y


def _fold_in_place(layer: Any, attr: str, dim: int, mode: str | None) -> None:
    """Fold ``layer.bn`` into ``layer.<attr>`` (a ParamHolder), keeping the layer's class."""
    holder = getattr(layer, attr)
    bn = layer.bn
    if bn is None:
        return
    weight, bias = fold_bn(holder.weight, bn, getattr(holder, "bias", None), dim, mode)
    new = ParamHolder(bias=tuple(bias.shape), weight=tuple(weight.shape))
    new.to(device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        new.bias.copy_(bias)
        new.weight.copy_(weight)
    setattr(layer, attr, new)
    layer.bn = None


def _fused(module: nn.Module, mode: str | None, prepack: bool = True) -> nn.Module | None:
    """The replacement for ``module``, or None to keep it (after any in-place fold)."""
    if isinstance(module, Convolutional):
        if module.xnor or (module.raw_1x1 and isinstance(module, SharedConvolutional)):
            return None
        if module.raw_1x1:
            _fold_in_place(module, "conv", 0, mode)
            return None
        return FusedConvolutional(module, mode, prepack)
    if isinstance(module, Connected):
        return FusedConnected(module, mode)
    if type(module) is Yolo:
        return FusedYolo.from_yolo(module)
    if isinstance(module, Deconvolutional):
        _fold_in_place(module, "deconv", 1, mode)
    return None


@torch.no_grad()
def fuse_model(model: nn.Module, mode: str | None = None, prepack: bool = True) -> nn.Module:
    """Fold every conv/connected/deconv batch norm of ``model`` in place; returns ``model``.

    ``mode`` ``"cpu"`` or ``"gpu"`` forces Darknet's CPU or GPU BN epsilon; ``None`` (default)
    uses each BN's own mode, i.e. whatever the model computes unfused.  Call it on a model in
    eval mode (Darknet's inference BN uses the rolling statistics only).  ``prepack=False``
    keeps plain ``conv2d`` calls (see :class:`FusedConvolutional`).
    """
    if mode is not None and mode not in BN_EPS:
        raise ValueError(f"mode must be 'cpu', 'gpu' or None, got {mode!r}")
    top = _fused(model, mode, prepack)
    if top is not None:
        return top
    _fuse_children(model, mode, prepack)
    return model


def _fuse_children(parent: nn.Module, mode: str | None, prepack: bool) -> None:
    # Depth first, one child at a time, so each replaced layer is freed before the next one is
    # folded (peak memory: the model plus one layer, not two models).
    for name, child in list(parent.named_children()):
        new = _fused(child, mode, prepack)
        if new is None:
            _fuse_children(child, mode, prepack)
        else:
            new.train(child.training)
            setattr(parent, name, new)
