"""Sections -> Network: typed, frozen layers with Darknet's exact shapes.

This mirrors pjreddie's ``parse_network_cfg``: options are looked up with Darknet's
defaults (``option_find_int`` and friends), each layer is sized from the previous
layer's ``out_c/out_h/out_w/outputs``, and route/shortcut indices count back from the
current layer when negative.  Unlike Darknet, every problem is reported with its
position instead of crashing later.  No torch here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn

from darkconv.errors import CfgError, GraphError, Span, UnsupportedError
from darkconv.parse import registry
from darkconv.parse.cfg import CfgDocument, Section, parse_cfg, read_cfg, write_sections
from darkconv.parse.shapes import RULES, Ctx, Record

# fail(message, key=None): raise a GraphError positioned at the option `key` (or the section).
Fail = Callable[..., NoReturn]

__all__ = [
    "Layer",
    "Network",
    "Record",
    "load_network",
    "parse_network",
    "network_from_document",
    "write_network",
    "shipped_cfg_dir",
    "shipped_cfgs",
    "resolve_cfg",
]

Shape = tuple[int, int, int]
_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
HEADER_BYTES = 20  # save_weights(): int32 major, minor, revision + uint64 seen


@dataclass(frozen=True)
class Layer:
    index: int
    type: str
    options: Mapping[str, Any]
    input: Shape
    output: Shape
    inputs: int
    outputs: int
    sources: tuple[int, ...]
    records: tuple[Record, ...]
    bflops: float
    cfg: tuple[tuple[str, str], ...]  # the options as written (first value of each key)
    unused: tuple[str, ...] = ()  # keys present but irrelevant at inference
    span: Span = field(default=Span(), compare=False)

    @property
    def params(self) -> int:
        return sum(r.count for r in self.records)


@dataclass(frozen=True)
class Network:
    net: Mapping[str, Any]
    input: Shape  # (c, h, w) as Darknet's [net] gives them; zeros for an `inputs=` net
    inputs: int
    layers: tuple[Layer, ...]
    net_cfg: tuple[tuple[str, str], ...]
    path: str | None = field(default=None, compare=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def output_index(self) -> int:
        """network_predict() returns the output of the last layer that is not [cost]."""
        for layer in reversed(self.layers):
            if layer.type != "cost":
                return layer.index
        return len(self.layers) - 1

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def bflops(self) -> float:
        return sum(layer.bflops for layer in self.layers)

    def weights_bytes(self, cutoff: int | None = None) -> int:
        """Size of the file save_weights_upto() writes for the first ``cutoff`` layers.

        Darknet always writes a 20-byte 0.2.0 header; files with an older 16-byte header are
        sized by ``darkconv.weights.format`` from the header actually read."""
        layers = self.layers if cutoff is None else self.layers[:cutoff]
        return HEADER_BYTES + 4 * sum(layer.params for layer in layers)

    def summary(self) -> dict[str, Any]:
        """The stable, machine-readable summary printed by ``darkconv build --json``."""
        return {
            "input": list(self.input),
            "layers": [
                {
                    "index": la.index,
                    "type": la.type,
                    "input": list(la.input),
                    "output": list(la.output),
                    "outputs": la.outputs,
                    "params": la.params,
                    "bflops": round(la.bflops, 6),
                }
                for la in self.layers
            ],
            "params": self.params,
            "bflops": round(self.bflops, 6),
            "weights_bytes": self.weights_bytes(),
        }


# ---------------------------------------------------------------- option values


def _number(
    opt: registry.Opt,
    raw: str,
    span: Span,
    warnings: list[str],
    pattern: re.Pattern[str],
    what: str,
) -> int | float:
    """C's atoi/atof: read a leading number, warn about what follows it."""
    m = pattern.match(raw)
    if not m:
        raise CfgError(f"{opt.name}={raw!r}: expected {what}", span)
    if m.end() != len(raw):
        warnings.append(
            f"{span}: {opt.name}={raw!r}: trailing {raw[m.end() :]!r} ignored "
            f"(Darknet reads {m.group()!r})"
        )
    return int(m.group()) if pattern is _INT else float(m.group())


def _value(opt: registry.Opt, raw: str, span: Span, warnings: list[str]) -> Any:
    if opt.type == "int":
        v = _number(opt, raw, span, warnings, _INT, "an integer")
        if opt.positive and v <= 0:
            raise GraphError(f"{opt.name}={v}: must be positive", span)
        return v
    if opt.type == "float":
        return _number(opt, raw, span, warnings, _FLOAT, "a number")
    if opt.type in ("ints", "floats"):
        pat, what = (_INT, "integers") if opt.type == "ints" else (_FLOAT, "numbers")
        parts = raw.split(",")
        if parts and parts[-1] == "":  # "1,2," : a trailing comma is harmless
            parts = parts[:-1]
        return tuple(_number(opt, p, span, warnings, pat, f"comma-separated {what}") for p in parts)
    if opt.type == "act" and raw not in registry.ACTIVATIONS:
        # get_activation(): "Couldn't find activation function ..., going with ReLU".
        warnings.append(f"{span}: unknown activation {raw!r}: Darknet uses relu")
        return "relu"
    return raw


def _resolve(
    kind: registry.Kind, section: Section, warnings: list[str]
) -> tuple[dict[str, Any], tuple[str, ...]]:
    if kind.unsupported_reason:
        raise UnsupportedError(
            f"[{section.name}] is not supported: {kind.unsupported_reason}", section.span
        )
    values: dict[str, Any] = {
        o.name: o.default for o in kind.options if o.cls != registry.UNSUPPORTED
    }
    unused: list[str] = []
    for option in section.options:
        spec = kind.option(option.key)
        if spec is None:
            warnings.append(
                f"{option.span.path}:{option.span.line}: unused field {option.key!r} in [{section.name}]"
            )
            unused.append(option.key)
        elif spec.cls == registry.UNSUPPORTED:
            raise UnsupportedError(
                f"option {option.key!r} of [{kind.name}] is not supported by darkconv "
                "(it changes what the layer computes or how weights are stored)",
                option.span,
            )
        elif spec.cls == registry.TRAIN:
            unused.append(option.key)
        else:
            values[option.key] = _value(spec, option.value, option.span, warnings)
    return values, tuple(unused)


# ---------------------------------------------------------------- the network


def _net_options(
    doc: CfgDocument, warnings: list[str]
) -> tuple[Section, dict[str, Any], tuple[int, int, int], int]:
    if not doc.sections:
        raise CfgError("no sections: a cfg starts with [net]", Span(doc.path, 1))
    first = doc.sections[0]
    if registry.ALIASES.get(first.name) != "net":
        raise CfgError(f"first section must be [net], got [{first.name}]", first.span)
    net, _ = _resolve(registry.NET, first, warnings)
    c, h, w = net["channels"], net["height"], net["width"]
    inputs = net["inputs"] if net["inputs"] is not None else h * w * c
    # parse_net_options(): "No input parameters supplied".
    if inputs <= 0 or (net["inputs"] is None and not (h > 0 and w > 0 and c > 0)):
        raise GraphError(
            "no input size: [net] needs width=, height= and channels= (or inputs=)", first.span
        )
    return first, net, (c, h, w), inputs


def _fixup(kind: str, o: dict[str, Any], index: int, fail: Fail) -> None:
    """Defaults that depend on other options, and indices that count back."""
    if kind in ("convolutional", "deconvolutional") and o["pad"]:
        o["padding"] = o["size"] // 2  # pad=1 overrides padding=
    elif kind == "maxpool":
        if o["size"] is None:
            o["size"] = o["stride"]
        if o["padding"] is None:
            o["padding"] = o["size"] - 1
    elif kind == "route":
        if not o["layers"]:
            fail("route needs layers=", "layers")
        o["layers"] = tuple(_back(i, index, fail, "layers") for i in o["layers"])
    elif kind == "shortcut":
        if o["from"] is None:
            fail("shortcut needs from=", None)
        o["from"] = _back(o["from"], index, fail, "from")
    elif kind in ("yolo", "region"):
        n = o["num"]
        if kind == "yolo" and o["mask"] is not None:
            bad = [m for m in o["mask"] if not 0 <= m < n]
            if bad:
                fail(f"mask index {bad[0]} is out of range for num={n} anchors", "mask")
        anchors = o["anchors"] or ()
        if len(anchors) > 2 * n:
            fail(f"{len(anchors)} anchor values but num={n} holds {2 * n}", "anchors")
        # make_yolo_layer()/make_region_layer() fill biases with .5 before reading anchors.
        o["anchors"] = tuple(anchors) + (0.5,) * (2 * n - len(anchors))


def _back(i: int, index: int, fail: Fail, key: str) -> int:
    j = index + i if i < 0 else i
    if not 0 <= j < index:
        where = "a later layer" if j >= index else "before the first layer"
        fail(f"{key}={i} points to layer {j}, {where} (this is layer {index})", key)
    return j


def network_from_document(doc: CfgDocument) -> Network:
    warnings = list(doc.warnings)
    first, net, chw, inputs = _net_options(doc, warnings)
    c, h, w = chw
    layers: list[Layer] = []
    for section in doc.sections[1:]:
        index = len(layers)
        kind = registry.kind_for(section.name)
        if kind is None or kind.name == "net":
            what = "a second [net]" if kind else f"unknown section [{section.name}]"
            raise CfgError(f"{what} (layer {index})", section.span)
        opts, unused = _resolve(kind, section, warnings)

        def fail(
            msg: str,
            key: str | None = None,
            _s: Section = section,
            _i: int = index,
            _k: str = kind.name,
        ) -> NoReturn:
            opt = _s.get(key) if key else None
            raise GraphError(f"layer {_i} [{_k}]: {msg}", opt.span if opt else _s.span)

        _fixup(kind.name, opts, index, fail)
        ctx = Ctx(index, c, h, w, inputs, tuple(layers), fail)
        info = RULES[kind.name](opts, ctx)
        sources = info.sources if info.sources is not None else (index - 1,)
        layers.append(
            Layer(
                index=index,
                type=kind.name,
                options=MappingProxyType(opts),
                input=(c, h, w),
                output=info.output,
                inputs=info.inputs,
                outputs=info.outputs,
                sources=sources,
                records=info.records,
                bflops=info.bflops,
                cfg=tuple((o.key, o.value) for o in section.options),
                unused=unused,
                span=section.span,
            )
        )
        (c, h, w), inputs = info.output, info.outputs
    if not layers:
        raise GraphError("the cfg has no layers after [net]", first.span)
    return Network(
        net=MappingProxyType(net),
        input=chw,
        inputs=net["inputs"] if net["inputs"] is not None else chw[0] * chw[1] * chw[2],
        layers=tuple(layers),
        net_cfg=tuple((o.key, o.value) for o in first.options),
        path=doc.path,
        warnings=tuple(warnings),
    )


def parse_network(text: str | bytes, path: str = "<string>") -> Network:
    return network_from_document(parse_cfg(text, path))


# ---------------------------------------------------------------- shipped cfgs


def shipped_cfg_dir() -> Path:
    """cfg/ inside the installed package, else the source checkout's top-level cfg/."""
    here = Path(__file__).resolve().parent.parent  # darkconv/
    for cand in (here / "cfg", here.parent / "cfg"):
        if cand.is_dir():
            return cand
    return here / "cfg"


def shipped_cfgs() -> list[str]:
    return sorted(p.stem for p in shipped_cfg_dir().glob("*.cfg"))


def resolve_cfg(name: str | os.PathLike[str]) -> Path:
    """A path as given if it exists; else a bare name from the shipped cfg/ folder."""
    p = Path(name)
    if p.exists():
        return p
    s = str(name)
    if "/" not in s and "\\" not in s:
        stem = s[:-4] if s.endswith(".cfg") else s
        cand = shipped_cfg_dir() / f"{stem}.cfg"
        if cand.exists():
            return cand
        raise CfgError(
            f"no such cfg file, and {stem!r} is not a shipped cfg "
            f"(shipped: {', '.join(shipped_cfgs())})",
            Span(s),
        )
    raise CfgError("no such cfg file", Span(s))


def load_network(name: str | os.PathLike[str]) -> Network:
    """Parse a cfg file, or a shipped cfg by bare name (``darknet53``)."""
    return network_from_document(read_cfg(resolve_cfg(name)))


def write_network(network: Network) -> str:
    """Cfg text for ``network``: parse(write(parse(x))) == parse(x)."""
    sections = [("net", list(network.net_cfg))]
    sections += [(layer.type, list(layer.cfg)) for layer in network.layers]
    return write_sections(sections)
