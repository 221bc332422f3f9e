"""Section options -> typed values with Darknet's defaults (``option_find_int`` and friends).

:func:`resolve` reads one section against its dialect's :class:`~darkconv.parse.kinds.Kind`;
:func:`fixup` then applies the defaults that depend on other options and turns relative layer
indices into absolute ones.  Fixups are one table keyed by kind name; each works from the options
the dialect's kind has (``stride_x`` exists only in AlexeyAB's), so there is no dialect test here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

from darkconv.errors import CfgError, GraphError, Span, UnsupportedError
from darkconv.parse.cfg import Section
from darkconv.parse.kinds import TRAIN, UNBUILT, UNSUPPORTED, Dialect, Kind, Opt

__all__ = ["Resolved", "resolve", "fixup", "back"]

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


@dataclass(frozen=True)
class Resolved:
    values: dict[str, Any]
    unused: tuple[str, ...]
    unbuilt: tuple[tuple[str, Span], ...]  # (what, where): no torch forward for these


def _number(
    opt: Opt, raw: str, span: Span, warnings: list[str], pattern: re.Pattern[str], what: str
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


def _value(opt: Opt, raw: str, span: Span, warnings: list[str], dialect: Dialect) -> Any:
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
    if opt.type == "act" and raw not in dialect.activations:
        # get_activation(): "Couldn't find activation function ..., going with ReLU".
        warnings.append(f"{span}: unknown activation {raw!r}: Darknet uses relu")
        return "relu"
    return raw


def _other_dialect_hint(dialect: Dialect, section: str, key: str | None) -> str | None:
    """'--dialect alexeyab' when the other Darknet knows this section (or option)."""
    from darkconv.parse.registry import DIALECTS

    for other in DIALECTS.values():
        if other is dialect:
            continue
        kind = other.kind_for(section)
        if kind is None:
            continue
        spec = kind.option(key) if key else None
        if key is None or (spec is not None and spec.cls != UNSUPPORTED):
            what = f"[{section}] {key}" if key else f"[{section}]"
            return (
                f"{what} belongs to {other.name}'s Darknet ({other.source.split()[0]}): "
                f"pass --dialect {other.name} (dialect={other.name!r} in Python)"
            )
    return None


def resolve(kind: Kind, section: Section, warnings: list[str], dialect: Dialect) -> Resolved:
    if kind.unsupported_reason:
        raise UnsupportedError(
            f"[{section.name}] is not supported: {kind.unsupported_reason}", section.span
        )
    values: dict[str, Any] = {o.name: o.default for o in kind.options if o.cls != UNSUPPORTED}
    unused: list[str] = []
    unbuilt: list[tuple[str, Span]] = []
    if kind.unbuilt_reason:
        unbuilt.append((f"[{section.name}] ({kind.unbuilt_reason})", section.span))
    for option in section.options:
        spec = kind.option(option.key)
        if spec is None:
            warnings.append(
                f"{option.span.path}:{option.span.line}: unused field {option.key!r} in [{section.name}]"
            )
            unused.append(option.key)
        elif spec.cls == UNSUPPORTED:
            raise UnsupportedError(
                f"option {option.key!r} of [{kind.name}] is not supported by darkconv "
                "(it changes what the layer computes or how weights are stored)",
                option.span,
                hint=_other_dialect_hint(dialect, section.name, option.key),
            )
        elif spec.cls == TRAIN:
            unused.append(option.key)
        else:
            value = _value(spec, option.value, option.span, warnings, dialect)
            values[option.key] = value
            if spec.cls == UNBUILT and value != spec.default:
                unbuilt.append((f"option {option.key!r} of [{kind.name}]", option.span))
    return Resolved(values, tuple(unused), tuple(unbuilt))


# ------------------------------------------------------------------------------ fixups


class Fail(Protocol):
    """Raise a positioned GraphError (``key``: the option to point at); ``warn`` only records."""

    def __call__(self, msg: str, key: str | None = None) -> NoReturn: ...

    def warn(self, msg: str, key: str | None = None) -> None: ...


Fixup = Callable[[dict[str, Any], int, Fail, Dialect], None]


def back(i: int, index: int, fail: Fail, key: str) -> int:
    """A layer index as Darknet resolves it: negative counts back from this layer."""
    j = index + i if i < 0 else i
    if not 0 <= j < index:
        where = "a later layer" if j >= index else "before the first layer"
        fail(f"{key}={i} points to layer {j}, {where} (this is layer {index})", key)
    return j


def _pad(o: dict[str, Any], index: int, fail: Fail, facts: Dialect) -> None:
    if o.get("pad") and "padding" in o:
        o["padding"] = o["size"] // 2  # pad=1 overrides padding=


def _antialias_host(o: dict[str, Any]) -> None:
    """make_convolutional_layer / make_maxpool_layer with antialiasing: the host layer runs at
    stride 1 (the strides Darknet reports), the blur after it at the cfg strides."""
    o["blur_stride_x"], o["blur_stride_y"] = o["stride_x"], o["stride_y"]
    if o["antialiasing"]:
        o["stride"] = o["stride_x"] = o["stride_y"] = 1


def _convolutional(o: dict[str, Any], index: int, fail: Fail, facts: Dialect) -> None:
    _pad(o, index, fail, facts)
    if "stride_x" not in o:
        return
    # parse_convolutional(): stride_x/stride_y < 1 take stride; l.stride is stride_x.
    for axis in ("stride_x", "stride_y"):
        if o[axis] < 1:
            o[axis] = o["stride"]
    o["stride"] = o["stride_x"]
    if o["size"] == 1:
        o["dilation"] = 1
    if o["cbn"]:
        o["batch_normalize"] = 2
    if o["xnor"]:
        o["groups"] = 1  # make_convolutional_layer: "disable groups for XNOR-net"
    if o["antialiasing"] not in (0, 1, 2):
        fail(f"antialiasing={o['antialiasing']}: expected 0, 1 or 2", "antialiasing")
    _antialias_host(o)
    if o["share_index"] is not None:
        # parse_convolutional: >= 0 is absolute, negative counts back.
        o["share_index"] = back(o["share_index"], index, fail, "share_index")


def _pool(o: dict[str, Any], index: int, fail: Fail, facts: Dialect) -> None:
    """parse_maxpool() / parse_local_avgpool(): size defaults to stride, padding to size-1."""
    if o["size"] is None:
        o["size"] = o["stride"]
    if o["padding"] is None:
        o["padding"] = o["size"] - 1
    if "stride_x" in o:
        for axis in ("stride_x", "stride_y"):
            if o[axis] is None:
                o[axis] = o["stride"]
        o["stride"] = o["stride_x"]
        o.setdefault("antialiasing", 0)
        _antialias_host(o)


def _route(o: dict[str, Any], index: int, fail: Fail, facts: Dialect) -> None:
    if not o["layers"]:
        fail("route needs layers=", "layers")
    o["layers"] = tuple(back(i, index, fail, "layers") for i in o["layers"])


_WEIGHTS_TYPE = {"none": "none", "per_feature": "per_feature", "per_layer": "per_feature",
                 "per_channel": "per_channel"}  # fmt: skip
_WEIGHTS_NORM = {"relu": "relu", "avg_relu": "relu", "softmax": "softmax"}


def _shortcut(o: dict[str, Any], index: int, fail: Fail, facts: Dialect) -> None:
    if o["from"] is None or o["from"] == ():
        fail("shortcut needs from=", None)
    if isinstance(o["from"], tuple):  # AlexeyAB: several layers, weights
        o["from"] = tuple(back(i, index, fail, "from") for i in o["from"])
        wtype = _WEIGHTS_TYPE.get(o["weights_type"])
        if wtype is None:
            fail(f"weights_type={o['weights_type']}: use none, per_feature or per_channel",
                 "weights_type")  # fmt: skip
        o["weights_type"] = wtype
        norm = _WEIGHTS_NORM.get(o["weights_normalization"], "none")
        if wtype != "none" and norm == "none":
            # parse_shortcut: an error unless relu, avg_relu or softmax.
            fail(
                f"weights_normalization={o['weights_normalization']}: with weights_type "
                "Darknet requires relu, avg_relu or softmax",
                "weights_normalization",
            )
        o["weights_normalization"] = norm if wtype != "none" else "none"
    else:
        o["from"] = back(o["from"], index, fail, "from")


def _from(o: dict[str, Any], index: int, fail: Fail, facts: Dialect) -> None:
    if o["from"] is None:
        fail("needs from=", None)
    o["from"] = back(o["from"], index, fail, "from")


_NMS = ("default", "greedynms", "diounms", "cornersnms")


def _head(o: dict[str, Any], index: int, fail: Fail, facts: Dialect, kind: str) -> None:
    n = o["num"]
    if o.get("mask") is not None:
        bad = [m for m in o["mask"] if not 0 <= m < n]
        if bad and kind in facts.extra_anchors_ignored:
            # make_yolo_layer keeps it: boxes of that anchor read past the anchor array.
            fail.warn(
                f"mask index {bad[0]} is out of range for num={n} anchors: Darknet reads its "
                "anchor past the array (its boxes are undefined)",
                "mask",
            )
        elif bad:
            fail(f"mask index {bad[0]} is out of range for num={n} anchors", "mask")
    anchors = o["anchors"] or ()
    if len(anchors) > 2 * n and kind in facts.extra_anchors_ignored:
        anchors = anchors[: 2 * n]
    elif len(anchors) > 2 * n:
        fail(f"{len(anchors)} anchor values but num={n} holds {2 * n}", "anchors")
    # make_yolo_layer()/make_region_layer() fill biases with .5 before reading anchors.
    o["anchors"] = tuple(anchors) + (0.5,) * (2 * n - len(anchors))
    if "nms_kind" in o and o["nms_kind"] not in _NMS[: 4 if kind == "Gaussian_yolo" else 3]:
        o["nms_kind"] = "default"  # parse_yolo: anything else is DEFAULT_NMS


_FIXUPS: dict[str, Fixup] = {
    "convolutional": _convolutional,
    "deconvolutional": _pad,
    "conv_lstm": _pad,
    "crnn": _pad,
    "maxpool": _pool,
    "local_avgpool": _pool,
    "route": _route,
    "shortcut": _shortcut,
    "scale_channels": _from,
    "sam": _from,
    "yolo": lambda o, i, f, d: _head(o, i, f, d, "yolo"),
    "Gaussian_yolo": lambda o, i, f, d: _head(o, i, f, d, "Gaussian_yolo"),
    "region": lambda o, i, f, d: _head(o, i, f, d, "region"),
}


def fixup(kind: str, o: dict[str, Any], index: int, fail: Fail, facts: Dialect) -> None:
    """Defaults that depend on other options, and indices that count back."""
    rule = _FIXUPS.get(kind)
    if rule is not None:
        rule(o, index, fail, facts)
