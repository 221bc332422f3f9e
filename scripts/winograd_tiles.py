"""Per layer: the direct convolution against Winograd F(2x2, 3x3) and F(4x4, 3x3), and the tile
``darkconv.nn.winograd.choose_tile`` picks: how a user re-measures that machine-specific choice.

Every distinct Winograd-eligible 3x3 stride-1 layer of the cfgs at their size (``--size``) is
timed alone on a random channels_last input (the format fused layers emit), best of ``--reps``.
With one thread (default) the clock is the thread's CPU time, which other jobs on a shared
machine barely disturb; with more threads it is wall time.

    python scripts/winograd_tiles.py yolov3 darknet53 --size 416 --batch 1

If the fastest column often disagrees with ``choose_tile`` on your machine, adjust its
thresholds (minimum channels, tiles per product) in darkconv/nn/winograd.py.
"""

from __future__ import annotations

import argparse
import time

import torch

from darkconv.nn.builder import build
from darkconv.nn.winograd import WinogradConvolutional, choose_tile, eligible


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cfgs", nargs="*", default=["yolov3", "darknet53"])
    ap.add_argument("--size", default=None, help="WxH or N (default: the cfg's own)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
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
        shapes: dict[tuple[tuple[int, int, int], int], list] = {}
        for layer in model.layers:
            if eligible(layer):
                key = (layer.in_shape, layer.out_shape[0])
                shapes.setdefault(key, [layer, 0])[1] += 1
        for (chw, filters), (layer, count) in shapes.items():
            x = torch.rand(args.batch, *chw).contiguous(memory_format=torch.channels_last)
            times = []
            with torch.inference_mode():
                for mod in (
                    layer,
                    WinogradConvolutional(layer, 2),
                    WinogradConvolutional(layer, 4),
                ):
                    mod(x)
                    best = float("inf")
                    for _ in range(args.reps):
                        start = clock()
                        mod(x)
                        best = min(best, clock() - start)
                    times.append(best * 1e3)
            fastest = ["direct", "F2", "F4"][times.index(min(times))]
            pick = choose_tile(chw[0], chw[1], chw[2], args.batch)
            shape = f"{'x'.join(map(str, chw))} -> {filters}"
            print(f"{cfg:<12}{count:>7}  {shape:<24}{times[0]:>8.2f}{times[1]:>8.2f}{times[2]:>8.2f}"
                  f"  {fastest:<7}  {'direct' if pick is None else f'F{pick}'}")  # fmt: skip


if __name__ == "__main__":
    main()
