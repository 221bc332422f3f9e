"""Per-kind rules: output shape, flat sizes, parameter records and BFLOPs.

Each rule mirrors the Darknet constructor named in its docstring (``make_*_layer`` and
the ``parse_*`` function that calls it), so the shapes are exactly what Darknet reports,
zeros included.  Rules take resolved options and a :class:`Ctx`; they raise through
``ctx.fail`` so errors point at the offending cfg line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

__all__ = ["Record", "Info", "Ctx", "RULES"]

Shape = tuple[int, int, int]
# A layer's typed options, Darknet defaults applied (registry.py).
Options = Mapping[str, Any]


@dataclass(frozen=True)
class Record:
    """One parameter array in ``.weights`` file order (see docs/ARCHITECTURE.md)."""

    key: str
    part: str
    shape: tuple[int, ...]
    # How the file stores a matrix record: "" as the tensor; "header" transposed when the
    # header says so (connected matrices, load_connected_weights); "always" transposed
    # (a flipped=1 convolution, load_convolutional_weights).
    transpose: str = ""

    @property
    def count(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True)
class Info:
    output: Shape
    inputs: int
    outputs: int
    records: tuple[Record, ...] = ()
    bflops: float = 0.0
    sources: tuple[int, ...] | None = None  # None: the previous layer
    extra: tuple[tuple[str, Any], ...] = ()  # derived values added to the layer's options
    # (what, option key or None): sized exactly, but no reproducible forward (Layer.unbuilt).
    unbuilt: tuple[tuple[str, str | None], ...] = ()


@dataclass(frozen=True)
class Ctx:
    index: int
    c: int
    h: int
    w: int
    inputs: int
    previous: tuple[Any, ...]  # graph.Layer objects before this one
    fail: Callable[..., NoReturn]

    @property
    def chw(self) -> Shape:
        return (self.c, self.h, self.w)

    def need_image(self, kind: str) -> None:
        if not (self.c and self.h and self.w):
            self.fail(f"the layer before a {kind} layer must output an image (c, h, w all > 0)")


def _bn(prefix: str, n: int) -> tuple[Record, ...]:
    return (
        Record(f"{prefix}bn.weight", "scales", (n,)),
        Record(f"{prefix}bn.running_mean", "rolling_mean", (n,)),
        Record(f"{prefix}bn.running_var", "rolling_variance", (n,)),
    )


def conv_records(
    n: int, c_in: int, size: int, bn: bool, prefix: str = "", op: str = "conv", transpose: str = ""
) -> tuple[Record, ...]:
    """load_convolutional_weights(): biases, [scales, mean, variance], weights."""
    bias = Record(f"{prefix}bn.bias" if bn else f"{prefix}{op}.bias", "biases", (n,))
    wshape = (c_in, n, size, size) if op == "deconv" else (n, c_in, size, size)
    weight = Record(f"{prefix}{op}.weight", "weights", wshape, transpose)
    return (bias, *(_bn(prefix, n) if bn else ()), weight)


def connected_records(inputs: int, outputs: int, bn: bool, prefix: str = "") -> tuple[Record, ...]:
    """load_connected_weights(): biases, weights, then [scales, mean, variance]: BN comes last."""
    bias = Record(f"{prefix}bn.bias" if bn else f"{prefix}fc.bias", "biases", (outputs,))
    weight = Record(f"{prefix}fc.weight", "weights", (outputs, inputs), transpose="header")
    return (bias, weight, *(_bn(prefix, outputs) if bn else ()))


def _same(o: Options, x: Ctx) -> Info:
    return Info(x.chw, x.inputs, x.inputs)


def _convolutional(o: Options, x: Ctx) -> Info:
    """make_convolutional_layer(): out = (h + 2*pad - size)/stride + 1."""
    x.need_image("convolutional")
    n, size, stride, groups = o["filters"], o["size"], o["stride"], o["groups"]
    if x.c % groups or n % groups:
        x.fail(
            f"groups={groups} must divide both the input channels ({x.c}) and filters ({n})",
            "groups",
        )
    pad = o["padding"]
    oh, ow = (x.h + 2 * pad - size) // stride + 1, (x.w + 2 * pad - size) // stride + 1
    if oh <= 0 or ow <= 0:
        x.fail(f"size={size} is larger than the padded input {x.h}x{x.w}", "size")
    recs = conv_records(
        n,
        x.c // groups,
        size,
        bool(o["batch_normalize"]),
        transpose="always" if o["flipped"] else "",
    )
    bflops = 2.0 * n * size * size * (x.c // groups) * oh * ow / 1e9
    return Info((n, oh, ow), x.h * x.w * x.c, n * oh * ow, recs, bflops)


def _deconvolutional(o: Options, x: Ctx) -> Info:
    """make_deconvolutional_layer(): out = (h-1)*stride + size - 2*padding."""
    x.need_image("deconvolutional")
    n, size, stride, pad = o["filters"], o["size"], o["stride"], o["padding"]
    oh, ow = (x.h - 1) * stride + size - 2 * pad, (x.w - 1) * stride + size - 2 * pad
    if oh <= 0 or ow <= 0:
        x.fail(f"padding={pad} leaves no output", "padding")
    recs = conv_records(n, x.c, size, bool(o["batch_normalize"]), op="deconv")
    bflops = 2.0 * n * size * size * x.c * x.h * x.w / 1e9
    return Info((n, oh, ow), x.h * x.w * x.c, n * oh * ow, recs, bflops)


def _local(o: Options, x: Ctx) -> Info:
    """make_local_layer(): pad is the pixel padding; out = (h - (pad ? 1 : size))/stride + 1."""
    x.need_image("local")
    n, size, stride, pad = o["filters"], o["size"], o["stride"], o["pad"]
    oh = (x.h - (1 if pad else size)) // stride + 1
    ow = (x.w - (1 if pad else size)) // stride + 1
    if oh <= 0 or ow <= 0:
        x.fail(f"size={size} is larger than the input {x.h}x{x.w}", "size")
    recs = (
        Record("bias", "biases", (n, oh, ow)),
        Record("weight", "weights", (oh * ow, n, x.c, size, size)),
    )
    return Info((n, oh, ow), x.h * x.w * x.c, n * oh * ow, recs)


def _connected(o: Options, x: Ctx) -> Info:
    out = o["output"]
    return Info(
        (out, 1, 1), x.inputs, out, connected_records(x.inputs, out, bool(o["batch_normalize"]))
    )


def _rnn(o: Options, x: Ctx) -> Info:
    """make_rnn_layer(): input (inputs->out), self and output (out->out) connected layers."""
    out, bn = o["output"], bool(o["batch_normalize"])
    recs = (
        *connected_records(x.inputs, out, bn, "input."),
        *connected_records(out, out, bn, "self."),
        *connected_records(out, out, bn, "output."),
    )
    return Info((0, 0, 0), x.inputs, out, recs)


def _gates(names: str, o: Options, x: Ctx) -> Info:
    out, bn = o["output"], bool(o["batch_normalize"])
    recs: tuple[Record, ...] = ()
    for g in names.split():  # w* read the state (out->out), u* read the input (inputs->out)
        recs += connected_records(out if g[0] == "w" else x.inputs, out, bn, f"{g}.")
    return Info((0, 0, 0), x.inputs, out, recs)


def _crnn(o: Options, x: Ctx) -> Info:
    """make_crnn_layer(): three 3x3 pad-1 stride-1 convolutions."""
    x.need_image("crnn")
    hid, out, bn = o["hidden_filters"], o["output_filters"], bool(o["batch_normalize"])
    recs = (
        *conv_records(hid, x.c, 3, bn, "input."),
        *conv_records(hid, hid, 3, bn, "self."),
        *conv_records(out, hid, 3, bn, "output."),
    )
    bflops = 2.0 * 9 * x.h * x.w * (hid * x.c + hid * hid + out * hid) / 1e9
    return Info((out, x.h, x.w), x.h * x.w * x.c, out * x.h * x.w, recs, bflops)


def _maxpool(o: Options, x: Ctx) -> Info:
    """parse_maxpool(): size defaults to stride, padding (TOTAL) to size-1."""
    x.need_image("maxpool")
    size, stride, padding = o["size"], o["stride"], o["padding"]
    oh, ow = (x.h + padding - size) // stride + 1, (x.w + padding - size) // stride + 1
    if oh <= 0 or ow <= 0:
        x.fail(f"size={size} is larger than the padded input {x.h}x{x.w}", "size")
    return Info((x.c, oh, ow), x.h * x.w * x.c, x.c * oh * ow)


def _reorg(o: Options, x: Ctx) -> Info:
    """make_reorg_layer(): space-to-depth (or back with reverse); extra gives dims 0."""
    s = o["stride"]
    if o["reverse"]:
        if x.c % (s * s):
            x.fail(
                f"reverse reorg needs channels ({x.c}) divisible by stride^2 ({s * s})", "stride"
            )
        out = (x.c // (s * s), x.h * s, x.w * s)
    else:
        if not o["extra"]:
            reorg_divides(s, x)
        out = (x.c * s * s, x.h // s, x.w // s)
    inputs = x.h * x.w * x.c
    if o["extra"]:
        return Info((0, 0, 0), inputs, inputs + o["extra"])
    return Info(out, inputs, out[0] * out[1] * out[2])


def reorg_divides(s: int, x: Ctx) -> None:
    """A space-to-depth reorg whose input size the stride does not divide: reorg_cpu walks the
    whole input and writes past the end of l.output (outputs < inputs), so Darknet's result is
    undefined there; refused instead of guessed."""
    if x.h % s or x.w % s:
        x.fail(
            f"stride={s} must divide the input {x.w}x{x.h} (Darknet's reorg_cpu writes past its "
            "output buffer otherwise)",
            "stride",
        )


def _avgpool(o: Options, x: Ctx) -> Info:
    x.need_image("avgpool")
    return Info((x.c, 1, 1), x.h * x.w * x.c, x.c)


def _flat(o: Options, x: Ctx) -> Info:
    """softmax, cost: Darknet never sets out_c/out_h/out_w for these, so they report zeros."""
    return Info((0, 0, 0), x.inputs, x.inputs)


def _softmax(o: Options, x: Ctx) -> Info:
    if x.inputs % o["groups"]:
        x.fail(f"groups={o['groups']} does not divide the {x.inputs} inputs", "groups")
    return _flat(o, x)


def _route(o: Options, x: Ctx) -> Info:
    """parse_route(): channels add up while w,h match the first input; otherwise dims are 0."""
    idx = o["layers"]  # absolute and non-empty: resolved in graph._fixup
    first = x.previous[idx[0]]
    c, h, w = first.output
    for i in idx[1:]:
        oc, oh, ow = x.previous[i].output
        if (oh, ow) == (h, w) and (h, w) != (0, 0):
            c += oc
        else:
            c = h = w = 0
    total = sum(x.previous[i].outputs for i in idx)
    return Info((c, h, w), total, total, sources=tuple(idx))


def _upsample(o: Options, x: Ctx) -> Info:
    """make_upsample_layer(): a negative stride downsamples by -stride."""
    x.need_image("upsample")
    s = o["stride"]
    if s == 0:
        x.fail("stride must not be 0", "stride")
    h, w = (x.h * s, x.w * s) if s > 0 else (x.h // -s, x.w // -s)
    if h <= 0 or w <= 0:
        x.fail(f"stride={s} leaves no output from {x.h}x{x.w}", "stride")
    return Info((x.c, h, w), x.h * x.w * x.c, x.c * h * w)


def _shortcut(o: Options, x: Ctx) -> Info:
    """make_shortcut_layer(): the output has the previous layer's dims."""
    if x.index == 0:
        x.fail("a shortcut cannot be the first layer")
    return Info(x.chw, x.inputs, x.c * x.h * x.w, sources=(x.index - 1, o["from"]))


def _crop(o: Options, x: Ctx) -> Info:
    x.need_image("crop")
    ch, cw = o["crop_height"], o["crop_width"]
    if ch > x.h or cw > x.w:
        x.fail(f"crop {cw}x{ch} is larger than the input {x.w}x{x.h}", "crop_width")
    return Info((x.c, ch, cw), x.h * x.w * x.c, x.c * ch * cw)


def _head_check(kind: str, per_cell: int, n: int, x: Ctx) -> None:
    need = x.h * x.w * n * per_cell
    if need != x.inputs:
        x.fail(
            f"{kind} expects {n}*({per_cell}) = {n * per_cell} channels but its input has "
            f"{x.c} (filters= of the layer before must match classes=, num= or mask=)",
            "classes",
        )


def _yolo(o: Options, x: Ctx) -> Info:
    """make_yolo_layer(): n = len(mask) (or num) anchors of 4+1+classes planes each."""
    n = len(o["mask"]) if o["mask"] is not None else o["num"]
    _head_check("yolo", 5 + o["classes"], n, x)
    out = (n * (5 + o["classes"]), x.h, x.w)
    return Info(out, x.inputs, x.inputs)


def _region(o: Options, x: Ctx) -> Info:
    """make_region_layer(): num anchors of coords+1+classes planes each."""
    _head_check("region", o["coords"] + 1 + o["classes"], o["num"], x)
    return Info(x.chw, x.inputs, x.inputs)


def _detection(o: Options, x: Ctx) -> Info:
    """make_detection_layer(): side*side*((1+coords)*num + classes) inputs, dims 0."""
    need = o["side"] ** 2 * ((1 + o["coords"]) * o["num"] + o["classes"])
    if need != x.inputs:
        x.fail(
            f"detection expects side^2*((1+coords)*num+classes) = {need} inputs, got {x.inputs}",
            "side",
        )
    return Info((0, 0, 0), x.inputs, x.inputs)


def _batchnorm(o: Options, x: Ctx) -> Info:
    """make_batchnorm_layer(): scales, rolling mean and variance (its bias is not stored)."""
    x.need_image("batchnorm")
    return Info(x.chw, x.inputs, x.inputs, _bn("", x.c))


def _image_same(kind: str) -> Callable[..., Info]:
    def rule(o: Options, x: Ctx) -> Info:
        x.need_image(kind)
        return _same(o, x)

    return rule


RULES: Mapping[str, Callable[..., Info]] = {
    "convolutional": _convolutional,
    "deconvolutional": _deconvolutional,
    "local": _local,
    "activation": _same,
    "logistic": _same,
    "l2norm": _same,
    "rnn": _rnn,
    "gru": lambda o, x: _gates("wz wr wh uz ur uh", o, x),
    "lstm": lambda o, x: _gates("wi wf wo wg ui uf uo ug", o, x),
    "crnn": _crnn,
    "connected": _connected,
    "maxpool": _maxpool,
    "reorg": _reorg,
    "avgpool": _avgpool,
    "dropout": _same,
    "normalization": _image_same("normalization"),
    "batchnorm": _batchnorm,
    "softmax": _softmax,
    "route": _route,
    "upsample": _upsample,
    "shortcut": _shortcut,
    "crop": _crop,
    "cost": _flat,
    "detection": _detection,
    "region": _region,
    "yolo": _yolo,
}
