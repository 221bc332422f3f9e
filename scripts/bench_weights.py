"""Benchmark ``darkconv weights`` on a full-size darknet53.weights against a floor process.

Makes a random darknet53.weights (166,582,580 bytes, sized from cfg/darknet53.cfg) in a temporary
folder, then times, in interleaved repetitions within one run:

* ``darkconv weights darknet53.weights -o darknet53.pth`` (the whole command, a fresh process)
* floor: a process that imports torch, reads the file with numpy and ``torch.save``s it as one tensor
* ``darkconv weights darknet53.pth -o back.weights`` (and checks the bytes are identical)
* floor: a process that imports torch, ``torch.load``s the one-tensor file and writes it with numpy

Wall time is the median over the repetitions; peak RSS comes from ``os.wait4`` for each child.
Targets (issue 4): the command <= 1.3x its floor, peak memory <= 2.5x the file size.

    python scripts/bench_weights.py [--reps 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import filecmp
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

FLOOR_SAVE = (
    "import sys, numpy as np, torch\n"
    "a = np.fromfile(sys.argv[1], dtype=np.float32)\n"
    "torch.save(torch.from_numpy(a), sys.argv[2])\n"
)
FLOOR_LOAD = (
    "import sys, numpy as np, torch\n"
    "t = torch.load(sys.argv[1], weights_only=True, mmap=True)\n"
    "t.numpy().tofile(sys.argv[2])\n"
)


def make_weights(path: str, seed: int = 0) -> int:
    """A random darknet53.weights of the size the shipped cfg implies (0.2.0 header)."""
    from darkconv.parse.graph import load_network
    from darkconv.weights.io import DEFAULT_HEADER, weights_bytes

    net = load_network("darknet53")
    n = (weights_bytes(net) - DEFAULT_HEADER.header_bytes) // 4
    body = np.random.default_rng(seed).standard_normal(n, dtype=np.float32)
    body *= np.float32(0.05)
    with open(path, "wb") as f:
        f.write(DEFAULT_HEADER.to_bytes())
        body.tofile(f)
    return os.path.getsize(path)


def run(cmd: list[str], out: str) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one child process; ``out`` is removed first."""
    if os.path.exists(out):
        os.remove(out)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode() if proc.stderr else ""
    if status != 0:
        raise SystemExit(f"command failed ({status}): {' '.join(cmd)}\n{err}")
    return wall, usage.ru_maxrss * 1024  # Linux reports KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--keep", default=None, help="work in this folder instead of a temporary one")
    args = ap.parse_args()

    import torch

    folder = args.keep or tempfile.mkdtemp(prefix="darkconv-bench-")
    os.makedirs(folder, exist_ok=True)
    w = os.path.join(folder, "darknet53.weights")
    size = make_weights(w)
    pth = os.path.join(folder, "darknet53.pth")
    back = os.path.join(folder, "back.weights")
    floor_pt = os.path.join(folder, "floor.pt")
    floor_bin = os.path.join(folder, "floor.bin")
    py = sys.executable
    jobs = {
        "weights -> .pth": ([py, "-m", "darkconv", "weights", w, "-o", pth], pth),
        "floor: numpy read + torch.save": ([py, "-c", FLOOR_SAVE, w, floor_pt], floor_pt),
        ".pth -> weights": (
            [py, "-m", "darkconv", "weights", pth, "-o", back, "--cfg", "darknet53"],
            back,
        ),
        "floor: torch.load + numpy write": ([py, "-c", FLOOR_LOAD, floor_pt, floor_bin], floor_bin),
    }
    results: dict[str, list[tuple[float, int]]] = {k: [] for k in jobs}
    for cmd, out in jobs.values():  # warm-up: page cache, .pyc files
        run(cmd, out)
    for _ in range(args.reps):
        for name, (cmd, out) in jobs.items():
            results[name].append(run(cmd, out))
    if not filecmp.cmp(w, back, shallow=False):
        raise SystemExit("round trip is not byte-identical")

    med = {k: statistics.median(t for t, _ in v) for k, v in results.items()}
    rss = {k: max(r for _, r in v) for k, v in results.items()}
    floors = {
        "weights -> .pth": "floor: numpy read + torch.save",
        ".pth -> weights": "floor: torch.load + numpy write",
    }
    print(f"file: {size:,} bytes; {args.reps} interleaved repetitions, median wall time")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"torch {torch.__version__}, numpy {np.__version__}"
    )
    print()
    print("| command | wall s (median) | vs floor | peak RSS MiB | RSS / file size |")
    print("|---|---:|---:|---:|---:|")
    for name in jobs:
        ratio = f"{med[name] / med[floors[name]]:.2f}x" if name in floors else "1.00x"
        print(
            f"| {name} | {med[name]:.2f} | {ratio} | {rss[name] / 2**20:.0f} | {rss[name] / size:.2f}x |"
        )
    if not args.keep:
        for p in (w, pth, back, floor_pt, floor_bin):
            if os.path.exists(p):
                os.remove(p)
        os.rmdir(folder)


if __name__ == "__main__":
    main()
