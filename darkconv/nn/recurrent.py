"""Darknet's recurrent layers for one time step from a fresh (zero) state: ``[rnn]``,
``[gru]``, ``[lstm]`` and ``[crnn]``.

Darknet keeps the hidden state across ``network_predict`` calls, so only the first call after
loading is reproducible; these modules always start from zeros (``time_steps=1``).  Sublayers
are :class:`~darkconv.modules.Connected` / :class:`~darkconv.modules.Convolutional` modules named
as in the weights file (``input``, ``self``, ``output``; ``wz`` ... ``uh``; ``wi`` ... ``ug``).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from darkconv.nn.modules import Connected, Convolutional, activate

__all__ = ["RNN", "GRU", "LSTM", "CRNN", "ConvLSTM"]


class _Recurrent(nn.Module):
    def sub(self, name: str) -> nn.Module:
        return self._modules[name]  # type: ignore[return-value]


class RNN(_Recurrent):
    """``[rnn]`` (rnn_layer.c): ``s = input(x) + self(0)`` (+ old state 0 with ``shortcut``),
    ``out = output(s)``; every sublayer is a connected layer with the rnn's activation and BN.
    ``hidden`` (AlexeyAB): the state size of input/self (pjreddie: ``output``)."""

    def __init__(
        self,
        inputs: int,
        output: int,
        activation: str = "logistic",
        batch_normalize: bool = False,
        bn_mode: str = "cpu",
        hidden: int | None = None,
        math: str = "double",
    ) -> None:
        super().__init__()
        hidden = output if hidden is None else hidden
        self.output_size = hidden
        self.out_shape = (0, 0, 0)
        for name, n_in, n_out in (
            ("input", inputs, hidden),
            ("self", hidden, hidden),
            ("output", hidden, output),
        ):
            sub = Connected(n_in, n_out, batch_normalize, activation, bn_mode, math)
            self.add_module(name, sub)

    def forward(self, x: Tensor) -> Tensor:
        state = x.new_zeros(x.shape[0], self.output_size)
        # forward_rnn_layer: the new state is (old state if shortcut, i.e. 0) + input + self.
        s = self.sub("input")(x) + self.sub("self")(state)
        return self.sub("output")(s)


class GRU(_Recurrent):
    """``[gru]`` (gru_layer.c): ``z = σ(uz(x)+wz(h))``, ``r = σ(ur(x)+wr(h))``,
    ``ĥ = σ|tanh(uh(x)+wh(r*h))``, ``out = z*h + (1-z)*ĥ`` with h = 0; linear sublayers."""

    def __init__(
        self,
        inputs: int,
        output: int,
        batch_normalize: bool = False,
        tanh: bool = False,
        bn_mode: str = "cpu",
    ) -> None:
        super().__init__()
        self.output_size = output
        self.out_shape = (0, 0, 0)
        self.candidate = "tanh" if tanh else "logistic"
        for name in ("wz", "wr", "wh"):
            self.add_module(name, Connected(output, output, batch_normalize, "linear", bn_mode))
        for name in ("uz", "ur", "uh"):
            self.add_module(name, Connected(inputs, output, batch_normalize, "linear", bn_mode))

    def forward(self, x: Tensor) -> Tensor:
        h = x.new_zeros(x.shape[0], self.output_size)
        z = activate(self.sub("uz")(x) + self.sub("wz")(h), "logistic")
        r = activate(self.sub("ur")(x) + self.sub("wr")(h), "logistic")
        cand = activate(self.sub("uh")(x) + self.sub("wh")(r * h), self.candidate)
        # weighted_sum_cpu(state, h, z): z*state + (1-z)*h
        return z * h + (1 - z) * cand


class LSTM(_Recurrent):
    """``[lstm]`` (lstm_layer.c): ``f,i,o = σ(u*(x)+w*(h))``, ``g = tanh(ug(x)+wg(h))``,
    ``c = f*c + i*g``, ``h = o*tanh(c)`` from h = c = 0; linear sublayers."""

    def __init__(
        self, inputs: int, output: int, batch_normalize: bool = False, bn_mode: str = "cpu"
    ) -> None:
        super().__init__()
        self.output_size = output
        self.out_shape = (0, 0, 0)
        for name in ("wi", "wf", "wo", "wg"):
            self.add_module(name, Connected(output, output, batch_normalize, "linear", bn_mode))
        for name in ("ui", "uf", "uo", "ug"):
            self.add_module(name, Connected(inputs, output, batch_normalize, "linear", bn_mode))

    def forward(self, x: Tensor) -> Tensor:
        h = x.new_zeros(x.shape[0], self.output_size)
        c = h
        f = activate(self.sub("wf")(h) + self.sub("uf")(x), "logistic")
        i = activate(self.sub("wi")(h) + self.sub("ui")(x), "logistic")
        g = activate(self.sub("wg")(h) + self.sub("ug")(x), "tanh")
        o = activate(self.sub("wo")(h) + self.sub("uo")(x), "logistic")
        c = c * f + i * g
        return activate(c, "tanh") * o


class CRNN(_Recurrent):
    """``[crnn]`` (crnn_layer.c): :class:`RNN` with 3x3 pad-1 stride-1 convolutions
    (``hidden_filters`` for input/self, ``output_filters`` for output).  AlexeyAB's crnn makes
    the geometry configurable: ``conv`` overrides the convolutions' keyword arguments (size,
    stride, padding, groups, dilation, math...)."""

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        hidden_filters: int,
        output_filters: int,
        activation: str = "logistic",
        batch_normalize: bool = False,
        bn_mode: str = "cpu",
        **conv: Any,
    ) -> None:
        super().__init__()
        c, h, w = in_shape
        kw: dict[str, Any] = dict(size=3, stride=1, padding=1)
        kw.update(conv, batch_normalize=batch_normalize, activation=activation, bn_mode=bn_mode)
        first = Convolutional((c, h, w), hidden_filters, **kw)
        self.hidden_shape = first.out_shape
        self.add_module("input", first)
        self.add_module("self", Convolutional(self.hidden_shape, hidden_filters, **kw))
        out = Convolutional(self.hidden_shape, output_filters, **kw)
        self.add_module("output", out)
        self.out_shape = out.out_shape

    def forward(self, x: Tensor) -> Tensor:
        state = x.new_zeros((x.shape[0],) + self.hidden_shape)
        s = self.sub("input")(x) + self.sub("self")(state)
        return self.sub("output")(s)


class ConvLSTM(_Recurrent):
    """AlexeyAB's ``[conv_lstm]`` (conv_lstm_layer.c forward_conv_lstm_layer), one time step from
    a zero state ``h = c = 0``: ``f = σ(wf(h) + uf(x) [+ vf(c)])``, ``i = σ(wi(h) + ui(x) [+ vi(c)])``,
    ``g = tanh(wg(h) + ug(x))``, ``c = f*c + i*g``, ``o = σ(wo(h) + uo(x) [+ vo(c)])`` (vo sees the
    new c), ``h = o * tanh(c)``; the output is h.  Every gate is a convolution with the layer's
    geometry, activation and batch norm (never fused by Darknet); ``v*`` only with ``peephole``.
    The zero-state convolutions still contribute their bias/BN offset and activation.
    ``conv`` holds the keyword arguments shared by every gate's
    :class:`~darkconv.nn.modules.Convolutional` (size, stride, padding, groups, dilation, BN...).
    """

    GATES_W = ("wf", "wi", "wg", "wo")
    GATES_U = ("uf", "ui", "ug", "uo")

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        output: int,
        peephole: bool = False,
        math: str = "float",
        **conv: Any,
    ) -> None:
        super().__init__()
        c, h, w = in_shape
        self.peephole, self.math = bool(peephole), math
        names = (("vf", "vi", "vo") if peephole else ()) + self.GATES_W + self.GATES_U
        out: tuple[int, int, int] = (output, h, w)
        for name in names:  # file order (load_weights: vf vi vo wf wi wg wo uf ui ug uo)
            ch = c if name.startswith("u") else output
            gate = Convolutional((ch, h, w), output, math=math, **conv)
            self.add_module(name, gate)
            out = gate.out_shape
        self.state_shape = (output, h, w)
        self.out_shape = out
        if out[1:] != (h, w):
            # w*/v* read the state with the input's h, w (make_conv_lstm_layer asserts equal sizes)
            raise ValueError(
                f"conv_lstm: stride/padding change the size {h}x{w} -> {out[1]}x{out[2]}"
            )

    def _act(self, x: Tensor, name: str) -> Tensor:
        return activate(x, name, self.math)

    def forward(self, x: Tensor) -> Tensor:
        zeros = x.new_zeros((x.shape[0], *self.state_shape))
        g = {n: self.sub(n)(zeros) for n in ("wf", "wi", "wg", "wo")}
        g.update({n: self.sub(n)(x) for n in self.GATES_U})
        f = g["wf"] + g["uf"]
        i = g["wi"] + g["ui"]
        if self.peephole:  # vf, vi see the old cell state (zeros)
            f = f + self.sub("vf")(zeros)
            i = i + self.sub("vi")(zeros)
        f, i = self._act(f, "logistic"), self._act(i, "logistic")
        cell = f * zeros + i * self._act(g["wg"] + g["ug"], "tanh")
        o = g["wo"] + g["uo"]
        if self.peephole:
            o = o + self.sub("vo")(cell)
        o = self._act(o, "logistic")
        return o * self._act(cell, "tanh")
