"""The training job: ``darknet classifier train`` / ``darknet detector train`` over a dataset.

A thin loop over the exact step (:func:`darkconv.train.train_step`, one Darknet
``train_network`` call per batch of ``batch`` images): data from
:mod:`darkconv.train.loader` workers, Darknet's log line, checkpoints at Darknet's marks
(:mod:`darkconv.train.checkpoint`), validation and the chart.  It never prints: every line
goes to the ``report`` callback (the CLI prints them; rank > 0 gets none).

Resume: the iteration is ``seen / batch`` from the weights header (``get_current_batch``),
so ``--weights BACKUP/NAME.backup`` continues the count and the learning-rate schedule;
``clear`` starts again from 0 (``load_network(cfg, weights, clear)``).  Darknet does not store
the momentum buffers, so neither does a ``.backup``: they restart at 0 as in Darknet.

Ctrl-C: the first SIGINT lets the current step finish, writes ``BACKUP/NAME.backup`` and
returns; a second one interrupts at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from darkconv.errors import DarkconvError
from darkconv.train.augment import Augment
from darkconv.train.checkpoint import base_name, conv_cutoff, final_name, marks_for, save_checkpoint
from darkconv.train.data import DataSpec

__all__ = ["BatchLog", "Report", "TrainOptions", "TrainResult", "net_overrides", "train"]


@dataclass(frozen=True)
class TrainOptions:
    weights: str | None = None
    clear: bool = False
    device: str = "auto"
    workers: int = 2
    seed: int = 0
    batch: int | None = None  # -b: replaces [net] batch
    max_batches: int | None = None  # replaces [net] max_batches
    semantics: str = "gpu"
    chart: str | None = None
    map_every: int = 0  # validation every N batches (0: classifier at each epoch, detector off)
    amp: bool = False
    valid_batch: int = 16
    decoder: str = "stb"  # JPEG decoder of the training images (apps.imread.DECODERS)


@dataclass(frozen=True)
class BatchLog:
    """One finished batch: the values of Darknet's log line, and the line itself."""

    batch_num: int
    max_batches: int
    loss: float
    avg_loss: float
    rate: float
    seconds: float
    images: int
    seen: int
    line: str


@dataclass(frozen=True)
class TrainResult:
    final: str | None
    interrupted: bool
    batch_num: int
    seen: int
    avg_loss: float
    saved: tuple[str, ...]
    valid: tuple[str, ...]  # the last validation's lines


Report = Callable[[Any], None]  # gets BatchLog objects and str messages


def net_overrides(network: Any, values: dict[str, Any]) -> Any:
    """The network with some ``[net]`` options replaced (``-b``, ``--max-batches``)."""
    from darkconv.parse.cfg import write_sections
    from darkconv.parse.graph import parse_network

    if not values:
        return network
    cfg = [(k, v) for k, v in network.net_cfg if k not in values]
    cfg += [(k, str(v)) for k, v in values.items()]
    sections = [("net", cfg)] + [(la.type, list(la.cfg)) for la in network.layers]
    return parse_network(write_sections(sections), path=network.path or "<cfg>")


def _augment(network: Any, kind: str) -> Augment:
    last = network.layers[-1].options
    jitter = float(last.get("jitter", 0.2) or 0.2) if kind == "detector" else 0.2
    # training-only [net] options stay raw strings in net_cfg (the registry does not type them)
    net = {k: v for k, v in network.net.items() if v is not None}
    for key, raw in network.net_cfg:
        net.setdefault(key, raw)
    return Augment.from_net(net, jitter)


def _log_line(kind: str, b: int, epoch: float, loss: float, avg: float, rate: float,
              secs: float, images: int) -> str:  # fmt: skip
    if kind == "classifier":  # train_classifier's printf
        return f"{b}, {epoch:.3f}: {loss:f}, {avg:f} avg, {rate:f} rate, {secs:f} seconds, {images} images"
    return f"{b}: {loss:f}, {avg:f} avg, {rate:f} rate, {secs:f} seconds, {images} images"


class _Interrupt:
    """First SIGINT: finish the step, save, stop.  Second: KeyboardInterrupt."""

    def __init__(self) -> None:
        self.requested = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(_sig: int, _frame: Any) -> None:
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True

        old = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, old)


def _load_model(cfg_network: Any, opts: TrainOptions, device: Any) -> Any:
    from darkconv.nn.builder import build, load

    if opts.weights is None:
        model = build(cfg_network)
    else:
        model = load(cfg_network, opts.weights, cutoff=conv_cutoff(opts.weights))
    if opts.clear:
        model.header[3] = 0
    return model.to(device)


def train(
    cfg: str,
    spec: DataSpec,
    opts: TrainOptions,
    report: Report = lambda _item: None,
    dist: Any = None,
) -> TrainResult:
    """Train ``cfg`` on ``spec`` until ``max_batches`` (see the module docstring)."""
    import torch
    from torch.utils.data import DataLoader

    from darkconv.nn.builder import pick_device
    from darkconv.parse.graph import load_network
    from darkconv.train import TrainHyper, get_current_rate, make_optimizer, train_step, truth_size
    from darkconv.train.chart import Chart
    from darkconv.train.ddp import averaged, broadcast_model
    from darkconv.train.evaluate import classifier_topk, detector_map
    from darkconv.train.loader import DarknetBatches, TrainSet, checked, collate, loader_kwargs

    rank = dist.rank if dist is not None else 0
    say: Report = report if rank == 0 else (lambda _item: None)
    over: dict[str, Any] = {}
    if opts.batch is not None:
        over["batch"] = opts.batch
    if opts.max_batches is not None:
        over["max_batches"] = opts.max_batches
    network = net_overrides(load_network(cfg), over)
    device = dist.device if dist is not None else pick_device(opts.device)
    if opts.amp and device.type != "cuda":
        raise DarkconvError("--amp needs a CUDA device")
    model = _load_model(network, opts, device)
    if dist is not None:
        broadcast_model(model)
    hyper = TrainHyper.from_network(model.network)
    optimizer, scheduler = make_optimizer(model, hyper)
    if dist is not None:
        optimizer = averaged(optimizer, dist)
    model.train()
    # batched convolutions while training (batch-1 bit-exactness only matters for inference)
    model.batch_invariant = False

    kind = spec.kind
    _, h, w = model.network.input
    n_train = len(spec.train)
    imgs = hyper.batch
    seen = int(model.seen)
    batch_num = seen // imgs
    max_batches = int(hyper.max_batches)
    remaining = max(0, max_batches - batch_num) if max_batches else 10**9
    last = model.network.layers[-1].options
    num_boxes = truth_size(model.network) // 5 if kind == "detector" else 0
    trainset = TrainSet(spec.train, kind, _augment(model.network, kind), spec.classes, num_boxes,
                        seed=opts.seed + 1000 * rank, decoder=opts.decoder)  # fmt: skip
    sampler = DarknetBatches(
        n_train, imgs, remaining, (w, h), opts.seed, start_batch=batch_num,
        random_resize=kind == "detector" and bool(int(last.get("random", 0) or 0)),
        max_batches=max_batches, rank=rank,
    )  # fmt: skip
    loader = DataLoader(trainset, batch_sampler=sampler, collate_fn=collate,
                        **loader_kwargs(opts.workers))  # fmt: skip
    base = base_name(cfg)
    if rank == 0:
        os.makedirs(spec.backup, exist_ok=True)
    metric = "mAP@0.5" if kind == "detector" else "top-1"
    chart = Chart(opts.chart, base, max_batches, metric) if (opts.chart and rank == 0) else None
    saved: list[str] = []
    valid_lines: tuple[str, ...] = ()

    def save(name: str) -> None:
        if rank == 0:
            path = os.path.join(spec.backup, name)
            saved.append(save_checkpoint(model, path, int(model.seen)))
            say(f"Saving weights to {path}")

    def validate() -> tuple[str, ...]:
        if not spec.valid or rank != 0:
            return ()
        if kind == "detector":
            res = detector_map(model, spec.valid, spec.names, batch=opts.valid_batch,
                               workers=min(opts.workers, 2))  # fmt: skip
            if chart is not None:
                chart.add_map(batch_num, res.mean_ap)
            return tuple(res.lines())
        k = max(1, min(5, spec.top if spec.top > 1 else 5, spec.classes))
        top = classifier_topk(model, spec.valid, k, batch=opts.valid_batch)
        if chart is not None:
            chart.add_map(batch_num, top.top1)
        return (f"valid: top-1 {top.top1 * 100:.2f}%, top-{k} {top.topk * 100:.2f}% "
                f"({top.count} images)",)  # fmt: skip

    say(f"{base}: {kind}, {n_train} training images, batch {imgs} "
        f"(subdivisions {hyper.subdivisions}), batch {batch_num} of {max_batches}, "
        f"learning rate {hyper.learning_rate:g}, momentum {hyper.momentum:g}, decay {hyper.decay:g}")  # fmt: skip
    avg_loss = -1.0
    epoch = seen // n_train
    interrupted = False
    validated = -1
    stop = _Interrupt()
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if opts.amp
                else contextlib.nullcontext())  # fmt: skip
    sized = {(h, w): model.network}
    with stop.installed():
        for item in loader:
            x, y = checked(item)
            size = (int(x.shape[2]), int(x.shape[3]))
            if size not in sized:  # random=1: resize_network, the losses read net w/h from it
                sized[size] = net_overrides(network, {"height": size[0], "width": size[1]})
            model.network = sized[size]
            start = time.perf_counter()
            with autocast:
                res = train_step(model, x.to(device), y.to(device), optimizer, scheduler,
                                 semantics=opts.semantics)  # fmt: skip
            seen = int(res.seen)
            batch_num = seen // imgs
            loss = float(res.loss)
            avg_loss = loss if avg_loss < 0 else avg_loss * 0.9 + loss * 0.1
            rate = float(get_current_rate(hyper, seen))
            secs = time.perf_counter() - start
            images = seen if kind == "classifier" else batch_num * imgs
            line = _log_line(kind, batch_num, seen / n_train, loss, avg_loss, rate, secs, images)
            say(BatchLog(batch_num, max_batches, loss, avg_loss, rate, secs, images, seen, line))
            if chart is not None:
                chart.add_loss(batch_num, avg_loss)
            new_epoch = seen // n_train
            marks = marks_for(kind, batch_num, epoch, new_epoch)
            if marks.numbered is not None:
                save(f"{base}_{marks.numbered}.weights")
            if marks.backup:
                save(f"{base}.backup")
            due = (opts.map_every and batch_num % opts.map_every == 0) or (
                not opts.map_every and kind == "classifier" and new_epoch > epoch
            )
            epoch = new_epoch
            if due:
                validated = batch_num
                valid_lines = validate()
                for text in valid_lines:
                    say(text)
            if chart is not None:
                chart.maybe_write(batch_num)
            if stop.requested:
                interrupted = True
                break
    model.network = sized[(h, w)]
    final = None
    if interrupted:
        save(f"{base}.backup")
        say("interrupted: the state is in the .backup above; resume with --weights it")
    else:
        final = os.path.join(spec.backup, final_name(kind, base))
        save(final_name(kind, base))
        if spec.valid and (opts.map_every or kind == "classifier") and validated != batch_num:
            valid_lines = validate()
            for text in valid_lines:
                say(text)
    if chart is not None:
        chart.write()
    return TrainResult(final, interrupted, batch_num, int(model.seen), avg_loss,
                       tuple(saved), valid_lines)  # fmt: skip
