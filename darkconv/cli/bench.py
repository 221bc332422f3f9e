"""The ``darkconv bench`` command (added to the group in :mod:`darkconv.cli.main`)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

import click

from darkconv.cli.options import device_option

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
@click.option(
    "--size",
    type=click.IntRange(min=1),
    default=224,
    show_default=True,
    help="Input width and height (replaces the cfg's [net] size).",
)
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True)
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
def bench(
    cfgs: tuple[str, ...],
    size: int,
    batch: int,
    device: str,
    threads: int | None,
    runs: int,
    warmup: int,
    fuse: bool,
    winograd: bool,
    channels_last: bool,
    dtype: str,
    use_compile: bool,
    peers: bool,
    memory: bool,
    json_path: str | None,
) -> None:  # fmt: skip
    """Time CFGs (default: darknet53 resnet50 resnet101 resnet152 densenet201) against
    hand-written references, interleaved; print a latency/memory table.

    Weights are random (timing only).  Ratios are to the first cfg, darknet53 by default.
    """
    from darkconv.bench.run import Settings, default_specs, format_table, run_bench, write_json
    from darkconv.nn.builder import pick_device
    from darkconv.parse.graph import load_network

    for cfg in cfgs:
        load_network(cfg)  # a bad cfg or name is one error message before anything runs
    pick_device(device)
    if dtype != "fp32" and device == "cpu":
        click.echo(f"note: {dtype} on the CPU is usually slower than fp32", err=True)
    if winograd and not fuse:
        raise click.UsageError("--winograd works on fused layers: drop --no-fuse")
    settings = Settings(
        size, batch, device, threads, fuse, channels_last, dtype, use_compile, winograd
    )
    specs, notes = default_specs(cfgs, peers=peers, device=device)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    bar = ProgressBar()
    try:
        report = run_bench(
            specs, settings, runs=runs, warmup=warmup, memory=memory, notes=notes, progress=bar
        )
    finally:
        bar.close()
    for note in report.notes[len(notes) :]:
        click.echo(f"note: {note}", err=True)
    click.echo(format_table(report))
    if json_path:
        write_json(report, json_path)
        click.echo(f"wrote {json_path}", err=True)
