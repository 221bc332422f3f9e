"""The ``darkconv bench`` command (added to the group in :mod:`darkconv.cli.main`)."""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

import click

from darkconv.cli.options import device_option, dialect_option, exact_batch_option, size_option

__all__ = ["bench", "ProgressBar"]


class ProgressBar:
    """A one-line bar on a terminal stream: ``[#####.....] 12/40 run darknet53``.

    Redraws at most every 0.1 s (and at the end); on a non-terminal stream it writes nothing
    until :meth:`close`, which ends the line."""

    def __init__(self, stream: TextIO | None = None, width: int = 24) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.last = 0.0
        self.drawn = False

    def __call__(self, done: int, total: int, label: str) -> None:
        now = time.monotonic()
        if not self.tty or (done < total and now - self.last < 0.1):
            return
        self.last = now
        filled = self.width * done // max(total, 1)
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r[{bar}] {done}/{total} {label[:40]:<40}")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\r" + " " * (self.width + 56) + "\r")
            self.stream.flush()
            self.drawn = False


@click.command()
@click.argument("cfgs", nargs=-1)
@size_option(
    default=(224, 224),
    help="Input size WxH (or N for NxN) of every model; cfgs as if [net] width/height were edited.",
)
@click.option(
    "--batch",
    "batch_text",
    default="1",
    show_default=True,
    metavar="N[,N...]",
    help="Images per forward pass; several (1,8) time every model at each batch size.",
)
@exact_batch_option()
@device_option(choices=("cpu", "cuda"))
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="torch/OpenCV threads (default: torch's own choice).",
)
@click.option(
    "--runs",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Timed forward passes per model, interleaved across models.",
)
@click.option("--warmup", type=click.IntRange(min=0), default=3, show_default=True)
@click.option(
    "--clock",
    type=click.Choice(["wall", "cpu"]),
    default="wall",
    show_default=True,
    help="cpu: time by the thread's CPU time (needs --threads 1); steady on a shared machine.",
)
@click.option(
    "--omp-wait",
    type=click.Choice(["passive", "active"]),
    default=None,
    help=(
        "Set OMP_WAIT_POLICY for this run (before torch loads): 'passive' threads sleep at "
        "barriers, faster on an oversubscribed machine but much slower on an idle one (README); "
        "default: the environment's."
    ),
)
@click.option(
    "--fuse/--no-fuse",
    default=True,
    show_default=True,
    help="Fold batch norm into the convolutions of cfg-built models.",
)
@click.option(
    "--winograd",
    is_flag=True,
    help="Fused cfg-built models: Winograd F(4x4|2x2, 3x3) for eligible 3x3 convolutions.",
)
@click.option("--channels-last", is_flag=True, help="channels_last memory format (torch models).")
@click.option(
    "--dtype",
    type=click.Choice(["fp32", "fp16", "bf16"]),
    default="fp32",
    show_default=True,
    help="Weights and input dtype of the torch models.",
)
@click.option(
    "--compile",
    "use_compile",
    is_flag=True,
    help=(
        "torch.compile the cfg-built models (inductor: weight freezing, C++ wrapper on the CPU; "
        "peers stay eager)."
    ),
)
@click.option(
    "--peers/--no-peers",
    default=True,
    show_default=True,
    help="Add torchvision, timm and OpenCV DNN references when installed.",
)
@click.option(
    "--peak",
    is_flag=True,
    help=(
        "Add a row timing a 2048 x 2048 float32 matrix product, the rate this machine reaches; "
        "every row then shows its GFLOP/s as a share of it ('of peak')."
    ),
)
@click.option(
    "--memory/--no-memory",
    default=True,
    show_default=True,
    help="Measure peak memory (CPU: one fresh process per model).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Also write the results as JSON to this file.",
)
@dialect_option()
def bench(
    cfgs: tuple[str, ...],
    size: tuple[int, int],
    batch_text: str,
    exact_batch: bool,
    device: str,
    threads: int | None,
    runs: int,
    warmup: int,
    clock: str,
    omp_wait: str | None,
    fuse: bool,
    winograd: bool,
    channels_last: bool,
    dtype: str,
    use_compile: bool,
    peers: bool,
    peak: bool,
    memory: bool,
    json_path: str | None,
    dialect: str | None,
) -> None:  # fmt: skip
    """Time CFGs (default: darknet53 resnet50 resnet101 resnet152 densenet201) against
    hand-written references, interleaved; print a latency/memory table.

    Weights are random (timing only).  Ratios are to the first cfg, darknet53 by default.
    """
    if omp_wait is not None:
        # libgomp reads OMP_WAIT_POLICY once, when torch loads it: too late if torch is loaded
        if "torch" in sys.modules:
            click.echo("note: --omp-wait has no effect: torch is already loaded", err=True)
        os.environ["OMP_WAIT_POLICY"] = omp_wait.upper()
    from darkconv.bench.run import Settings, default_specs, format_table, run_bench, write_json
    from darkconv.nn.builder import pick_device
    from darkconv.parse.graph import load_network
    from darkconv.parse.size import with_size

    for cfg in cfgs:  # a bad cfg, name or size is one error message before anything runs
        with_size(load_network(cfg, dialect=dialect), size)
    try:
        batches = [int(b) for b in batch_text.split(",")]
    except ValueError:
        raise click.BadParameter(
            f"{batch_text!r}: expected N or N,N,...", param_hint="--batch"
        ) from None
    if not batches or min(batches) < 1:
        raise click.BadParameter("batch sizes must be positive", param_hint="--batch")
    pick_device(device)
    if dtype != "fp32" and device == "cpu":
        click.echo(f"note: {dtype} on the CPU is usually slower than fp32", err=True)
    if clock == "cpu" and threads != 1:
        raise click.UsageError("--clock cpu needs --threads 1")
    if winograd and not fuse:
        raise click.UsageError("--winograd works on fused layers: drop --no-fuse")
    settings = Settings(
        size, batches[0], device, threads, fuse, channels_last, dtype, use_compile, winograd,
        exact_batch, dialect,
    )  # fmt: skip
    specs, notes = default_specs(
        cfgs, peers=peers, device=device, batches=batches, peak=2048 if peak else None
    )
    for note in notes:
        click.echo(f"note: {note}", err=True)
    bar = ProgressBar()
    try:
        report = run_bench(
            specs, settings, runs=runs, warmup=warmup, memory=memory, notes=notes, progress=bar,
            clock=clock,
        )  # fmt: skip
    finally:
        bar.close()
    for note in report.notes[len(notes) :]:
        click.echo(f"note: {note}", err=True)
    click.echo(format_table(report))
    if json_path:
        write_json(report, json_path)
        click.echo(f"wrote {json_path}", err=True)
