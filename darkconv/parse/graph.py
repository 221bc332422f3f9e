"""Sections -> Network: typed, frozen layers with Darknet's exact shapes.

This mirrors pjreddie's ``parse_network_cfg``: options are looked up with Darknet's
defaults (``option_find_int`` and friends), each layer is sized from the previous
layer's ``out_c/out_h/out_w/outputs``, and route/shortcut indices count back from the
current layer when negative.  Unlike Darknet, every problem is reported with its
position instead of crashing later.  No torch here.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn

from darkconv.errors import CfgError, GraphError, Span, UnsupportedError
from darkconv.parse import registry, shapes, shapes_alexeyab
from darkconv.parse.cfg import CfgDocument, Section, parse_cfg, read_cfg, write_sections
from darkconv.parse.dialect import choose_dialect
from darkconv.parse.kinds import Dialect, Kind
from darkconv.parse.resolve import fixup, resolve
from darkconv.parse.shapes import Ctx, Record

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
    impl: str = ""  # the formula the torch side runs (Kind.impl); "" means the type
    # Options or sections sized exactly but without a torch forward: (what, where).
    unbuilt: tuple[tuple[str, Span], ...] = field(default=(), compare=False)

    @property
    def params(self) -> int:
        return sum(r.count for r in self.records)

    @property
    def reported(self) -> tuple[Shape, int]:
        """``(out_c, out_h, out_w), outputs`` as Darknet reports them.  They equal ``output`` /
        ``outputs`` except with antialiasing, where Darknet reports the stride-1 host layer while
        the next layer reads the blurred result (``output``; parse_network_cfg_custom)."""
        host = self.options.get("host_output")
        if host is None:
            return self.output, self.outputs
        c, h, w = host
        return (c, h, w), c * h * w


@dataclass(frozen=True)
class Network:
    net: Mapping[str, Any]
    input: Shape  # (c, h, w) as Darknet's [net] gives them; zeros for an `inputs=` net
    inputs: int
    layers: tuple[Layer, ...]
    net_cfg: tuple[tuple[str, str], ...]
    path: str | None = field(default=None, compare=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)
    dialect: str = registry.DEFAULT_DIALECT
    dialect_reason: str = field(default="", compare=False)

    @property
    def facts(self) -> Dialect:
        """The dialect's facts (batch-norm formula, header, activations...): registry data."""
        return registry.DIALECTS[self.dialect]

    def cpu_zero_layers(self) -> tuple[tuple[int, str, str], ...]:
        """``(index, type, activation)`` of every layer whose activation this Darknet's CPU
        forward turns into 0 (``activate()`` has no case for it, activations.c)."""
        facts = self.facts
        return tuple(
            (la.index, la.type, act)
            for la in self.layers
            if isinstance(act := la.options.get("activation"), str)
            and facts.cpu_outputs_zero(la.type, act)
        )

    def check_buildable(self) -> None:
        """Raise a positioned UnsupportedError for the first option darkconv cannot run."""
        for layer in self.layers:
            for what, span in layer.unbuilt:
                raise UnsupportedError(
                    f"layer {layer.index}: {what} has no darkconv forward pass "
                    "(shapes, parameters and weights conversion work; building a model does not)",
                    span,
                )

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
        if self.facts.bflops_total == "float32":
            # parse_network_cfg_custom: float bflops += l.bflops (both float).
            import numpy as np

            total = np.float32(0)
            for layer in self.layers:
                total = np.float32(total + np.float32(layer.bflops))
            return float(total)
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
                    "output": list(la.reported[0]),
                    "outputs": la.reported[1],
                    "params": la.params,
                    "bflops": round(la.bflops, 6),
                }
                for la in self.layers
            ],
            "params": self.params,
            "bflops": round(self.bflops, 6),
            "weights_bytes": self.weights_bytes(),
        }


# ---------------------------------------------------------------- the network


class _Failer:
    """Positioned errors (and warnings) for one section: ``fail(msg, key)`` / ``fail.warn``."""

    def __init__(self, section: Section, index: int, kind: str, warnings: list[str]) -> None:
        self.section, self.index, self.kind, self.warnings = section, index, kind, warnings

    def span(self, key: str | None) -> Span:
        opt = self.section.get(key) if key else None
        return opt.span if opt is not None else self.section.span

    def __call__(self, msg: str, key: str | None = None) -> NoReturn:
        raise GraphError(f"layer {self.index} [{self.kind}]: {msg}", self.span(key))

    def warn(self, msg: str, key: str | None = None) -> None:
        self.warnings.append(f"{self.span(key)}: layer {self.index} [{self.kind}]: {msg}")


_RULES = {"pjreddie": shapes.RULES, "alexeyab": shapes_alexeyab.RULES}


def _net_options(
    doc: CfgDocument, warnings: list[str], facts: Dialect
) -> tuple[Section, dict[str, Any], tuple[int, int, int], int]:
    if not doc.sections:
        raise CfgError("no sections: a cfg starts with [net]", Span(doc.path, 1))
    first = doc.sections[0]
    kind = facts.kind_for(first.name)
    if kind is None or kind.name != "net":
        raise CfgError(f"first section must be [net], got [{first.name}]", first.span)
    net = resolve(kind, first, warnings, facts).values
    c, h, w = net["channels"], net["height"], net["width"]
    inputs = net["inputs"] if net["inputs"] is not None else h * w * c
    # parse_net_options(): "No input parameters supplied".
    if inputs <= 0 or (net["inputs"] is None and not (h > 0 and w > 0 and c > 0)):
        raise GraphError(
            "no input size: [net] needs width=, height= and channels= (or inputs=)", first.span
        )
    return first, net, (c, h, w), inputs


def _kind(facts: Dialect, section: Section, index: int) -> Kind:
    kind = facts.kind_for(section.name)
    if kind is None or kind.name == "net":
        what = "a second [net]" if kind else f"unknown section [{section.name}]"
        hint = None if kind else resolve_hint(facts, section.name)
        raise CfgError(f"{what} (layer {index}, {facts.name} dialect)", section.span, hint=hint)
    return kind


def resolve_hint(facts: Dialect, name: str) -> str | None:
    from darkconv.parse.resolve import _other_dialect_hint

    return _other_dialect_hint(facts, name, None)


def network_from_document(
    doc: CfgDocument, dialect: str | None = None, *, default_dialect: str | None = None
) -> Network:
    """Build the :class:`Network` for ``doc``; ``dialect`` None auto-detects (:func:`choose_dialect`)."""
    facts, reason = choose_dialect(doc, dialect, default_dialect)
    rules = _RULES[facts.name]
    warnings = list(doc.warnings)
    first, net, chw, inputs = _net_options(doc, warnings, facts)
    c, h, w = chw
    layers: list[Layer] = []
    for section in doc.sections[1:]:
        index = len(layers)
        kind = _kind(facts, section, index)
        res = resolve(kind, section, warnings, facts)
        opts = res.values

        fail = _Failer(section, index, kind.name, warnings)
        fixup(kind.name, opts, index, fail, facts)
        ctx = Ctx(index, c, h, w, inputs, tuple(layers), fail)
        info = rules[kind.name](opts, ctx)
        opts.update(info.extra)
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
                unused=res.unused,
                span=section.span,
                impl=kind.impl,
                unbuilt=res.unbuilt + tuple((w, fail.span(k)) for w, k in info.unbuilt),
            )
        )
        (c, h, w), inputs = info.output, info.outputs
    if not layers:
        raise GraphError("the cfg has no layers after [net]", first.span)
    if facts.needs_2d_layer and not any(la.input[1] > 1 and la.input[2] > 1 for la in layers):
        raise GraphError(
            f"{facts.darknet} cannot load a network without a 2-D layer (w > 1 and h > 1): "
            "parse_network_cfg_custom divides avg_outputs by their count (parser.c:1751, SIGFPE)",
            first.span,
        )
    return Network(
        net=MappingProxyType(net),
        input=chw,
        inputs=net["inputs"] if net["inputs"] is not None else chw[0] * chw[1] * chw[2],
        layers=tuple(layers),
        net_cfg=tuple((o.key, o.value) for o in first.options),
        path=doc.path,
        warnings=tuple(warnings),
        dialect=facts.name,
        dialect_reason=reason,
    )


def parse_network(text: str | bytes, path: str = "<string>", dialect: str | None = None) -> Network:
    """Parse cfg text; ``dialect`` (``"pjreddie"``/``"alexeyab"``) or None to auto-detect."""
    return network_from_document(parse_cfg(text, path), dialect)


# ---------------------------------------------------------------- shipped cfgs


def shipped_cfg_dir() -> Path:
    """cfg/ inside the installed package, else the source checkout's top-level cfg/."""
    here = Path(__file__).resolve().parent.parent  # darkconv/
    for cand in (here / "cfg", here.parent / "cfg"):
        if cand.is_dir():
            return cand
    return here / "cfg"


# Shipped cfg sets: sub-folder of cfg/ -> the dialect its files are read with when they use
# nothing dialect-specific.  pjreddie's set owns the bare names; AlexeyAB's files are
# ``alexeyab/NAME``, and also bare ``NAME`` when pjreddie has no file of that name.
SHIPPED_SETS: Mapping[str, str] = MappingProxyType({"": "pjreddie", "alexeyab": "alexeyab"})


def _set_files(folder: str) -> dict[str, Path]:
    root = shipped_cfg_dir() / folder if folder else shipped_cfg_dir()
    return {p.stem: p for p in sorted(root.glob("*.cfg"))}


def _shipped() -> dict[str, Path]:
    names: dict[str, Path] = {}
    for folder in SHIPPED_SETS:
        for stem, path in _set_files(folder).items():
            names.setdefault(stem, path)  # the first set (pjreddie's) keeps the bare name
            if folder:
                names[f"{folder}/{stem}"] = path
    return names


def shipped_cfgs(folder: str | None = None) -> list[str]:
    """Every name a shipped cfg resolves from: ``darknet53``, ``yolov4``, ``alexeyab/yolov3``.

    ``folder``: one set only: ``""`` pjreddie's 45 bare names, ``"alexeyab"`` AlexeyAB's 87 as
    ``alexeyab/NAME``."""
    if folder is None:
        return sorted(_shipped())
    if folder not in SHIPPED_SETS:
        raise ValueError(f"no shipped cfg set {folder!r} (sets: {list(SHIPPED_SETS)})")
    prefix = f"{folder}/" if folder else ""
    return sorted(prefix + stem for stem in _set_files(folder))


def _shipped_dialect(path: Path, data: bytes) -> str | None:
    """The dialect of the shipped set ``path`` belongs to, or whose file it is a copy of (bytes
    equal to exactly one set's file: AlexeyAB's ``cfg/`` copied elsewhere); None otherwise."""
    try:
        parent = path.resolve().parent
    except OSError:
        return None
    for folder, dialect in SHIPPED_SETS.items():
        root = shipped_cfg_dir() / folder if folder else shipped_cfg_dir()
        if parent == root.resolve():
            return dialect
    owners = _shipped_digests().get(hashlib.sha256(data).hexdigest(), frozenset())
    return next(iter(owners)) if len(owners) == 1 else None


@lru_cache(maxsize=1)
def _shipped_digests() -> dict[str, frozenset[str]]:
    """sha256 of every shipped cfg -> the dialects of the sets holding those bytes."""
    found: dict[str, set[str]] = {}
    for folder, dialect in SHIPPED_SETS.items():
        for path in _set_files(folder).values():
            found.setdefault(hashlib.sha256(path.read_bytes()).hexdigest(), set()).add(dialect)
    return {k: frozenset(v) for k, v in found.items()}


def resolve_cfg(name: str | os.PathLike[str]) -> Path:
    """A path as given if it exists; else a shipped name (``darknet53``, ``alexeyab/yolov3``)."""
    p = Path(name)
    if p.exists():
        return p
    s = str(name)
    stem = s[:-4] if s.endswith(".cfg") else s
    shipped = _shipped()
    if stem in shipped:
        return shipped[stem]
    if "\\" not in s and s.count("/") <= 1:
        raise CfgError(
            f"no such cfg file, and {stem!r} is not a shipped cfg (shipped: {', '.join(shipped)})",
            Span(s),
            hint=_close_names(stem, shipped),
        )
    raise CfgError("no such cfg file", Span(s))


def _close_names(stem: str, shipped: Mapping[str, Path]) -> str | None:
    import difflib

    close = difflib.get_close_matches(stem, list(shipped), n=4, cutoff=0.6)
    return f"did you mean {', '.join(close)}?" if close else None


def load_network(name: str | os.PathLike[str], dialect: str | None = None) -> Network:
    """Parse a cfg file, or a shipped cfg by name (``darknet53``, ``yolov4``, ``alexeyab/yolov3``).

    ``dialect``: ``"pjreddie"``, ``"alexeyab"`` or None to auto-detect (a shipped AlexeyAB cfg,
    or a copy of one, that uses nothing AlexeyAB-only is read as AlexeyAB's, its origin)."""
    path = resolve_cfg(name)
    doc = read_cfg(path)
    default = None
    if dialect is None:
        default = _shipped_dialect(path, path.read_bytes())
    return network_from_document(doc, dialect, default_dialect=default)


def write_network(network: Network) -> str:
    """Cfg text for ``network``: parse(write(parse(x))) == parse(x)."""
    sections = [("net", list(network.net_cfg))]
    sections += [(layer.type, list(layer.cfg)) for layer in network.layers]
    return write_sections(sections)
