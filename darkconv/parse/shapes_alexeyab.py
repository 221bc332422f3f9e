"""AlexeyAB's shape, record and BFLOP rules, where they differ from pjreddie's (``shapes.py``).

Each rule mirrors the AlexeyAB constructor in its docstring (commit 59596d7).  Kinds both
Darknets size alike reuse pjreddie's rules; ``RULES`` is the complete table for the dialect.
Options reach a rule resolved by ``graph._fixup`` (stride_x/stride_y, padding, absolute indices).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from darkconv.parse import shapes as pj
from darkconv.parse.shapes import Ctx, Info, Record, connected_records, conv_records

Options = Mapping[str, Any]  # a layer's typed options, defaults applied

__all__ = ["RULES"]


def _conv_out(h: int, w: int, size: int, sx: int, sy: int, pad: int) -> tuple[int, int]:
    """convolutional_out_height/width(): (h + 2*pad - size)/stride_y + 1 (dilation not counted)."""
    return (h + 2 * pad - size) // sy + 1, (w + 2 * pad - size) // sx + 1


def _conv_bflops(nweights: int, oh: int, ow: int) -> float:
    return 2.0 * nweights * oh * ow / 1e9


def _blur(
    o: Options, n: int, oh: int, ow: int, x: Ctx
) -> tuple[tuple[int, int, int], tuple[Any, ...]]:
    """The fixed depthwise blur of antialiasing=1 (3x3, pad 1) or 2 (2x2, pad 0) with the cfg's
    strides (make_convolutional_layer :801-835, make_maxpool_layer); the next layer reads it."""
    size, pad = (2, 0) if o["antialiasing"] == 2 else (3, 1)
    bh, bw = _conv_out(oh, ow, size, o["blur_stride_x"], o["blur_stride_y"], pad)
    if bh <= 0 or bw <= 0:
        x.fail(f"antialiasing leaves no output from {oh}x{ow}", "antialiasing")
    return (n, bh, bw), (size, o["blur_stride_x"], o["blur_stride_y"], pad)


def _convolutional(o: Options, x: Ctx) -> Info:
    """make_convolutional_layer(): stride_x/stride_y, dilation, antialiasing, share_index."""
    x.need_image("convolutional")
    n, size, groups = o["filters"], o["size"], o["groups"]
    if x.c % groups or n % groups:
        x.fail(
            f"groups={groups} must divide both the input channels ({x.c}) and filters ({n})",
            "groups",
        )
    oh, ow = _conv_out(x.h, x.w, size, o["stride_x"], o["stride_y"], o["padding"])
    if oh <= 0 or ow <= 0:
        x.fail(f"size={size} is larger than the padded input {x.h}x{x.w}", "size")
    nweights = (x.c // groups) * n * size * size
    bflops = _conv_bflops(nweights, oh, ow) / (32 if o["xnor"] else 1)
    recs: tuple[Record, ...] = ()
    share = o["share_index"]
    if share is not None:
        other = x.previous[share]
        same = other.type == "convolutional" and (
            other.options["size"],
            other.input[0],
            other.options["filters"],
            other.options["groups"],
        ) == (size, x.c, n, groups)
        if not same:
            x.fail(
                f"share_index={share}: layer {share} must be a convolutional layer with the same "
                "size, input channels and filters (make_convolutional_layer)",
                "share_index",
            )
    else:
        recs = conv_records(
            n, x.c // groups, size, bool(o["batch_normalize"]),
            transpose="always" if o["flipped"] else "",
        )  # fmt: skip
    out: tuple[int, int, int] = (n, oh, ow)
    extra: tuple[tuple[str, Any], ...] = ()
    if o["antialiasing"]:
        out, blur = _blur(o, n, oh, ow, x)
        extra = (("antialias_blur", blur), ("host_output", (n, oh, ow)))
    return Info(
        out, x.h * x.w * x.c, out[0] * out[1] * out[2], recs, bflops, extra=extra,
        unbuilt=_dilation_mismatch(o, x, oh, ow),
    )  # fmt: skip


def _dilation_mismatch(o: Options, x: Ctx, oh: int, ow: int) -> tuple[tuple[str, str], ...]:
    """im2col pads by pad*dilation and spans dilation*(size-1)+1 (convolutional_layer.c:1375),
    the output size ignores dilation: where the two disagree, gemm reads workspace leftovers
    and Darknet's output is not reproducible (fixtures/alexeyab README, "Not covered")."""
    d, k, p = o["dilation"], o["size"], o["padding"]
    if d == 1:
        return ()
    span = d * (k - 1) + 1
    ih = (x.h + 2 * p * d - span) // o["stride_y"] + 1
    iw = (x.w + 2 * p * d - span) // o["stride_x"] + 1
    if (ih, iw) == (oh, ow):
        return ()
    what = (
        f"dilation={d} with size={k} and padding {p} (im2col gives {iw}x{ih}, Darknet's output "
        f"is {ow}x{oh}: its values are workspace leftovers, not reproducible)"
    )
    return ((what, "dilation"),)


def _pool(o: Options, x: Ctx, kind: str) -> Info:
    """make_maxpool_layer() (also [local_avgpool]): out (w + padding - size)/stride_x + 1;
    maxpool_depth keeps w,h and gives out_channels planes."""
    x.need_image(kind)
    size, padding = o["size"], o["padding"]
    if o.get("maxpool_depth"):
        oc, oh, ow = o["out_channels"], x.h, x.w
    else:
        oc = x.c
        oh = (x.h + padding - size) // o["stride_y"] + 1
        ow = (x.w + padding - size) // o["stride_x"] + 1
    if oh <= 0 or ow <= 0:
        x.fail(f"size={size} is larger than the padded input {x.h}x{x.w}", "size")
    bflops = size * size * x.c * oh * ow / 1e9
    out: tuple[int, int, int] = (oc, oh, ow)
    extra: tuple[tuple[str, Any], ...] = ()
    if o.get("antialiasing"):
        out, blur = _blur(o, oc, oh, ow, x)
        extra = (("antialias_blur", blur), ("host_output", (oc, oh, ow)))
    return Info(out, x.h * x.w * x.c, out[0] * out[1] * out[2], bflops=bflops, extra=extra)


def _route(o: Options, x: Ctx) -> Info:
    """make_route_layer() + parse_route(): out_c and outputs divided by groups."""
    idx, groups = o["layers"], o["groups"]
    if not 0 <= o["group_id"] < groups:
        x.fail(f"group_id={o['group_id']} must be in 0..{groups - 1}", "group_id")
    first = x.previous[idx[0]]
    c, h, w = first.output
    for i in idx[1:]:
        oc, oh, ow = x.previous[i].output
        if (oh, ow) == (h, w):
            c += oc
        else:
            c = h = w = 0
    total = sum(x.previous[i].outputs for i in idx) // groups
    return Info((c // groups, h, w), total, total, sources=tuple(idx))


def _shortcut(o: Options, x: Ctx) -> Info:
    """make_shortcut_layer(): the previous layer's dims; parse_shortcut asserts every from layer
    has the same w,h (parser.c:979); weights (n_from + 1) per feature or per channel."""
    if x.index == 0:
        x.fail("a shortcut cannot be the first layer")
    froms = o["from"]
    for j in froms:
        _, fh, fw = x.previous[j].output
        if (fh, fw) != (x.h, x.w):
            x.fail(
                f"from={j - x.index} (layer {j}) outputs {fw}x{fh}, this layer's input is "
                f"{x.w}x{x.h}: AlexeyAB's Darknet aborts (assert in parse_shortcut, parser.c:979)",
                "from",
            )
    n = len(froms)
    wtype = o["weights_type"]
    shape = {"none": None, "per_feature": (n + 1,), "per_channel": (n + 1, x.c)}[wtype]
    recs = (Record("shortcut.weight", "weights", shape),) if shape else ()
    bflops = x.w * x.h * x.c * n / 1e9 * (2 if shape else 1)
    out = x.c * x.h * x.w
    return Info(x.chw, out, out, recs, bflops, sources=(x.index - 1, *froms))


def _scale_channels(o: Options, x: Ctx) -> Info:
    """make_scale_channels_layer(): the from layer's dims, scaled by this input (c,1,1) or, with
    scale_wh, (1,h,w)."""
    j = o["from"]
    fc, fh, fw = x.previous[j].output
    if o["scale_wh"]:
        ok = x.c == 1 and (fh, fw) == (x.h, x.w)
        need = f"a 1x{fw}x{fh} input for scale_wh=1 (from layer {j} is {fc}x{fh}x{fw})"
    else:
        ok = (x.h, x.w) == (1, 1) and fc == x.c
        need = f"a {fc}x1x1 input (from layer {j} is {fc}x{fh}x{fw})"
    if not ok:
        x.fail(f"needs {need}, got {x.c}x{x.h}x{x.w} (assert in make_scale_channels_layer)")
    out = fc * fh * fw
    return Info((fc, fh, fw), out, out, sources=(x.index - 1, j))


def _sam(o: Options, x: Ctx) -> Info:
    """make_sam_layer(): elementwise product with the from layer: equal dims asserted."""
    j = o["from"]
    dims = x.previous[j].output
    if dims != x.chw:
        x.fail(f"from layer {j} is {dims}, the input is {x.chw}: they must match (make_sam_layer)")
    out = dims[0] * dims[1] * dims[2]
    return Info(dims, out, out, sources=(x.index - 1, j))


def _implicit(o: Options, x: Ctx) -> Info:
    """make_implicit_layer(): the output is the stored weights, (filters, atoms, 1)."""
    n, atoms = o["filters"], o["atoms"]
    rec = Record("implicit.weight", "weights", (n, atoms, 1))
    return Info((n, atoms, 1), 1, n * atoms, (rec,), sources=())


def _reorg(o: Options, x: Ctx) -> Info:
    """make_reorg_layer() / make_reorg_old_layer(): space-to-depth, reverse: depth-to-space."""
    x.need_image("reorg")
    s = o["stride"]
    if not o["reverse"]:
        pj.reorg_divides(s, x)
    out = (x.c // (s * s), x.h * s, x.w * s) if o["reverse"] else (x.c * s * s, x.h // s, x.w // s)
    return Info(out, x.h * x.w * x.c, out[0] * out[1] * out[2])


def _head(kind: str, per_anchor: int) -> Callable[..., Info]:
    def rule(o: Options, x: Ctx) -> Info:
        """make_yolo_layer() / make_gaussian_yolo_layer(): len(mask) (or num) anchors."""
        n = len(o["mask"]) if o["mask"] is not None else o["num"]
        pj._head_check(kind, per_anchor + o["classes"], n, x)
        return Info((n * (per_anchor + o["classes"]), x.h, x.w), x.inputs, x.inputs)

    return rule


def _sublayer_convs(
    plan: tuple[tuple[str, int, int], ...], o: Options, x: Ctx
) -> tuple[tuple[Record, ...], float, tuple[int, int, int]]:
    """Records and BFLOPs of conv sublayers ``(prefix, c_in, filters)``, all on the input's h,w."""
    size, stride, groups = o["size"], o["stride"], o["groups"]
    recs: tuple[Record, ...] = ()
    bflops, out = 0.0, (0, 0, 0)
    for prefix, c_in, n in plan:
        if c_in % groups or n % groups:
            x.fail(f"groups={groups} must divide {c_in} and {n}", "groups")
        oh, ow = _conv_out(x.h, x.w, size, stride, stride, o["padding"])
        if oh <= 0 or ow <= 0:
            x.fail(f"size={size} is larger than the padded input {x.h}x{x.w}", "size")
        recs += conv_records(n, c_in // groups, size, bool(o["batch_normalize"]), prefix)
        bflops += _conv_bflops((c_in // groups) * n * size * size, oh, ow)
        out = (n, oh, ow)
    return recs, bflops, out


def _conv_lstm(o: Options, x: Ctx) -> Info:
    """make_conv_lstm_layer(): gates as convolutions, saved vf vi vo (peephole), wf [wi wg wo],
    uf ui ug uo; u* read the input, w*/v* the state (wf twice the state with bottleneck)."""
    x.need_image("conv_lstm")
    n, c = o["output"], x.c
    plan: tuple[tuple[str, int, int], ...] = ()
    if o["peephole"]:
        plan += (("vf.", n, n), ("vi.", n, n), ("vo.", n, n))
    plan += (("wf.", 2 * n if o["bottleneck"] else n, n),)
    if not o["bottleneck"]:
        plan += (("wi.", n, n), ("wg.", n, n), ("wo.", n, n))
    plan += (("uf.", c, n), ("ui.", c, n), ("ug.", c, n), ("uo.", c, n))
    recs, bflops, out = _sublayer_convs(plan, o, x)
    outputs = out[0] * out[1] * out[2]
    bflops += (12 if o["peephole"] else 9) * outputs / 1e9
    return Info(out, x.h * x.w * x.c, outputs, recs, bflops)


def _crnn(o: Options, x: Ctx) -> Info:
    """make_crnn_layer(): input (c->hidden), self (hidden->hidden), output (hidden->output)."""
    x.need_image("crnn")
    hid, out_n = o["hidden"], o["output"]
    plan = (("input.", x.c, hid), ("self.", hid, hid), ("output.", hid, out_n))
    recs, bflops, out = _sublayer_convs(plan, o, x)
    # make_crnn_layer asserts the hidden state keeps the input's size (all three convs run on
    # h x w): stride 1 and "same" padding.
    _, oh, ow = _sublayer_convs((("", hid, hid),), o, x)[2]
    if (oh, ow) != (x.h, x.w):
        x.fail(
            f"the hidden state would be {ow}x{oh}, not the input's {x.w}x{x.h}: Darknet aborts "
            "(assert in make_crnn_layer); use stride=1 and pad=1",
            "size",
        )
    return Info(out, x.h * x.w * x.c, out[0] * out[1] * out[2], recs, bflops)


def _rnn(o: Options, x: Ctx) -> Info:
    """make_rnn_layer(): input (inputs->hidden), self (hidden->hidden), output (hidden->out)."""
    out, hid, bn = o["output"], o["hidden"], bool(o["batch_normalize"])
    recs = (
        *connected_records(x.inputs, hid, bn, "input."),
        *connected_records(hid, hid, bn, "self."),
        *connected_records(hid, out, bn, "output."),
    )
    return Info((out, 1, 1), x.inputs, out, recs)


def _gates(names: str, dims: bool) -> Callable[..., Info]:
    def rule(o: Options, x: Ctx) -> Info:
        """make_gru_layer() / make_lstm_layer(): u* read the input, w* the state."""
        out, bn = o["output"], bool(o["batch_normalize"])
        recs: tuple[Record, ...] = ()
        for g in names.split():
            recs += connected_records(out if g[0] == "w" else x.inputs, out, bn, f"{g}.")
        return Info((out, 1, 1) if dims else (0, 0, 0), x.inputs, out, recs)

    return rule


def _batchnorm(o: Options, x: Ctx) -> Info:
    """make_batchnorm_layer(): AlexeyAB stores biases too (save_batchnorm_weights)."""
    x.need_image("batchnorm")
    recs = (Record("bn.bias", "biases", (x.c,)), *pj._bn("", x.c))
    return Info(x.chw, x.inputs, x.inputs, recs)


RULES: Mapping[str, Callable[..., Info]] = {
    **pj.RULES,
    "convolutional": _convolutional,
    "maxpool": lambda o, x: _pool(o, x, "maxpool"),
    "local_avgpool": lambda o, x: _pool(o, x, "local_avgpool"),
    "route": _route,
    "shortcut": _shortcut,
    "scale_channels": _scale_channels,
    "sam": _sam,
    "implicit": _implicit,
    "reorg": _reorg,
    "reorg3d": _reorg,
    "yolo": _head("yolo", 5),
    "Gaussian_yolo": _head("Gaussian_yolo", 9),
    "conv_lstm": _conv_lstm,
    "crnn": _crnn,
    "rnn": _rnn,
    "gru": _gates("uz ur uh wz wr wh", dims=False),
    "lstm": _gates("wf wi wg wo uf ui ug uo", dims=True),
    "batchnorm": _batchnorm,
    "empty": pj._same,
    "contrastive": pj._flat,
    "history": pj._same,
}
