"""The ``[net]`` training options as Darknet parses them (parse_net_options in parser.c) and the
learning rate it derives from ``seen`` (get_current_rate, get_current_batch in network.c).

The options are training-only, so the graph keeps them as written; they are read here with
Darknet's defaults and C's ``atoi``/``atof``.  No torch in this module.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from darkconv.errors import CfgError, UnsupportedError
from darkconv.parse.graph import Network

__all__ = ["TrainHyper", "get_current_rate", "GlibcRand", "POLICIES", "truth_size"]

_INT = re.compile(r"\s*[+-]?\d+")
_FLOAT = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")

# get_policy(): any other name is "constant" (Darknet prints "Couldn't find policy").
POLICIES = ("constant", "step", "steps", "exp", "poly", "sigmoid", "random")

# (type, default) of each [net] option parse_net_options reads for training.
NET_TRAIN_OPTIONS: Mapping[str, tuple[str, object]] = {
    "batch": ("int", 1),
    "subdivisions": ("int", 1),
    "time_steps": ("int", 1),
    "learning_rate": ("float", 0.001),
    "momentum": ("float", 0.9),
    "decay": ("float", 0.0001),
    "policy": ("str", "constant"),
    "burn_in": ("int", 0),
    "power": ("float", 4.0),
    "max_batches": ("int", 0),
    "adam": ("int", 0),
}
# Read only for some policies; unread ones stay 0 (calloc'd network struct).
POLICY_OPTIONS: Mapping[str, Mapping[str, tuple[str, object]]] = {
    "step": {"step": ("int", 1), "scale": ("float", 1.0)},
    "exp": {"gamma": ("float", 1.0)},
    "sigmoid": {"gamma": ("float", 1.0), "step": ("int", 1)},
}


def _atoi(raw: str) -> int:
    m = _INT.match(raw)
    return int(m.group()) if m else 0


def _atof(raw: str) -> float:
    m = _FLOAT.match(raw)
    return float(np.float32(float(m.group()))) if m else 0.0


def _read(kind: str, raw: str) -> object:
    return _atoi(raw) if kind == "int" else _atof(raw) if kind == "float" else raw.strip()


def _f32(v: float) -> float:
    return float(np.float32(v))


@dataclass(frozen=True)
class TrainHyper:
    """Darknet's training hyper-parameters.  ``batch`` is the cfg ``batch`` (images per update),
    ``net_batch`` = ``batch / subdivisions`` (images per forward, ``net->batch``)."""

    batch: int = 1
    subdivisions: int = 1
    net_batch: int = 1
    learning_rate: float = _f32(0.001)
    momentum: float = _f32(0.9)
    decay: float = _f32(0.0001)
    policy: str = "constant"
    burn_in: int = 0
    power: float = 4.0
    max_batches: int = 0
    step: int = 0
    scale: float = 0.0
    steps: tuple[int, ...] = ()
    scales: tuple[float, ...] = ()
    gamma: float = 0.0
    adam: bool = False

    @classmethod
    def from_options(cls, options: Sequence[tuple[str, str]]) -> TrainHyper:
        raw = {k: v for k, v in reversed(list(options))}  # option_find: the first occurrence
        vals = {k: _read(t, raw[k]) if k in raw else d for k, (t, d) in NET_TRAIN_OPTIONS.items()}
        policy = str(vals["policy"])
        if policy not in POLICIES:
            policy = "constant"
        extra = {
            k: _read(t, raw[k]) if k in raw else d
            for k, (t, d) in POLICY_OPTIONS.get(policy, {}).items()
        }
        steps: tuple[int, ...] = ()
        scales: tuple[float, ...] = ()
        if policy == "steps":
            if "steps" not in raw or "scales" not in raw:
                raise CfgError("STEPS policy must have steps and scales in cfg file")
            # parse_net_options: n = commas in steps + 1; atoi/atof after each comma of both.
            n = raw["steps"].count(",") + 1
            sparts, cparts = raw["steps"].split(","), raw["scales"].split(",")
            if len(cparts) < n:
                raise CfgError(f"steps= has {n} values but scales= has {len(cparts)}")
            steps = tuple(_atoi(p) for p in sparts[:n])
            scales = tuple(_atof(p) for p in cparts[:n])
        subdivs = int(vals["subdivisions"])  # type: ignore[call-overload]
        batch = int(vals["batch"])  # type: ignore[call-overload]
        if subdivs <= 0:
            raise CfgError(f"subdivisions={subdivs}: must be positive")
        net_batch = batch // subdivs * int(vals["time_steps"])  # type: ignore[call-overload]
        if net_batch <= 0:
            raise CfgError(f"batch={batch} / subdivisions={subdivs} leaves no image per forward")
        return cls(
            batch=net_batch * subdivs,
            subdivisions=subdivs,
            net_batch=net_batch,
            learning_rate=float(vals["learning_rate"]),  # type: ignore[arg-type]
            momentum=float(vals["momentum"]),  # type: ignore[arg-type]
            decay=float(vals["decay"]),  # type: ignore[arg-type]
            policy=policy,
            burn_in=int(vals["burn_in"]),  # type: ignore[call-overload]
            power=float(vals["power"]),  # type: ignore[arg-type]
            max_batches=int(vals["max_batches"]),  # type: ignore[call-overload]
            step=int(extra.get("step", 0)),  # type: ignore[call-overload]
            scale=float(extra.get("scale", 0.0)),  # type: ignore[arg-type]
            steps=steps,
            scales=scales,
            gamma=float(extra.get("gamma", 0.0)),  # type: ignore[arg-type]
            adam=bool(vals["adam"]),
        )

    @classmethod
    def from_network(cls, network: Network) -> TrainHyper:
        return cls.from_options(network.net_cfg)

    def batch_num(self, seen: int) -> int:
        """get_current_batch: ``seen / (net->batch * subdivisions)``."""
        return seen // self.batch


class GlibcRand:
    """glibc's ``srand``/``rand`` (TYPE_3 additive feedback generator), to replay Darknet's
    ``rand_uniform`` (dropout masks, ``policy=random``) bit for bit."""

    RAND_MAX = 2147483647

    def __init__(self, seed: int = 1) -> None:
        seed = seed & 0xFFFFFFFF or 1
        r = [0] * 34
        r[0] = seed if seed < 2**31 else seed - 2**32
        for i in range(1, 31):
            hi, lo = divmod(r[i - 1], 127773)
            word = 16807 * lo - 2836 * hi
            r[i] = word + 2147483647 if word < 0 else word
        for i in range(31, 34):
            r[i] = r[i - 31]
        self._state = [v & 0xFFFFFFFF for v in r[-31:]]  # the last 31 words
        for _ in range(310):
            self._next()

    def _next(self) -> int:
        s = self._state
        v = (s[-31] + s[-3]) & 0xFFFFFFFF
        s.append(v)
        del s[0]
        return v >> 1

    def rand(self, n: int) -> np.ndarray:
        return np.array([self._next() for _ in range(n)], dtype=np.int64)

    def uniform(self, n: int) -> np.ndarray:
        """``rand_uniform(0, 1)``: ``(float)rand() / RAND_MAX`` in float32."""
        return self.rand(n).astype(np.float32) / np.float32(self.RAND_MAX)


def install_glibc_rand(model: Any, gen: GlibcRand) -> None:
    """Replay Darknet's ``rand()`` stream (``srand(N)`` before the first call) in the layers that
    draw in training: ``[dropout]`` (``rand_uniform`` per element), ``[crop]`` (flip, dh, dw)."""
    import torch

    for m in model.modules():
        if hasattr(m, "last_rand"):
            m.rand = lambda n, dev, g=gen: torch.from_numpy(g.uniform(n)).to(dev)
        if hasattr(m, "rand_ints"):
            m.rand_ints = gen.rand


def _to_float(v: float) -> float:
    # The double result stored as float; -Ofast flushes values below FLT_MIN to 0.
    f = np.float32(v)
    return 0.0 if abs(float(f)) < float(np.finfo(np.float32).tiny) else float(f)


def get_current_rate(hyper: TrainHyper, seen: int, rand: GlibcRand | None = None) -> float:
    """network.c get_current_rate, float32 (``pow`` and ``exp`` in double)."""
    bn = hyper.batch_num(seen)
    lr = float(np.float32(hyper.learning_rate))
    f32 = np.float32
    if bn < hyper.burn_in:
        return _to_float(lr * math.pow(float(f32(bn) / f32(hyper.burn_in)), hyper.power))
    policy = hyper.policy
    if policy == "step":
        return _to_float(lr * math.pow(hyper.scale, bn // hyper.step))
    if policy == "steps":
        rate = f32(lr)
        for step, scale in zip(hyper.steps, hyper.scales, strict=True):
            if step > bn:
                break
            rate = f32(rate * f32(scale))
        return float(rate)
    if policy == "exp":
        return _to_float(lr * _pow(hyper.gamma, bn))
    if policy == "poly":
        base = float(f32(1) - f32(bn) / f32(hyper.max_batches))
        return _to_float(lr * _pow(base, hyper.power))
    if policy == "sigmoid":
        diff = (bn - hyper.step) % 2**64  # size_t arithmetic: wraps below step
        arg = float(f32(hyper.gamma) * f32(diff))
        return _to_float(lr * (1.0 / (1.0 + _exp(arg))))
    if policy == "random":
        if rand is None:
            raise UnsupportedError(
                "policy=random draws glibc rand(): pass a GlibcRand to replay Darknet's rates"
            )
        return _to_float(lr * _pow(float(rand.uniform(1)[0]), hyper.power))
    return _to_float(lr)


def _pow(base: float, exponent: float) -> float:
    try:
        return math.pow(base, exponent)
    except ValueError:  # negative base, non-integer power: C's pow gives NaN
        return math.nan
    except OverflowError:
        return math.inf


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def truth_size(network: Network) -> int:
    """``net->truths``: the last layer's ``l.truths`` if non-zero, else the output layer's
    outputs (parse_network_cfg)."""
    last = network.layers[-1]
    truths = {"yolo": 90 * 5, "region": 30 * (4 + 1)}
    if last.type in truths:
        coords = int(last.options.get("coords", 4) or 4) if last.type == "region" else 4
        return 90 * 5 if last.type == "yolo" else 30 * (coords + 1)
    if last.type == "detection":
        o = last.options
        return o["side"] * o["side"] * (1 + o["coords"] + o["classes"])
    return network.layers[network.output_index].outputs
