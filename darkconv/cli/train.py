"""``darkconv train``: Darknet's exact training step on raw batches (``--raw``), the
learning-rate schedule of a cfg (``--schedule``), and the training job over a dataset
(``--data FILE.data|DIR``, :mod:`darkconv.cli.train_data`)."""

from __future__ import annotations

from typing import Any

import click

from darkconv.cli.options import device_option
from darkconv.cli.train_data import data_options, run_data_training
from darkconv.errors import DarkconvError

__all__ = ["train"]


def _batch_nums(text: str) -> list[int]:
    try:
        nums = [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise DarkconvError(f"--schedule {text!r}: expected comma-separated integers") from None
    if not nums or any(n < 0 for n in nums):
        raise DarkconvError(f"--schedule {text!r}: expected non-negative batch numbers")
    return nums


def _schedule(cfg: str, text: str, srand: int | None) -> None:
    from darkconv.parse.graph import load_network
    from darkconv.train.hyper import GlibcRand, TrainHyper, get_current_rate

    hyper = TrainHyper.from_network(load_network(cfg))
    # glibc's initial state is srand(1); policy=random draws one rand() per rate, in order.
    rand = GlibcRand(1 if srand is None else srand)
    for n in _batch_nums(text):
        rate = get_current_rate(hyper, n * hyper.batch, rand)
        click.echo(f"{n} {rate:.9g}")


def _raw(
    cfg: str, weights: str | None, raw: tuple[str, str], iterations: int, output: str,
    semantics: str, device: str, srand: int | None,
) -> None:  # fmt: skip
    import numpy as np

    from darkconv.nn.builder import load
    from darkconv.train import (
        GlibcRand,
        TrainHyper,
        install_glibc_rand,
        make_optimizer,
        train_step,
    )
    from darkconv.weights import write_weights
    from darkconv.weights.atomic import check_output_path

    check_output_path(output)
    x, y = (np.load(p, allow_pickle=False).astype(np.float32, copy=False) for p in raw)
    model = load(cfg, weights, device=device)
    try:
        model.set_semantics(semantics)
    except ValueError as exc:
        raise DarkconvError(str(exc)) from None
    rand = None
    if srand is not None:  # replay Darknet's rand() stream (srand(N) right before the first call)
        rand = GlibcRand(srand)
        install_glibc_rand(model, rand)
    hyper = TrainHyper.from_network(model.network)
    opt, sched = make_optimizer(model, hyper, rand=rand)
    for k in range(1, iterations + 1):
        res = train_step(model, x, y, opt, sched, hyper=hyper)
        rate = f"{res.lr:.9g}" if res.lr is not None else "-"
        click.echo(f"{k}: loss {res.loss:.9g}, rate {rate}, seen {res.seen}")
    write_weights(output, {k: v.cpu() for k, v in model.state_dict().items()}, model.network)
    click.echo(f"wrote {output} (seen {model.seen})")


@click.command("train")
@click.argument("cfg")
@click.option(
    "--weights",
    "weights",
    metavar="INIT.weights",
    help="Initial weights (default: Darknet-like init).",
)
@click.option(
    "--raw",
    nargs=2,
    metavar="X.npy Y.npy",
    help="Train on this fixed batch (Darknet's raw input rows and truth rows).",
)
@click.option(
    "--iterations",
    "-n",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="train_network calls with the raw batch.",
)
@click.option(
    "-o",
    "--output",
    metavar="OUT.weights",
    help="Where to write the trained weights (header seen included).",
)
@click.option(
    "--semantics",
    default="gpu",
    show_default=True,
    help="cpu (stock CPU Darknet) or gpu (CUDA/cuDNN build); cpu+region etc. mixes one GPU mechanism in.",
)
@click.option(
    "--schedule", metavar="N,N,...", help="Print the learning rate at these batch numbers and exit."
)
@click.option(
    "--srand",
    type=int,
    default=None,
    help="Replay glibc rand() from srand(N) (dropout masks, policy=random).",
)
@device_option(help="Where to train.")
@data_options
def train(
    cfg: str, weights: str | None, raw: tuple[str, str] | None, iterations: int, output: str | None,
    semantics: str, schedule: str | None, srand: int | None, device: str, data: str | None,
    **job: Any,
) -> int | None:  # fmt: skip
    """Train CFG exactly like Darknet's train_network, or print its learning-rate schedule.

    \b
    darkconv train CFG --weights INIT.weights --raw X.npy Y.npy --iterations K -o OUT.weights
    darkconv train CFG --schedule 0,100,1000
    darkconv train CFG --data FILE.data|DIR [--weights W] [--clear] [-b N] [--chart C.png] [--map N]
    torchrun --nproc_per_node=N -m darkconv train CFG --data FILE.data ...
    """
    if schedule is not None:
        _schedule(cfg, schedule, srand)
        return None
    if data is not None:
        if raw is not None:
            raise click.UsageError("give --data or --raw, not both")
        return run_data_training(
            cfg, data, weights=weights, device=device, semantics=semantics, **job
        )
    if raw is None:
        raise DarkconvError(
            "darkconv train: give --data FILE.data, --raw X.npy Y.npy or --schedule N,..."
        )
    if output is None:
        raise DarkconvError("darkconv train --raw: give -o OUT.weights")
    _raw(cfg, weights, raw, iterations, output, semantics, device, srand)
    return None
