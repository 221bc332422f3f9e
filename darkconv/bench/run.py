"""``darkconv bench``: latency and memory of cfg-built networks next to hand-written references.

Every model is prepared first (see :mod:`darkconv.bench.models`), then warmed up and timed
round-robin, one forward pass of each model per round, so load drift on the machine hits every
model alike.  Per model: parameters, BFLOPs, median and min latency, peak memory (CUDA:
``max_memory_allocated`` while building and running it; CPU: the peak RSS of a fresh child process
that builds it and runs it), and the ratio of its median to the reference row's (the first cfg,
darknet53 by default).  Weights are random: only timing and memory are meaningful.

The library prints nothing: progress goes to an optional callback ``progress(done, total, label)``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from darkconv.bench.models import measure_rss, prepare, set_threads
from darkconv.bench.peers import peer_specs, write_onnx_file, write_opencv_files
from darkconv.bench.spec import ModelSpec, Prepared, Settings, resized_network
from darkconv.weights.atomic import atomic_writer

__all__ = [
    "DEFAULT_CFGS",
    "Settings",
    "ModelSpec",
    "Row",
    "Report",
    "default_specs",
    "run_bench",
    "summarize",
    "format_table",
    "write_json",
]

DEFAULT_CFGS = ("darknet53", "resnet50", "resnet101", "resnet152", "densenet201")

Progress = Callable[[int, int, str], None]

#: ``--clock``: wall time, or the calling thread's CPU time (one thread only).
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.thread_time}

#: Environment variables that change CPU timings; recorded in the JSON and the table's footer.
ENV_KEYS = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


@dataclass
class Row:
    name: str
    kind: str
    target: str
    params: int = 0
    bflops: float = 0.0
    times_ms: list[float] = field(default_factory=list)
    median_ms: float | None = None
    min_ms: float | None = None
    peak_mib: float | None = None
    base_mib: float | None = None
    ratio: float | None = None
    error: str | None = None
    batch: int = 1
    images_per_s: float | None = None
    vs_opencv: float | None = None  # median / the median of the OpenCV row of the same cfg+batch
    gflops_per_s: float | None = None  # BFLOPs x batch / median (the peak row: its product)
    of_peak: float | None = None  # gflops_per_s / the peak row's (--peak)


@dataclass
class Report:
    settings: Settings
    runs: int
    warmup: int
    rows: list[Row]
    reference: str | None
    notes: list[str]
    machine: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": asdict(self.settings),
            "runs": self.runs,
            "warmup": self.warmup,
            "reference": self.reference,
            "weights": "random (timing only)",
            "memory": "cuda: max_memory_allocated; cpu: peak RSS of a fresh process",
            "machine": self.machine,
            "notes": self.notes,
            "models": [asdict(r) for r in self.rows],
        }


def _label(cfg: str) -> str:
    base = os.path.basename(cfg)
    return base[:-4] if base.endswith(".cfg") else base


def default_specs(
    cfgs: Sequence[str] = (),
    peers: bool = True,
    device: str = "cpu",
    batches: Sequence[int] = (),
    peak: int | None = None,
) -> tuple[list[ModelSpec], list[str]]:
    """The rows for ``cfgs`` (default :data:`DEFAULT_CFGS`) plus the installed peers (OpenCV
    DNN for the first cfg and for every detector cfg); with several ``batches``, every row once
    per batch size, named ``... b8``; with ``peak=n``, a last row timing an ``n x n`` float32
    matrix product, the rate the other rows' GFLOP/s are compared with."""
    cfgs = list(cfgs) or list(DEFAULT_CFGS)
    specs = [ModelSpec(_label(c), "darkconv", c) for c in cfgs]
    notes: list[str] = []
    if peers:
        more, notes = peer_specs(cfgs, device)
        specs += more
    if len(batches) > 1:
        specs = [
            ModelSpec(f"{s.name} b{b}", s.kind, s.target, s.files, b)
            for b in batches
            for s in specs
        ]
    elif batches:
        specs = [ModelSpec(s.name, s.kind, s.target, s.files, batches[0]) for s in specs]
    if peak:
        specs.append(ModelSpec(f"sgemm {peak} (peak)", "peak", str(peak)))
    return specs, notes


def machine_info(settings: Settings) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "load_average": _loadavg(),
        "env": {k: os.environ[k] for k in ENV_KEYS if k in os.environ},
    }
    if settings.device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    for mod in ("torchvision", "timm", "cv2"):
        with contextlib.suppress(ImportError):
            info[mod] = __import__(mod).__version__
    return info


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _with_files(specs: list[ModelSpec], settings: Settings, folder: str) -> list[ModelSpec]:
    """Give each opencv spec its cfg (resized) and random weights files in ``folder``, each
    onnxruntime spec its cfg and exported ONNX file."""
    writers = {"opencv": write_opencv_files, "onnxruntime": write_onnx_file}
    out = []
    for i, spec in enumerate(specs):
        if spec.kind in writers:
            network = resized_network(spec.target, settings.size, settings.dialect)
            files = writers[spec.kind](network, folder, f"m{i}")
            spec = ModelSpec(spec.name, spec.kind, spec.target, files, spec.batch)
        out.append(spec)
    return out


def _cuda_prepare(spec: ModelSpec, settings: Settings) -> tuple[Prepared, float]:
    import torch

    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    prepared = prepare(spec, settings)
    prepared.call()
    return prepared, (torch.cuda.max_memory_allocated() - before) / 2**20


def run_bench(
    specs: Sequence[ModelSpec],
    settings: Settings,
    *,
    runs: int = 10,
    warmup: int = 3,
    memory: bool = True,
    notes: Sequence[str] = (),
    progress: Progress | None = None,
    clock: str = "wall",
) -> Report:
    """Prepare, measure memory, warm up and time ``specs`` round-robin; see the module doc.

    ``clock="cpu"`` times each call by this thread's CPU time instead of wall time: with one
    thread (the computation then runs in the calling thread) it hardly moves when other jobs
    share the machine, so it compares the work each model does on a loaded machine."""
    import torch

    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {sorted(CLOCKS)}, got {clock!r}")
    if clock == "cpu" and settings.threads != 1:
        raise ValueError("clock='cpu' needs threads=1 (other threads' CPU time is not counted)")
    timer = CLOCKS[clock]

    set_threads(settings.threads)
    if settings.device == "cpu":
        torch.set_flush_denormal(True)
    machine = machine_info(settings)
    machine["clock"] = clock
    rows = [Row(s.name, s.kind, s.target, batch=s.batch or settings.batch) for s in specs]

    def rss_measured(spec: ModelSpec) -> bool:  # the peak row has no memory figure
        return memory and settings.device == "cpu" and spec.kind != "peak"

    total = sum(1 + int(rss_measured(s)) + warmup + runs for s in specs)
    done = 0

    def tick(label: str, skip: int = 0) -> None:
        nonlocal done, total
        done += 1
        total -= skip
        if progress is not None:
            progress(done, total, label)

    report_notes = list(notes)
    with tempfile.TemporaryDirectory(prefix="darkconv-bench-") as folder:
        specs = _with_files(list(specs), settings, folder)
        live: list[tuple[Row, Prepared]] = []
        for spec, row in zip(specs, rows, strict=True):
            if rss_measured(spec):
                try:
                    rss = measure_rss(spec, settings)
                    row.peak_mib, row.base_mib = rss["peak_mib"], rss["base_mib"]
                except RuntimeError as exc:
                    report_notes.append(f"{spec.name}: no memory figure ({exc})")
                tick(f"memory {spec.name}")
            try:
                if settings.device == "cuda" and spec.kind != "opencv":
                    prepared, row.peak_mib = _cuda_prepare(spec, settings)
                else:
                    prepared = prepare(spec, settings)
                row.params, row.bflops = prepared.params, prepared.bflops
                report_notes += [f"{spec.name}: {n}" for n in prepared.notes]
                live.append((row, prepared))
            except Exception as exc:  # one model that cannot run must not sink the table
                row.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
                report_notes.append(f"{spec.name} skipped: {row.error}")
            tick(f"build {spec.name}", 0 if row.error is None else warmup + runs)
        for _ in range(warmup):
            for row, prepared in live:
                prepared.call()
                tick(f"warm-up {row.name}")
        for _ in range(runs):
            for row, prepared in live:
                start = timer()
                prepared.call()
                row.times_ms.append((timer() - start) * 1e3)
                tick(f"run {row.name}")
    ref = summarize(rows)
    machine["load_average_end"] = _loadavg()
    return Report(settings, runs, warmup, rows, ref, report_notes, machine)


def summarize(rows: Sequence[Row]) -> str | None:
    """Fill each row's median, min, images/s, its ratio to the first timed darkconv row (whose
    name is returned) and, for darkconv rows, the ratio to the OpenCV row of the same cfg and
    batch size."""
    for row in rows:
        if row.times_ms:
            row.median_ms = statistics.median(row.times_ms)
            row.min_ms = min(row.times_ms)
            row.images_per_s = row.batch * 1e3 / row.median_ms
            per_call = row.bflops * (1 if row.kind == "peak" else row.batch)
            row.gflops_per_s = per_call * 1e3 / row.median_ms if per_call else None
    opencv = {(r.target, r.batch): r.median_ms for r in rows if r.kind == "opencv"}
    for row in rows:
        peer = opencv.get((row.target, row.batch))
        if row.kind == "darkconv" and peer and row.median_ms is not None:
            row.vs_opencv = row.median_ms / peer
    ref = next((r for r in rows if r.kind == "darkconv" and r.median_ms), None)
    peak = next((r.gflops_per_s for r in rows if r.kind == "peak" and r.gflops_per_s), None)
    for row in rows:
        if row.kind == "peak":
            continue
        if peak and row.gflops_per_s is not None:
            row.of_peak = row.gflops_per_s / peak
        if ref is not None and ref.median_ms and row.median_ms is not None:
            row.ratio = row.median_ms / ref.median_ms
    return ref.name if ref else None


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(report: Report) -> str:
    """The seed-style table: one row per model, latency in ms, memory in MiB."""
    s = report.settings
    mem = "GPU MiB" if s.device == "cuda" else "RSS MiB"
    ref = report.reference or "reference"
    head: tuple[str, ...] = ("model", "params", "BFLOPs", "median ms", "min ms", "img/s")
    head += ("GFLOP/s", mem, "+model", f"vs {ref}")
    cv = any(r.vs_opencv is not None for r in report.rows)
    head += ("vs OpenCV",) * cv
    pk = any(r.of_peak is not None for r in report.rows)
    head += ("of peak",) * pk
    lines = [head]
    for r in report.rows:
        if r.error is not None:
            lines.append((r.name, "-", "-", "skipped", *["-"] * (len(head) - 4)))
            continue
        row_cells = (
            r.name,
            f"{r.params / 1e6:.1f}M",
            f"{r.bflops:.2f}",
            _fmt(r.median_ms, ".1f"),
            _fmt(r.min_ms, ".1f"),
            "-" if r.kind == "peak" else _fmt(r.images_per_s, ".2f"),
            _fmt(r.gflops_per_s, ".0f"),
            _fmt(r.peak_mib, ".0f"),
            _fmt(
                None if r.base_mib is None or r.peak_mib is None else r.peak_mib - r.base_mib,
                ".0f",
            ),
            _fmt(r.ratio, ".2f"),
        )
        lines.append(row_cells + (_fmt(r.vs_opencv, ".2f"),) * cv + (_fmt(r.of_peak, ".0%"),) * pk)
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = []
    for n, line in enumerate(lines):
        cells = [line[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True)
        ]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    batches = sorted({r.batch for r in report.rows}) or [s.batch]
    flags = [f"{s.dtype}", f"batch {','.join(map(str, batches))}", f"{s.size[0]}x{s.size[1]}"]
    flags += [s.device] + ["rows one by one (--exact-batch)"] * s.exact_batch
    flags += ["fused" if s.fuse else "unfused"]
    flags += ["Winograd 3x3"] * (s.fuse and s.winograd)
    flags += ["channels_last"] * s.channels_last + ["torch.compile"] * s.compile
    m = report.machine
    footer = (
        f"{', '.join(flags)}; {report.runs} interleaved runs after {report.warmup} warm-up; "
        f"random weights; torch {m.get('torch')} with {m.get('torch_threads')} threads on "
        f"{m.get('gpu') or m.get('cpu')}"
    )
    if m.get("clock") == "cpu":
        footer += "; times are the thread's CPU time (--clock cpu)"
    env = m.get("env") or {}
    if env:
        footer += "; " + " ".join(f"{k}={v}" for k, v in sorted(env.items()))
    if m.get("load_average") and m.get("load_average_end"):
        footer += f"; 1-min load {m['load_average'][0]:.1f} -> {m['load_average_end'][0]:.1f}"

    return "\n".join(out + ["", footer])


def write_json(report: Report, path: str | os.PathLike[str]) -> None:
    """Write the report as JSON, atomically (a temporary file in the same folder, renamed)."""
    with atomic_writer(path) as f:
        f.write(json.dumps(report.to_dict(), indent=2).encode("utf-8") + b"\n")
