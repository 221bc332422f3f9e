"""Model factories for ``darkconv bench``: cfg-built networks and optional peers.

A :class:`ModelSpec` names one table row (``kind`` + ``target``) and is plain data, so a fresh
child process can rebuild the same model to measure its peak RSS
(``python -m darkconv.bench.models SPEC_JSON`` prints one JSON line).  :func:`prepare` turns a
spec into a :class:`Prepared`: a zero-argument ``call`` running one synchronized forward pass.

Kinds: ``darkconv`` (a cfg built by :func:`darkconv.builder.build`, its random init),
``torchvision`` and ``timm`` (hand-written references, random init, never downloaded), and
``opencv`` (``cv2.dnn.readNetFromDarknet`` on the same cfg text and a random ``.weights`` file of
the right size, written beforehand by :func:`write_opencv_files`).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import resource
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from darkconv.parse.graph import Network, load_network, parse_network, write_network

__all__ = [
    "Settings",
    "ModelSpec",
    "Prepared",
    "resized_network",
    "random_state",
    "write_opencv_files",
    "peer_specs",
    "prepare",
    "compile_options",
    "measure_rss",
]

TORCHVISION_PEERS = ("resnet50", "resnet101", "resnet152", "densenet121")
TIMM_PEERS = ("darknet53",)
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


def write_opencv_files(
    network: Network, folder: str | Path, stem: str, seed: int = 0
) -> tuple[str, str]:
    """Write ``stem.cfg`` (the network's cfg text) and a random ``stem.weights`` of the size
    Darknet expects; returns their paths.  Uses darkconv's writer when it is importable, else a
    0.2.0 header followed by the raw floats in record order."""
    folder = Path(folder)
    cfg_path, weights_path = folder / f"{stem}.cfg", folder / f"{stem}.weights"
    cfg_path.write_text(write_network(network), encoding="utf-8")
    state = random_state(network, seed)
    try:
        import torch

        from darkconv.weights.io import write_weights

        write_weights(weights_path, {k: torch.from_numpy(v) for k, v in state.items()}, network)
    except ImportError:
        header = np.array([0, 2, 0], "<i4").tobytes() + np.zeros(1, "<u8").tobytes()
        with open(weights_path, "wb") as f:
            f.write(header)
            for arr in state.values():
                f.write(arr.astype("<f4").tobytes())
    return str(cfg_path), str(weights_path)


def peer_specs(cfg_names: list[str], device: str) -> tuple[list[ModelSpec], list[str]]:
    """The optional reference models that are installed, and one note per skipped group."""
    specs: list[ModelSpec] = []
    notes: list[str] = []
    if _installed("torchvision"):
        specs += [ModelSpec(f"{n} (torchvision)", "torchvision", n) for n in TORCHVISION_PEERS]
    else:
        notes.append("torchvision not installed: its resnet50/101/152 and densenet121 skipped")
    if _installed("timm"):
        specs += [ModelSpec(f"{n} (timm)", "timm", n) for n in TIMM_PEERS]
    else:
        notes.append("timm not installed: its darknet53 skipped")
    if not cfg_names:
        pass
    elif not _installed("cv2"):
        notes.append("opencv-python not installed: OpenCV DNN skipped")
    elif not hasattr(importlib.import_module("cv2").dnn, "readNetFromDarknet"):
        notes.append("OpenCV DNN skipped: this OpenCV has no Darknet importer (use opencv < 5)")
    elif device != "cpu":
        notes.append("OpenCV DNN skipped: the pip build runs on the CPU only")
    else:
        specs.append(ModelSpec(f"{cfg_names[0]} (OpenCV DNN)", "opencv", cfg_names[0]))
    return specs, notes


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


# ----------------------------------------------------------------------------- torch models


def _torch_dtype(name: str) -> Any:
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def _count(model: Any) -> int:
    """Parameters plus BN running statistics (Darknet's count, which includes them)."""
    stats = sum(
        b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var"))
    )
    return sum(p.numel() for p in model.parameters()) + stats


def _torch_model(spec: ModelSpec, s: Settings) -> tuple[Any, int, float, tuple[int, int, int]]:
    """The eager fp32 model on the CPU, its parameter count, BFLOPs and input (c, h, w)."""
    import torch

    if spec.kind == "darkconv":
        from darkconv.nn.builder import build

        network = resized_network(spec.target, s.size)
        model = build(network)  # darkconv's random init: He-normal convolutions, BN identity
        return model, network.params, network.bflops, network.input
    if spec.kind == "torchvision":
        import torchvision

        model = getattr(torchvision.models, spec.target)(weights=None)
    elif spec.kind == "timm":
        import timm

        model = timm.create_model(spec.target, pretrained=False)
    else:
        raise ValueError(f"unknown model kind {spec.kind!r}")
    model.eval()
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 3, s.size, s.size))
    return model, _count(model), counter.get_total_flops() / 1e9, (3, s.size, s.size)


def compile_options(device: str = "cpu") -> dict[str, bool]:
    """The inductor settings of ``darkconv bench --compile``, patched into
    ``torch._inductor.config`` while the first call compiles the model.

    ``freezing``: the weights are constants, so inductor folds and prepacks them (oneDNN's
    blocked layout on the CPU, with the activation as a post-op).  On the CPU also
    ``cpp_wrapper``: the compiled graph's ops are called from generated C++ instead of Python,
    which saves most of the per-op Python overhead of a batch-1 forward (about 2 ms of
    darknet53's ~84 ms on 2 cores); it needs the C++ compiler inductor's CPU kernels need anyway.
    (Given as ``torch.compile(options=...)`` instead, torch 2.14 compiled darknet53 without
    freezing here: 99 ms instead of 84.)
    """
    return {"freezing": True, "cpp_wrapper": device == "cpu"}


def _prepare_torch(spec: ModelSpec, s: Settings) -> Prepared:
    import torch

    from darkconv.nn.builder import pick_device

    model, params, bflops, chw = _torch_model(spec, s)
    notes: list[str] = []
    if spec.kind == "darkconv" and s.fuse:
        from darkconv.nn.fuse import fuse_model

        model = fuse_model(model)
        if s.winograd:
            from darkconv.nn.winograd import winograd_model

            winograd_model(model, s.batch)
    device = pick_device(s.device)
    fmt = torch.channels_last if s.channels_last else torch.contiguous_format
    model = model.to(device=device, dtype=_torch_dtype(s.dtype), memory_format=fmt).eval()
    x = torch.rand(s.batch, *chw).to(device=device, dtype=_torch_dtype(s.dtype), memory_format=fmt)
    if s.compile and spec.kind == "darkconv":
        model = torch.compile(model)
    sync = torch.cuda.synchronize if device.type == "cuda" else None

    def call() -> object:
        with torch.inference_mode():
            y = model(x)
        if sync is not None:
            sync()
        return y

    if s.compile and spec.kind == "darkconv":
        import torch._inductor.config as inductor_config

        with inductor_config.patch(compile_options(device.type)):
            call()  # compile now, with those settings, not in a timed or warm-up run
    return Prepared(call, params, bflops, notes)


# ----------------------------------------------------------------------------- OpenCV


def _prepare_opencv(spec: ModelSpec, s: Settings) -> Prepared:
    import cv2

    if spec.files is None:
        raise ValueError("an opencv spec needs its (cfg, weights) files")
    cfg_path, weights_path = spec.files
    network = parse_network(Path(cfg_path).read_text(encoding="utf-8"), path=cfg_path)
    if s.threads:
        cv2.setNumThreads(s.threads)
    net = cv2.dnn.readNetFromDarknet(cfg_path, weights_path)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    c, h, w = network.input
    blob = np.random.default_rng(0).random((s.batch, c, h, w), dtype=np.float32)

    def call() -> object:
        net.setInput(blob)
        return net.forward()

    return Prepared(call, network.params, network.bflops, [])


def prepare(spec: ModelSpec, settings: Settings) -> Prepared:
    """Build ``spec`` under ``settings``; ``call()`` runs one forward pass to completion."""
    if settings.dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {settings.dtype!r}")
    if spec.kind == "opencv":
        return _prepare_opencv(spec, settings)
    return _prepare_torch(spec, settings)


def set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- child process


def _maxrss_mib() -> float:
    """This process's peak resident set size in MiB.

    Linux: ``VmHWM`` of /proc/self/status, the high-water mark of this address space.
    ``ru_maxrss`` is only the fallback: it carries the parent's peak across fork + exec."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def measure_rss(spec: ModelSpec, settings: Settings, warmup: int = 1) -> dict[str, float]:
    """Peak RSS of a fresh child process that builds ``spec`` and runs ``warmup + 1`` forwards.

    ``base_mib`` is the child's peak after its imports, before the model is built."""
    import subprocess

    payload = json.dumps(
        {
            "spec": dataclasses.asdict(spec),
            "settings": dataclasses.asdict(settings),
            "n": warmup + 1,
        }
    )
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, "-m", "darkconv.bench.models", payload],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"memory child failed ({proc.returncode}): {tail}")
    return json.loads(lines[-1])


def _child(payload: str) -> dict[str, float]:
    data = json.loads(payload)
    spec_d = data["spec"]
    if spec_d.get("files") is not None:
        spec_d["files"] = tuple(spec_d["files"])
    spec, settings = ModelSpec(**spec_d), Settings(**data["settings"])
    if spec.kind in ("opencv", "torchvision", "timm"):  # library imports count in the base
        importlib.import_module("cv2" if spec.kind == "opencv" else spec.kind)
    if spec.kind != "opencv":
        import torch

        import darkconv.nn.builder  # noqa: F401

        set_threads(settings.threads)
        if settings.device == "cuda":
            raise RuntimeError("the RSS child is for CPU runs")
        torch.set_flush_denormal(True)
    base = _maxrss_mib()
    prepared = prepare(spec, settings)
    for _ in range(int(data["n"])):
        prepared.call()
    return {"base_mib": base, "peak_mib": _maxrss_mib()}


if __name__ == "__main__":  # the fresh process of measure_rss: one JSON line on stdout
    sys.stdout.write(json.dumps(_child(sys.argv[1])) + "\n")
