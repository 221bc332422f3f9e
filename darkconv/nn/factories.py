"""The one table from a graph layer's formula (``Layer.impl``) to its torch module.

Every dialect fact a module needs is looked up here, once, from ``network.facts`` (the
registry's :class:`~darkconv.parse.kinds.Dialect`): the batch-norm formula, the activation
formula table (``activation_math``), which 1x1 convolutions read the raw buffer, whether the
apps fold the weights at load time, and which activations the CPU forward turns into 0.  The
modules only receive plain values.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from darkconv.errors import GraphError, UnsupportedError
from darkconv.nn import heads, merge, modules, pool, recurrent, spatial, train_mode
from darkconv.nn.activations import CPU_ZERO
from darkconv.parse.graph import Layer, Network

__all__ = ["Ctx", "Factory", "FACTORIES", "BN_MODE"]

Shape3 = tuple[int, int, int]

#: (dialect ``bn_formula``, requested ``bn_mode``) -> the DarknetBatchNorm formula.  pjreddie's
#: CPU and GPU builds differ; AlexeyAB's CPU code uses ``sqrt(var + 1e-5)`` like cuDNN.
BN_MODE: dict[tuple[str, str], str] = {
    ("sqrt_var_then_eps", "cpu"): "cpu",
    ("sqrt_var_then_eps", "gpu"): "gpu",
    ("sqrt_var_plus_eps", "cpu"): "alexeyab",
    ("sqrt_var_plus_eps", "gpu"): "alexeyab",
}

#: weights_normalization -> the formula used when the dialect's apps fold weights at load time
#: (fuse_conv_batchnorm normalizes shortcut weights once with max(w, 0.001) instead of relu).
_LOAD_TIME_NORM = {"relu": "relu_fused"}


@dataclass(frozen=True)
class Ctx:
    network: Network
    bn_mode: str = "cpu"
    intended_activations: bool = False  # compute the named formula where the CPU outputs 0
    nofuse: bool = False  # AlexeyAB without its load-time folding (outputs_nofuse.npz)

    @property
    def bn(self) -> str:
        return BN_MODE[(self.network.facts.bn_formula, self.bn_mode)]

    @property
    def math(self) -> str:
        return self.network.facts.activation_math

    def act(self, la: Layer, kind: str | None = None, name: str | None = None) -> str:
        """The activation formula ``la`` runs: its ``activation`` option, or ``cpu_zero`` where
        the dialect's CPU ``activate()`` has no case for it (unless ``intended_activations``)."""
        name = la.options["activation"] if name is None else name
        if self.intended_activations:
            return name
        return CPU_ZERO if self.network.facts.cpu_outputs_zero(kind or la.type, name) else name

    def load_time_norm(self, norm: str) -> str:
        if self.nofuse or not self.network.facts.fuse_at_load:
            return norm
        return _LOAD_TIME_NORM.get(norm, norm)

    def shape_of(self, index: int) -> Shape3:
        """The output dims of source ``index`` (-1: the network input)."""
        return self.network.input if index < 0 else self.network.layers[index].output

    def outputs_of(self, index: int) -> int:
        return self.network.inputs if index < 0 else self.network.layers[index].outputs


def _train_float(la: Layer, key: str, default: float) -> float:
    # A training-only option: the graph keeps it as written (atof), not parsed.
    raw = dict(la.cfg).get(key)
    try:
        return float(raw) if raw is not None else default
    except ValueError:
        return default


def _tree_groups(ctx: Ctx, tree: str) -> list[int]:
    # Darknet opens tree= relative to the working directory; fall back to the cfg's folder.
    candidates = [Path(tree)]
    if ctx.network.path and not os.path.isabs(tree):
        candidates.append(Path(ctx.network.path).parent / tree)
    for path in candidates:
        if path.is_file():
            return heads.read_tree_groups(str(path))
    raise GraphError(
        f"softmax tree file {tree!r} not found (looked in the working directory and next to the cfg)"
    )


def _b(v: Any) -> bool:
    return bool(v)


def _conv_kwargs(o: Any, ctx: Ctx, act: str) -> dict[str, Any]:
    """Convolutional keyword arguments from conv-like options (AlexeyAB's keys optional)."""
    return dict(
        size=o["size"], stride=o.get("stride_x", o["stride"]), padding=o["padding"],
        groups=o.get("groups", 1), batch_normalize=_b(o["batch_normalize"]), activation=act,
        bn_mode=ctx.bn, stride_y=o.get("stride_y", o["stride"]), dilation=o.get("dilation", 1),
        math=ctx.math, raw_1x1=ctx.network.facts.conv_raw_1x1,
    )  # fmt: skip


def _conv(la: Layer, ctx: Ctx) -> nn.Module:
    o = la.options
    kw = _conv_kwargs(o, ctx, ctx.act(la))
    blur = o.get("antialias_blur") or None
    if o.get("share_index") is not None:
        # fuse_conv_batchnorm: a sharing layer runs the owner's folded weights without BN of its
        # own; unfused, it applies the owner's BN only when it has batch_normalize itself.
        owner_bn = kw["batch_normalize"] or (ctx.network.facts.fuse_at_load and not ctx.nofuse)
        return modules.SharedConvolutional(
            la.input, o["filters"], antialias=blur, owner_bn=owner_bn, **kw
        )
    return modules.Convolutional(la.input, o["filters"], xnor=_b(o["xnor"]), antialias=blur, **kw)


def _deconv(la: Layer, ctx: Ctx) -> nn.Module:
    o = la.options
    return modules.Deconvolutional(
        la.input, o["filters"], o["size"], o["stride"], o["padding"],
        _b(o["batch_normalize"]), ctx.act(la), bn_mode=ctx.bn, math=ctx.math,
    )  # fmt: skip


def _softmax(la: Layer, ctx: Ctx) -> nn.Module:
    o = la.options
    tree, error = None, None
    if o.get("tree"):
        try:
            tree = _tree_groups(ctx, o["tree"])
        except GraphError as exc:  # the model still builds (shapes, weights); forward raises
            error = GraphError(f"layer {la.index}: {exc.message}", la.span)
    return heads.Softmax(la.inputs, o["groups"], o["temperature"], tree, error)


def _tree_error(la: Layer) -> UnsupportedError | None:
    if not la.options.get("tree"):
        return None
    return UnsupportedError(
        f"layer {la.index}: [region] with tree= (yolo9000) is not supported: Darknet's CPU "
        "forward runs its softmax at temperature 0, so its output is not usable", la.span,
    )  # fmt: skip


def _region(la: Layer, ctx: Ctx) -> nn.Module:
    o = la.options
    return heads.Region(
        la.input, o["classes"], o["coords"], o["num"], _b(o["softmax"]), _b(o["background"]),
        o["anchors"] or (), error=_tree_error(la),
    )  # fmt: skip


def _region_ab(la: Layer, ctx: Ctx) -> nn.Module:
    o = la.options
    return heads.RegionAB(
        la.input, o["classes"], o["coords"], o["num"], _b(o["softmax"]), o["anchors"] or (),
        error=_tree_error(la), math=ctx.math,
    )  # fmt: skip


def _yolo(cls: type[heads.Yolo]) -> Factory:
    def make(la: Layer, ctx: Ctx) -> nn.Module:
        o = la.options
        mask = o["mask"] if o["mask"] is not None else tuple(range(o["num"]))
        return cls(
            la.input, o["classes"], mask, o["anchors"] or (), o.get("scale_x_y", 1.0),
            _b(o.get("new_coords", 0)), math=ctx.math,
        )  # fmt: skip

    return make


def _shortcut(la: Layer, ctx: Ctx) -> nn.Module:
    o = la.options
    prev, src = la.sources
    return spatial.Shortcut(
        ctx.shape_of(prev), ctx.shape_of(src), ctx.act(la), o["alpha"], o["beta"], ctx.math
    )


def _shortcut_ab(la: Layer, ctx: Ctx) -> nn.Module:
    o = la.options
    return merge.MultiShortcut(
        ctx.shape_of(la.sources[0]), [ctx.outputs_of(s) for s in la.sources[1:]], ctx.act(la),
        o["weights_type"], ctx.load_time_norm(o["weights_normalization"]), ctx.math,
    )  # fmt: skip


def _maxpool(la: Layer, ctx: Ctx) -> nn.Module:
    o = la.options
    return pool.MaxPool(
        la.input, o["size"], o.get("stride_x", o["stride"]), o["padding"],
        stride_y=o.get("stride_y", o["stride"]),
        out_channels=o["out_channels"] if o.get("maxpool_depth") else None,
        antialias=o.get("antialias_blur") or None,
    )  # fmt: skip


def _conv_lstm(la: Layer, ctx: Ctx) -> nn.Module:
    o = la.options
    kw = _conv_kwargs(o, ctx, ctx.act(la, kind="convolutional"))  # the gates are conv layers
    kw["stride"] = kw["stride_y"] = o["stride"]
    return recurrent.ConvLSTM(la.input, o["output"], _b(o["peephole"]), **kw)


def _rnn(la: Layer, ctx: Ctx) -> nn.Module:
    o = la.options
    return recurrent.RNN(la.inputs, o["output"], ctx.act(la), _b(o["batch_normalize"]), ctx.bn)


def _crnn(la: Layer, ctx: Ctx) -> nn.Module:
    o = la.options
    return recurrent.CRNN(
        la.input, o["hidden_filters"], o["output_filters"], ctx.act(la),
        _b(o["batch_normalize"]), ctx.bn,
    )  # fmt: skip


def _rnn_ab(la: Layer, ctx: Ctx) -> nn.Module:
    # AlexeyAB's parse_rnn: input -> hidden, self hidden -> hidden, output hidden -> output.
    o = la.options
    return recurrent.RNN(
        la.inputs, o["output"], ctx.act(la), _b(o["batch_normalize"]), ctx.bn, o["hidden"],
        ctx.math,
    )  # fmt: skip


def _crnn_ab(la: Layer, ctx: Ctx) -> nn.Module:
    # AlexeyAB's parse_crnn: "hidden"/"output" filters, the conv geometry from the options.
    o = la.options
    kw = _conv_kwargs(o, ctx, ctx.act(la))
    kw["stride"] = kw["stride_y"] = o["stride"]
    bn, mode = kw.pop("batch_normalize"), kw.pop("bn_mode")
    act = kw.pop("activation")
    return recurrent.CRNN(la.input, o["hidden"], o["output"], act, bn, mode, **kw)


Factory = Callable[[Layer, Ctx], nn.Module]

FACTORIES: dict[str, Factory] = {
    "convolutional": _conv,
    "deconvolutional": _deconv,
    "local": lambda la, ctx: modules.Local(
        la.input,
        la.options["filters"],
        la.options["size"],
        la.options["stride"],
        la.options["pad"],
        ctx.act(la),
        ctx.math,
    ),  # fmt: skip
    "connected": lambda la, ctx: modules.Connected(
        la.inputs,
        la.options["output"],
        _b(la.options["batch_normalize"]),
        ctx.act(la),
        ctx.bn,
        ctx.math,
    ),  # fmt: skip
    "batchnorm": lambda la, ctx: modules.BatchNormLayer(
        la.input, ctx.bn, bias=ctx.network.facts.batchnorm_bias_stored
    ),
    "activation": lambda la, ctx: modules.Activation(ctx.act(la), ctx.math, la.input),
    "logistic": lambda la, ctx: heads.LogisticHead(ctx.math),
    "dropout": lambda la, ctx: train_mode.Dropout(_train_float(la, "probability", 0.5)),
    "empty": lambda la, ctx: modules.Identity(),
    "maxpool": _maxpool,
    "local_avgpool": lambda la, ctx: pool.LocalAvgPool(
        la.input,
        la.options["size"],
        la.options["stride_x"],
        la.options["padding"],
        la.options["stride_y"],
    ),  # fmt: skip
    "avgpool": lambda la, ctx: pool.AvgPool(la.input),
    "route": lambda la, ctx: spatial.Route(
        la.output, la.options.get("groups", 1), la.options.get("group_id", 0)
    ),
    "shortcut": _shortcut,
    "shortcut_ab": _shortcut_ab,
    "scale_channels": lambda la, ctx: merge.ScaleChannels(
        la.input, ctx.shape_of(la.sources[1]), _b(la.options["scale_wh"]), ctx.act(la), ctx.math
    ),
    "sam": lambda la, ctx: merge.Sam(ctx.shape_of(la.sources[1]), ctx.act(la), ctx.math),
    "implicit": lambda la, ctx: merge.Implicit(la.options["filters"], la.options["atoms"]),
    "upsample": lambda la, ctx: spatial.Upsample(
        la.input, la.options["stride"], la.options["scale"]
    ),
    "reorg": lambda la, ctx: spatial.Reorg(
        la.input,
        la.options["stride"],
        _b(la.options["reverse"]),
        _b(la.options.get("flatten", 0)),
        la.options.get("extra", 0),
    ),  # fmt: skip
    "reorg3d": lambda la, ctx: spatial.Reorg3d(
        la.input, la.options["stride"], _b(la.options["reverse"])
    ),
    "crop": lambda la, ctx: spatial.Crop(
        la.input,
        la.options["crop_height"],
        la.options["crop_width"],
        _b(la.options["noadjust"]),
        bool(int(_train_float(la, "flip", 0))),
    ),
    "l2norm": lambda la, ctx: spatial.L2Norm(la.input),
    "normalization": lambda la, ctx: spatial.Normalization(
        la.input,
        la.options["size"],
        la.options["alpha"],
        la.options["beta"],
        la.options["kappa"],
    ),  # fmt: skip
    "softmax": _softmax,
    "yolo": _yolo(heads.Yolo),
    "Gaussian_yolo": _yolo(heads.GaussianYolo),
    "region": _region,
    "region_ab": _region_ab,
    "detection": lambda la, ctx: heads.Detection(
        la.inputs, la.options["classes"], la.options["side"], _b(la.options["softmax"])
    ),
    "cost": lambda la, ctx: heads.Cost(la.inputs),
    "rnn": _rnn,
    "gru": lambda la, ctx: recurrent.GRU(
        la.inputs,
        la.options["output"],
        _b(la.options["batch_normalize"]),
        _b(la.options["tanh"]),
        ctx.bn,
    ),  # fmt: skip
    "lstm": lambda la, ctx: recurrent.LSTM(
        la.inputs, la.options["output"], _b(la.options["batch_normalize"]), ctx.bn
    ),
    "crnn": _crnn,
    "rnn_ab": _rnn_ab,
    "crnn_ab": _crnn_ab,
    # forward_contrastive_layer returns at once when not training: its output stays all zeros.
    "contrastive": lambda la, ctx: heads.Cost(la.outputs),
    "conv_lstm": _conv_lstm,
}
