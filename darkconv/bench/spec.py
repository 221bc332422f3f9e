"""What one ``darkconv bench`` row is: its settings, its model spec and its prepared call.

Plain data, so a fresh child process can rebuild the same row to measure its peak RSS, plus the
helpers every row kind shares: a network re-sized through its cfg text and random parameters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from darkconv.parse.graph import Network, load_network, parse_network, write_network

__all__ = ["DTYPES", "Settings", "ModelSpec", "Prepared", "resized_network", "random_state"]

DTYPES = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class Settings:
    """How every model of one bench run is built and fed."""

    size: int = 224
    batch: int = 1
    device: str = "cpu"
    threads: int | None = None
    fuse: bool = True
    channels_last: bool = False
    dtype: str = "fp32"
    compile: bool = False
    winograd: bool = False


@dataclass(frozen=True)
class ModelSpec:
    """One row: ``kind`` (darkconv, torchvision, timm, opencv) and ``target`` (cfg or model name).

    ``files`` holds the ``(cfg, weights)`` paths of an opencv row."""

    name: str
    kind: str
    target: str
    files: tuple[str, str] | None = None


@dataclass
class Prepared:
    call: Callable[[], object]
    params: int
    bflops: float
    notes: list[str] = field(default_factory=list)


def resized_network(cfg: str | Network, size: int | None) -> Network:
    """The network of ``cfg`` with its ``[net]`` width and height replaced by ``size``.

    Goes through the cfg text (``write_network`` -> edit ``[net]`` -> ``parse_network``), so
    every shape, parameter count and BFLOPs value is recomputed by the graph for that size."""
    network = cfg if isinstance(cfg, Network) else load_network(cfg)
    if size is None or network.input[1:] == (size, size):
        return network
    keep = [(k, v) for k, v in network.net_cfg if k not in ("width", "height")]
    edited = dataclasses.replace(
        network, net_cfg=(*keep, ("width", str(size)), ("height", str(size)))
    )
    return parse_network(write_network(edited), path=network.path or "<bench>")


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
