"""The Darknet-style layer table printed by ``darkconv build`` (no torch)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from darkconv.parse.graph import Layer, Network

__all__ = ["format_table"]

_SHORT = {
    "convolutional": "conv",
    "deconvolutional": "deconv",
    "connected": "conn",
    "maxpool": "max",
    "avgpool": "avg",
    "shortcut": "res",
    "normalization": "lrn",
    "batchnorm": "bn",
}


def _dims(shape: tuple[int, int, int], flat: int) -> str:
    c, h, w = shape
    return f"{w:4d} x{h:4d} x{c:5d}" if c and h and w else f"{flat:>18d}"


def _stride(o: Mapping[str, Any]) -> str:
    # AlexeyAB: stride_x/stride_y (blur strides when antialiasing), dilation.
    sx = o.get("blur_stride_x", o.get("stride_x", o["stride"]))
    sy = o.get("blur_stride_y", o.get("stride_y", o["stride"]))
    text = f"/{sx:2d}" if sx == sy else f"/{sx}x{sy}"
    return text + (f"({o['dilation']})" if o.get("dilation", 1) != 1 else "")


def _what(layer: Layer) -> tuple[str, str]:
    o = layer.options
    t = layer.type
    if t in ("convolutional", "deconvolutional", "local"):
        groups = f" g{o['groups']}" if o.get("groups", 1) != 1 else ""
        aa = f" aa{o['antialiasing']}" if o.get("antialiasing") else ""
        share = f" =L{o['share_index']}" if o.get("share_index") is not None else ""
        return (
            f"{o['filters']:5d}",
            f"{o['size']:2d} x{o['size']:2d} {_stride(o)}{groups}{aa}{share}",
        )
    if t in ("maxpool", "local_avgpool"):
        if o.get("maxpool_depth"):
            return f"{o['out_channels']:5d}", "depth"
        return "", f"{o['size']:2d} x{o['size']:2d} {_stride(o)}"
    if t in ("connected", "rnn", "gru", "lstm", "conv_lstm"):
        return f"{o['output']:5d}", ""
    if t == "route":
        part = f" {o['group_id']}/{o['groups']}" if o.get("groups", 1) != 1 else ""
        return "", " ".join(str(i) for i in o["layers"]) + part
    if t in ("shortcut", "scale_channels", "sam"):
        src = o["from"] if isinstance(o["from"], int) else ",".join(map(str, o["from"]))
        wt = f" {o['weights_type']}" if o.get("weights_type", "none") != "none" else ""
        return "", f"from {src}{wt}"
    if t in ("upsample", "reorg", "reorg3d"):
        return "", f"x{o['stride']}" if t == "upsample" else f"/{o['stride']}"
    if t == "implicit":
        return f"{o['filters']:5d}", f"atoms {o['atoms']}"
    return "", ""


def format_table(network: Network) -> str:
    lines = [
        f"{'layer':>5} {'type':<8} {'filters':>7}  {'size/info':<14} {'input':>18}    {'output':>18}  BFLOPs"
    ]
    for layer in network.layers:
        filters, info = _what(layer)
        t = _SHORT.get(layer.type, layer.type)
        bf = f"{layer.bflops:7.3f}" if layer.bflops else ""
        c, h, w = layer.input
        lines.append(
            f"{layer.index:5d} {t:<8} {filters:>7}  {info:<14} "
            f"{_dims(layer.input, c * h * w or layer.inputs)} -> {_dims(*layer.reported)}  {bf}"
        )
    c, h, w = network.input
    lines.append(
        f"input {w}x{h}x{c} ({network.inputs} values) | layers {len(network.layers)} | "
        f"output layer {network.output_index} | params {network.params:,} | "
        f"BFLOPs {network.bflops:.3f} | .weights {network.weights_bytes():,} bytes"
    )
    return "\n".join(lines)
