"""Per layer: the direct convolution against Winograd F(2x2, 3x3) and F(4x4, 3x3), and the tile
``darkconv.nn.winograd.choose_tile`` picks: how a user re-measures that machine-specific choice.

Every distinct Winograd-eligible 3x3 stride-1 layer of the cfgs at their size (``--size``) is
timed alone on a random channels_last input (the format fused layers emit), best of ``--reps``.
With one thread (default) the clock is the thread's CPU time, which other jobs on a shared
machine barely disturb; with more threads it is wall time.

    python scripts/winograd_tiles.py yolov3 darknet53 --size 416 --batch 1
    python scripts/winograd_tiles.py yolov4 --size 416 --threads 2 --in-forward

``--in-forward`` times every eligible layer inside whole forwards instead (the whole model
direct, then every layer F(2x2), then F(4x4); each layer's median over ``--reps`` forwards), as
it runs in a detector: its weights come cold from memory, which a layer timed alone does not
show.  It ends with the whole forward under ``choose_tile``'s picks and under the per-layer
fastest ones.

If the fastest column often disagrees with ``choose_tile`` on your machine, adjust its
thresholds (minimum channels, tiles per product, ``_F2_FEW_TILES_MAX_U``) in
darkconv/nn/winograd.py.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from darkconv.nn.builder import build
from darkconv.nn.winograd import WinogradConvolutional, choose_tile, eligible


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cfgs", nargs="*", default=["yolov3", "darknet53"])
    ap.add_argument("--size", default=None, help="WxH or N (default: the cfg's own)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--in-forward", action="store_true", help="time layers inside whole forwards")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.thread_time if args.threads == 1 else time.perf_counter
    from darkconv.parse.size import parse_size

    size = parse_size(args.size) if args.size else None
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, fp32, ms")
    print(f"{'cfg':<12}{'layers':>7}  {'c x h x w -> filters':<24}{'direct':>8}{'F2':>8}{'F4':>8}"
          f"  fastest  choose_tile")  # fmt: skip
    for cfg in args.cfgs:
        model = build(cfg, size=size).fuse()
        if args.in_forward:
            _in_forward(cfg, model, args.batch, args.reps, clock)
            continue
        shapes: dict[tuple[tuple[int, int, int], int], list] = {}
        for layer in model.layers:
            if eligible(layer):
                key = (layer.in_shape, layer.out_shape[0])
                shapes.setdefault(key, [layer, 0])[1] += 1
        for (chw, _), (layer, count) in shapes.items():
            x = torch.rand(args.batch, *chw).contiguous(memory_format=torch.channels_last)
            times = []
            with torch.inference_mode():
                for mod in _variants(layer).values():
                    mod(x)
                    best = float("inf")
                    for _ in range(args.reps):
                        start = clock()
                        mod(x)
                        best = min(best, clock() - start)
                    times.append(best * 1e3)
            _row(cfg, str(count), layer, times, args.batch)


def _in_forward(
    cfg: str, model: nn.Module, batch: int, reps: int, clock: Callable[[], float]
) -> None:
    slots = [
        (parent, name, child)
        for parent in list(model.modules())
        for name, child in list(parent.named_children())
        if eligible(child)
    ]
    variants = [_variants(c) for _, _, c in slots]
    x = torch.rand(batch, *model.network.input)

    def run(picks: list[int | None]) -> tuple[list[float], float]:
        """Each slot's median ms inside the forward, and the whole forward's median ms."""
        for (parent, name, _), var, pick in zip(slots, variants, picks, strict=True):
            setattr(parent, name, var[pick])
        start: dict[int, float] = {}
        laps: list[list[float]] = [[] for _ in slots]
        hooks = []
        for i, var in enumerate(variants):
            mod = var[picks[i]]
            hooks.append(
                mod.register_forward_pre_hook(lambda m, a, i=i: start.__setitem__(i, clock()))
            )
            hooks.append(mod.register_forward_hook(
                lambda m, a, y, i=i: laps[i].append(clock() - start[i])))  # fmt: skip
        whole = []
        with torch.inference_mode():
            model(x)
            for _ in range(reps):
                t0 = clock()
                model(x)
                whole.append(clock() - t0)
        for hook in hooks:
            hook.remove()
        return [statistics.median(lap) * 1e3 for lap in laps], statistics.median(whole) * 1e3

    table = {t: run([t] * len(slots))[0] for t in _TILES}
    chosen = []
    fastest_picks: list[int | None] = []
    for i, (_, name, layer) in enumerate(slots):
        fastest, pick = _row(cfg, f"L{name}", layer, [table[t][i] for t in _TILES], batch)
        chosen.append(pick)
        fastest_picks.append(fastest)
    for label, picks in (("choose_tile's picks", chosen), ("fastest per layer", fastest_picks)):
        print(f"{cfg:<12} whole forward, {label}: {run(picks)[1]:.1f} ms")


_TILES = (None, 2, 4)  # the direct convolution, F(2x2, 3x3), F(4x4, 3x3)


def _variants(layer: nn.Module) -> dict[int | None, nn.Module]:
    return {t: layer if t is None else WinogradConvolutional(layer, t) for t in _TILES}


def _row(
    cfg: str, label: str, layer: nn.Module, times: list[float], batch: int
) -> tuple[int | None, int | None]:
    """Print one layer's times (ms, in ``_TILES`` order); return the fastest variant and
    ``choose_tile``'s pick."""
    c, h, w = layer.in_shape
    filters = layer.out_shape[0]
    fastest = _TILES[times.index(min(times))]
    pick = choose_tile(c, h, w, batch, filters)
    shape = f"{c}x{h}x{w} -> {filters}"
    print(f"{cfg:<12}{label:>7}  {shape:<24}{times[0]:>8.2f}{times[1]:>8.2f}{times[2]:>8.2f}"
          f"  {_tile(fastest):<7}  {_tile(pick)}")  # fmt: skip
    return fastest, pick


def _tile(pick: int | None) -> str:
    return "direct" if pick is None else f"F{pick}"


if __name__ == "__main__":
    main()
