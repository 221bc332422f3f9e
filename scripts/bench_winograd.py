"""Winograd against the direct convolution, per cfg, in one process (a benchmark, not a test).

For each cfg: build it with random weights (BN statistics randomised too), fuse it, copy it and
swap the copy's eligible layers for Winograd (``darkconv.winograd.winograd_model``); time both
eagerly, interleaved, and print the median latencies, their ratio and the largest relative
difference of any layer's output (max|diff| / max|direct|).

    python scripts/bench_winograd.py darknet53 yolov3 --size 0 --runs 7 --threads 2

``--size 0`` keeps each cfg's own input size.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from darkconv.bench.spec import resized_network
from darkconv.cli.run import relative_error
from darkconv.nn.builder import build
from darkconv.nn.winograd import WinogradConvolutional, winograd_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cfgs", nargs="*", default=["darknet53", "yolov3", "yolov3-tiny", "darknet19"])
    ap.add_argument("--size", type=int, default=0, help="input size (0: the cfg's own)")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 1, fp32, eager")
    print(f"{'cfg':<14}{'input':>10}{'layers':>8}{'direct ms':>11}{'winograd ms':>13}"
          f"{'ratio':>7}{'max rel diff':>14}")  # fmt: skip
    for cfg in args.cfgs:
        network = resized_network(cfg, args.size or None)
        direct = build(network).eval()
        with torch.no_grad():
            for m in direct.modules():
                if hasattr(m, "running_var"):
                    m.running_var.uniform_(0.5, 1.5)
            direct.fuse()
            wino = winograd_model(copy.deepcopy(direct))
            n = sum(isinstance(m, WinogradConvolutional) for m in wino.modules())
            x = torch.rand(1, *network.input)
            # every layer's output (a classifier's softmax alone can hide differences)
            ref, out = direct.darknet_outputs(x), wino.darknet_outputs(x)
            diff = max(relative_error(out[k], ref[k]) for k in ref)
            times: dict[str, list[float]] = {"direct": [], "winograd": []}
            for model in (direct, wino):  # warm-up
                model(x)
            for _ in range(args.runs):
                for name, model in (("direct", direct), ("winograd", wino)):
                    t = time.perf_counter()
                    model(x)
                    times[name].append((time.perf_counter() - t) * 1e3)
        d, w = (statistics.median(times[k]) for k in ("direct", "winograd"))
        size = f"{network.input[2]}x{network.input[1]}"
        print(f"{cfg:<14}{size:>10}{n:>8}{d:>11.1f}{w:>13.1f}{w / d:>7.2f}{diff:>14.1e}")


if __name__ == "__main__":
    main()
