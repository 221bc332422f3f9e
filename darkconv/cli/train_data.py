"""``darkconv train CFG --data FILE.data|DIR``: the training job (``darknet classifier train`` /
``darknet detector train``), wired into ``cli/train.py``'s ``train`` command.

Prints Darknet's per-iteration line on stdout and, when stderr is a terminal, a progress bar
under it.  Under ``torchrun`` (``WORLD_SIZE`` > 1) every rank trains and only rank 0 prints
and writes.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

import click

__all__ = ["data_options", "run_data_training"]


def data_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options of the ``--data`` mode (``--weights``, ``--device``, ``--semantics`` are the
    command's own)."""
    opts = [
        click.option("--data", "data", type=click.Path(),
                     help="Darknet .data file, or an ImageFolder root (DIR/train/CLASS/*, DIR/val/CLASS/*).",  # noqa: E501
                     ),
        click.option("--clear", is_flag=True, help="Start the iteration count at 0 (Darknet's -clear)."),
        click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True,
                     help="Data-loading worker processes."),
        click.option("-b", "--batch", "batch", type=click.IntRange(min=1), default=None,
                     help="Images per iteration (replaces [net] batch)."),
        click.option("--max-batches", type=click.IntRange(min=0), default=None,
                     help="Replaces [net] max_batches."),
        click.option("--seed", type=int, default=0, show_default=True,
                     help="Seed of the image draws and augmentation."),
        click.option("--chart", type=click.Path(dir_okay=False), default=None,
                     help="Write the loss (and --map) curve to this PNG (needs matplotlib)."),
        click.option("--map", "map_every", type=click.IntRange(min=0), default=0,
                     help="Validate every N iterations: mAP@0.5 (detector) or top-1 (classifier)."),
        click.option("--backup", type=click.Path(file_okay=False), default=None,
                     help="Checkpoint folder (replaces the .data file's backup=)."),
        click.option("--skip-bad", is_flag=True,
                     help="Skip list entries whose image or label file is unusable."),
        click.option("--amp", is_flag=True, help="bfloat16 autocast (CUDA only)."),
        click.option("--decoder", type=click.Choice(["stb", "pillow"]), default="stb",
                     show_default=True,
                     help="JPEG decoder of the training images: stb (Darknet's, exact) or pillow (faster)."),  # noqa: E501
    ]  # fmt: skip
    for opt in reversed(opts):
        f = opt(f)
    return f


class _Printer:
    """Darknet's lines on stdout, a one-line progress bar on a terminal's stderr."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.start = time.monotonic()
        self.first: int | None = None
        self.bar = False

    def _clear(self) -> None:
        if self.bar:
            sys.stderr.write("\r\033[K")
            self.bar = False

    def __call__(self, item: Any) -> None:
        from darkconv.train.loop import BatchLog

        self._clear()
        if not isinstance(item, BatchLog):
            click.echo(item)
            return
        click.echo(item.line)
        sys.stdout.flush()  # one line per iteration, also into a pipe or a log file
        if not self.tty or not item.max_batches:
            return
        if self.first is None:  # the rate counts from the first finished batch
            self.first, self.start = item.batch_num, time.monotonic()
        done = min(1.0, item.batch_num / item.max_batches)
        elapsed = time.monotonic() - self.start
        speed = "-"
        eta = "-"
        if item.batch_num > self.first and elapsed > 0:
            rate = (item.batch_num - self.first) / elapsed
            left = int(max(0, item.max_batches - item.batch_num) / rate)
            speed, eta = f"{rate:.2f}", f"{left // 60}:{left % 60:02d}"
        filled = int(30 * done)
        sys.stderr.write(
            f"[{'#' * filled}{'.' * (30 - filled)}] {item.batch_num}/{item.max_batches} "
            f"{done * 100:5.1f}%  avg {item.avg_loss:.4f}  {speed} it/s  ETA {eta}"
        )
        sys.stderr.flush()
        self.bar = True

    def close(self) -> None:
        self._clear()


def run_data_training(
    cfg: str,
    data: str,
    *,
    weights: str | None,
    device: str,
    semantics: str,
    clear: bool,
    workers: int,
    batch: int | None,
    max_batches: int | None,
    seed: int,
    chart: str | None,
    map_every: int,
    backup: str | None,
    skip_bad: bool,
    amp: bool,
    decoder: str,
) -> int:
    """Resolve the dataset, train, print; returns the exit code (130 after Ctrl-C)."""
    from darkconv.apps.steps import HEAD_TYPES
    from darkconv.parse.graph import load_network
    from darkconv.train.data import data_spec, image_folder_spec
    from darkconv.train.ddp import init_distributed
    from darkconv.train.loop import TrainOptions, train

    network = load_network(cfg)
    heads = [la for la in network.layers if la.type in HEAD_TYPES]
    kind = "detector" if heads else "classifier"
    if os.path.isdir(data):
        if kind == "detector":
            raise click.UsageError("--data DIR (ImageFolder) is for classifiers; give a .data file")
        spec = image_folder_spec(data, backup or "backup")
    else:
        hint = int(heads[-1].options["classes"]) if heads else None
        spec = data_spec(data, kind, hint, skip_bad=skip_bad)
    if backup is not None:
        from dataclasses import replace

        spec = replace(spec, backup=backup)
    dist = init_distributed(device)
    rank0 = dist is None or dist.rank == 0
    for message in spec.skipped if rank0 else ():
        click.echo(f"warning: skipped {message}", err=True)
    opts = TrainOptions(
        weights=weights, clear=clear, device=device, workers=workers, seed=seed, batch=batch,
        max_batches=max_batches, semantics=semantics, chart=chart, map_every=map_every, amp=amp,
        decoder=decoder,
    )  # fmt: skip
    printer = _Printer()
    try:
        result = train(cfg, spec, opts, printer, dist)
    finally:
        printer.close()
        if dist is not None:
            import torch.distributed as td

            td.destroy_process_group()
    return 130 if result.interrupted else 0
