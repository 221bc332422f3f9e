"""Decode time of the exact (stb_image) JPEG decoder against Pillow, interleaved, medians.

    OMP_NUM_THREADS=1 python scripts/bench_jpeg.py fixtures/data/dog.jpg [more.jpg ...] [-n 31]

Per file, three decoders run back to back in every round (so machine load hits them alike):
``load_image(path, decoder="stb")`` (exact), ``load_image(path, decoder="pillow")`` (the same
``(3, h, w)`` uint8 planes from Pillow) and bare Pillow
(``np.asarray(Image.open(path).convert("RGB"))``, HWC, no planar copy).  Prints median wall
and CPU milliseconds and the exact decoder's ratios to both.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
from PIL import Image

from darkconv.apps.imread import load_image


def _bare_pillow(path: str) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("-n", "--rounds", type=int, default=31)
    args = ap.parse_args()
    print("file                        size     clock  stb ms  pillow ms  bare ms   /pillow  /bare")
    for path in args.files:
        shape = load_image(path).shape
        runs: dict[str, Callable[[str], object]] = {
            "stb": lambda p: load_image(p, decoder="stb"),
            "pillow": lambda p: load_image(p, decoder="pillow"),
            "bare": _bare_pillow,
        }
        wall: dict[str, list[float]] = {k: [] for k in runs}
        cpu: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(args.rounds):
            for name, run in runs.items():
                w0, c0 = time.perf_counter(), time.process_time()
                run(path)
                wall[name].append(time.perf_counter() - w0)
                cpu[name].append(time.process_time() - c0)
        size = f"{shape[2]}x{shape[1]}"
        for clock, times in (("wall", wall), ("cpu", cpu)):
            s, p, b = (statistics.median(times[k]) * 1e3 for k in runs)
            name = path.split("/")[-1] if clock == "wall" else ""
            print(
                f"{name:27s} {size if clock == 'wall' else '':9s} {clock:5s} {s:7.2f} {p:10.2f}"
                f" {b:8.2f} {s / p:8.2f} {s / b:6.2f}"
            )


if __name__ == "__main__":
    main()
