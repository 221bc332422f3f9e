"""Preparing ``darkconv bench`` rows: cfg-built networks (and peers, from ``peers``) as timed calls.

A :class:`ModelSpec` names one table row (``kind`` + ``target``) and is plain data, so a fresh
child process can rebuild the same model to measure its peak RSS
(``python -m darkconv.bench.models SPEC_JSON`` prints one JSON line).  :func:`prepare` turns a
spec into a :class:`Prepared`: a zero-argument ``call`` running one synchronized forward pass.

Kinds: ``darkconv`` (a cfg built by :func:`darkconv.nn.builder.build`, its random init) and
the peers of :mod:`darkconv.bench.peers` (``torchvision``, ``timm``, ``opencv``,
``onnxruntime``).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import resource
import sys
from collections.abc import Callable
from typing import Any

from darkconv.bench.peers import peer_model, prepare_onnxruntime, prepare_opencv
from darkconv.bench.spec import DTYPES, ModelSpec, Prepared, Settings, resized_network
from darkconv.parse.budget import proc_bytes

__all__ = ["prepare", "compile_options", "measure_rss", "set_threads"]

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

        network = resized_network(spec.target, s.size, s.dialect)
        model = build(network)  # darkconv's random init: He-normal convolutions, BN identity
        return model, network.params, network.bflops, network.input
    model = peer_model(spec).eval()
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 3, s.size[1], s.size[0]))
    return model, _count(model), counter.get_total_flops() / 1e9, (3, s.size[1], s.size[0])


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
    if spec.kind == "darkconv":
        model.batch_invariant = s.exact_batch
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

    def forward() -> object:
        with torch.inference_mode():
            return model(x)

    call = _synced(forward, device)
    if s.compile and spec.kind == "darkconv":
        import torch._inductor.config as inductor_config

        with inductor_config.patch(compile_options(device.type)):
            call()  # compile now, with those settings, not in a timed or warm-up run
    return Prepared(call, params, bflops, notes)


def prepare(spec: ModelSpec, settings: Settings) -> Prepared:
    """Build ``spec`` under ``settings``; ``call()`` runs one forward pass to completion."""
    if settings.dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {settings.dtype!r}")
    if spec.batch is not None:
        settings = dataclasses.replace(settings, batch=spec.batch)
    if spec.kind == "opencv":
        return prepare_opencv(spec, settings)
    if spec.kind == "onnxruntime":
        return prepare_onnxruntime(spec, settings)
    if spec.kind == "peak":
        return _prepare_peak(spec, settings)
    return _prepare_torch(spec, settings)


def _prepare_peak(spec: ModelSpec, s: Settings) -> Prepared:
    """``torch.mm`` of two random ``n x n`` float32 matrices on the bench's device and threads
    (``n = spec.target``): what this machine's cores reach on the most favourable shape, so a
    model row's GFLOP/s says how much of the machine a forward already uses.  Its BFLOPs are
    the product's ``2 n^3`` (one call, whatever the batch size)."""
    import torch

    from darkconv.nn.builder import pick_device

    n = int(spec.target)
    device = pick_device(s.device)
    a, b = (torch.rand(n, n, device=device) for _ in range(2))
    out = torch.empty(n, n, device=device)
    return Prepared(_synced(lambda: torch.mm(a, b, out=out), device), 0, 2 * n**3 / 1e9, [])


def _synced(fn: Callable[[], object], device: Any) -> Callable[[], object]:
    """``fn``, followed on CUDA by a device synchronization, so that a timed call returns when
    its work is done."""
    if device.type != "cuda":
        return fn
    import torch

    def call() -> object:
        y = fn()
        torch.cuda.synchronize()
        return y

    return call


def set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- child process


def _maxrss_mib() -> float:
    """This process's peak resident set size in MiB.

    Linux: ``VmHWM`` of /proc/self/status, the high-water mark of this address space.
    ``ru_maxrss`` is only the fallback: it carries the parent's peak across fork + exec."""
    peak = proc_bytes("/proc/self/status", "VmHWM")
    if peak is not None:
        return peak / 2**20
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
    library = {"opencv": "cv2"}.get(spec.kind, spec.kind)
    if spec.kind in ("opencv", "onnxruntime", "torchvision", "timm"):  # imports count in the base
        importlib.import_module(library)
    if spec.kind not in ("opencv", "onnxruntime"):
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
