"""AlexeyAB's layers that combine the outputs of several layers, or make one from parameters:
``[shortcut]`` with several ``from=`` and learned weights, ``[scale_channels]``, ``[sam]`` and
``[implicit]``.

As elsewhere, each module reshapes its inputs from Darknet's flat buffers to the dims it was
built for, and the activation is applied by name with the dialect's formula table (the builder
has already replaced a name that AlexeyAB's CPU ``activate()`` does not know by ``cpu_zero``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from darkconv.nn.activations import activate, check_activation
from darkconv.nn.modules import ParamHolder, as_chw

__all__ = ["WEIGHT_NORMALIZATIONS", "MultiShortcut", "ScaleChannels", "Sam", "Implicit"]

Shape3 = tuple[int, int, int]


def _relu_norm(w: Tensor, floor: float | None) -> Tensor:
    # RELU_NORMALIZATION: relu(w_i) / (1e-4 + sum_j relu(w_j)) (shortcut_multilayer_cpu).
    # ``floor``: fuse_conv_batchnorm normalizes once at load with lrelu(w) = max(w, 0.001).
    pos = torch.clamp(w, min=0.0) if floor is None else torch.clamp(w, min=floor)
    return pos / (pos.sum(dim=0, keepdim=True) + 1e-4)


def _softmax_norm(w: Tensor) -> Tensor:
    # SOFTMAX_NORMALIZATION: exp(w_i - max) / (1e-4 + sum_j exp(w_j - max)), the same at load.
    e = torch.exp(w - w.amax(dim=0, keepdim=True))
    return e / (e.sum(dim=0, keepdim=True) + 1e-4)


#: ``weights_normalization`` formulas over the ``n_from + 1`` weights (dim 0).  ``relu_fused``
#: is what ``fuse_conv_batchnorm`` (network.c) leaves at load time in every AlexeyAB app.
WEIGHT_NORMALIZATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "none": lambda w: w,
    "relu": lambda w: _relu_norm(w, None),
    "relu_fused": lambda w: _relu_norm(w, 0.001),
    "softmax": _softmax_norm,
}


class MultiShortcut(nn.Module):
    """AlexeyAB's ``[shortcut]`` (shortcut_layer.c, blas.c shortcut_multilayer_cpu), over the flat
    buffers: ``out[i] = in[i]*w_0 + sum_k from_k[i]*w_{k+1}`` for ``i < outputs``, where a from
    layer only contributes for ``i < from_k.outputs`` (equal h, w: its first planes).  Unweighted:
    every ``w = 1``.  ``weights_type`` ``per_feature``: one weight per input (``n_from+1``);
    ``per_channel``: ``(n_from+1, c)``, block 0 for the previous layer.  ``normalization`` names a
    :data:`WEIGHT_NORMALIZATIONS` entry.  Then the activation over everything.
    """

    def __init__(
        self,
        in_shape: Shape3,
        from_outputs: Sequence[int],
        activation: str = "linear",
        weights_type: str = "none",
        normalization: str = "none",
        math: str = "float",
    ) -> None:
        super().__init__()
        check_activation(activation, math)
        c, h, w = in_shape
        self.in_shape = self.out_shape = (c, h, w)
        self.outputs = c * h * w
        self.from_outputs = tuple(int(n) for n in from_outputs)
        self.activation, self.math = activation, math
        self.weights_type, self.normalization = weights_type, normalization
        self.norm = WEIGHT_NORMALIZATIONS[normalization]
        n = len(self.from_outputs) + 1
        shape = {"none": None, "per_feature": (n,), "per_channel": (n, c)}[weights_type]
        if shape is not None:
            self.shortcut = ParamHolder(weight=shape)
            nn.init.ones_(self.shortcut.weight)
        self.plain = shape is None and all(k == self.outputs for k in self.from_outputs)

    def weights(self) -> Tensor | None:
        """The normalized weights as ``(n_from+1, c or 1, 1, 1)``, or None when unweighted."""
        if self.weights_type == "none":
            return None
        w = self.norm(self.shortcut.weight)
        return w.reshape(w.shape[0], -1, 1, 1)

    def forward(self, x: Tensor, *sources: Tensor) -> Tensor:
        x = as_chw(x, self.in_shape)
        w = self.weights()
        b = x.shape[0]
        if self.plain:
            y = x
            for src in sources:
                y = y + as_chw(src, self.in_shape)
        else:
            y = x * w[0] if w is not None else x
            out = y.reshape(b, -1).clone()
            for k, (src, n) in enumerate(zip(sources, self.from_outputs, strict=True)):
                m = min(n, self.outputs)
                add = src.reshape(b, -1)[:, :m]
                if w is not None:
                    add = add * w[k + 1].expand(self.in_shape).reshape(1, -1)[:, :m]
                out[:, :m] = out[:, :m] + add
            y = out.reshape(b, *self.in_shape)
        return activate(y, self.activation, self.math)

    def extra_repr(self) -> str:
        return (
            f"from_outputs={self.from_outputs}, weights_type={self.weights_type}, "
            f"normalization={self.normalization}, activation={self.activation}"
        )


class ScaleChannels(nn.Module):
    """``[scale_channels]`` (scale_channels_layer.c): ``out[c,y,x] = prev[c] * from[c,y,x]``
    (prev is the ``(c, 1, 1)`` squeeze-excitation vector); ``scale_wh``:
    ``out[c,y,x] = prev[0,y,x] * from[c,y,x]``.  The output has the from layer's dims; then the
    activation (``activate_array``)."""

    def __init__(
        self,
        in_shape: Shape3,
        from_shape: Shape3,
        scale_wh: bool = False,
        activation: str = "linear",
        math: str = "float",
    ) -> None:
        super().__init__()
        check_activation(activation, math)
        (c0, h0, w0), (c, h, w) = in_shape, from_shape
        self.in_shape: Shape3 = (c0, h0, w0)
        self.from_shape: Shape3 = (c, h, w)
        self.out_shape = self.from_shape
        self.scale_wh = bool(scale_wh)
        self.activation, self.math = activation, math

    def forward(self, x: Tensor, src: Tensor) -> Tensor:
        c, h, w = self.from_shape
        b = x.shape[0]
        src = as_chw(src, self.from_shape)
        flat = x.reshape(b, -1)
        scale = flat[:, : h * w].reshape(b, 1, h, w) if self.scale_wh else flat[:, :c]
        y = src * scale.reshape(b, 1, h, w) if self.scale_wh else src * scale.reshape(b, c, 1, 1)
        return activate(y, self.activation, self.math)


class Sam(nn.Module):
    """``[sam]`` (sam_layer.c, spatial attention): ``out = prev * from`` elementwise over the
    output (the from layer's dims), then the activation."""

    def __init__(self, from_shape: Shape3, activation: str = "linear", math: str = "float") -> None:
        super().__init__()
        check_activation(activation, math)
        self.out_shape = tuple(from_shape)
        self.activation, self.math = activation, math

    def forward(self, x: Tensor, src: Tensor) -> Tensor:
        b = x.shape[0]
        n = self.out_shape[0] * self.out_shape[1] * self.out_shape[2]
        y = x.reshape(b, -1)[:, :n] * src.reshape(b, -1)[:, :n]
        return activate(y.reshape(b, *self.out_shape), self.activation, self.math)


class Implicit(nn.Module):
    """``[implicit]`` (representation_layer.c): the output is the stored weights
    ``(filters, atoms, 1)`` whatever the input (only its batch size is used)."""

    def __init__(self, filters: int, atoms: int = 1) -> None:
        super().__init__()
        self.out_shape = (filters, atoms, 1)
        self.implicit = ParamHolder(weight=self.out_shape)
        nn.init.ones_(self.implicit.weight)

    def forward(self, x: Tensor | None = None) -> Tensor:
        w = self.implicit.weight
        b = 1 if x is None else x.shape[0]
        return w.unsqueeze(0).expand(b, *self.out_shape)
