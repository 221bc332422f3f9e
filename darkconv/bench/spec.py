"""What one ``darkconv bench`` row is: its settings, its model spec and its prepared call.

Plain data, so a fresh child process can rebuild the same row to measure its peak RSS, plus the
helpers every row kind shares: a network re-sized through its cfg text and random parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from darkconv.parse.graph import Network, load_network
from darkconv.parse.size import with_size

__all__ = ["DTYPES", "Settings", "ModelSpec", "Prepared", "resized_network", "random_state"]

DTYPES = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class Settings:
    """How every model of one bench run is built and fed."""

    size: tuple[int, int] = (224, 224)  # (w, h), like --size WxH
    batch: int = 1
    device: str = "cpu"
    threads: int | None = None
    fuse: bool = True
    channels_last: bool = False
    dtype: str = "fp32"
    compile: bool = False
    winograd: bool = False
    exact_batch: bool = False  # darkconv rows: batch_invariant=True (rows one by one)
    dialect: str | None = None  # None: each cfg's own (auto-detected)

    def __post_init__(self) -> None:  # ``size=416`` means 416x416; JSON gives a list
        size = self.size
        object.__setattr__(self, "size", (size, size) if isinstance(size, int) else tuple(size))


@dataclass(frozen=True)
class ModelSpec:
    """One row: ``kind`` (darkconv, torchvision, timm, opencv, onnxruntime, or ``peak``: the
    machine's float32 matrix-product rate) and ``target`` (cfg or model name; for ``peak`` the
    matrix side).

    ``files`` holds the ``(cfg, weights)`` paths of an opencv row; ``batch`` overrides the
    settings' batch size for this row (``--batch 1,8``)."""

    name: str
    kind: str
    target: str
    files: tuple[str, str] | None = None
    batch: int | None = None


@dataclass
class Prepared:
    call: Callable[[], object]
    params: int
    bflops: float
    notes: list[str] = field(default_factory=list)


def resized_network(
    cfg: str | Network, size: int | tuple[int, int] | None, dialect: str | None = None
) -> Network:
    """The network of ``cfg`` (read in ``dialect``; None detects it) at ``size`` (``(w, h)``
    or ``n``): :func:`darkconv.parse.size.with_size`, i.e. ``[net]`` width and height edited in
    the cfg text, every shape, parameter count and BFLOPs value recomputed, Darknet's size rules
    checked."""
    network = cfg if isinstance(cfg, Network) else load_network(cfg, dialect=dialect)
    return with_size(network, size)


def random_state(network: Network, seed: int = 0) -> dict[str, np.ndarray]:
    """Random float32 parameters for every record (``layers.{i}.{key}``): He-normal weights,
    small biases and means, BN scales and variances in [0.5, 1.5).  For timing only."""
    rng = np.random.default_rng(seed)
    state: dict[str, np.ndarray] = {}
    for layer in network.layers:
        for rec in layer.records:
            if rec.part in ("scales", "rolling_variance"):
                arr = rng.uniform(0.5, 1.5, rec.shape)
            elif rec.part == "weights" or rec.part.endswith(".weights"):
                fan_in = max(1, int(np.prod(rec.shape[1:])) if len(rec.shape) > 1 else 1)
                arr = rng.standard_normal(rec.shape) * np.sqrt(2.0 / fan_in)
            else:
                arr = rng.uniform(-0.1, 0.1, rec.shape)
            state[f"layers.{layer.index}.{rec.key}"] = arr.astype(np.float32)
    return state
