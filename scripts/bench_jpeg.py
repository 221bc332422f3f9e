"""Decode time of the exact (stb_image) JPEG decoder against Pillow, interleaved, medians.

    OMP_NUM_THREADS=1 python scripts/bench_jpeg.py fixtures/data/dog.jpg [more.jpg ...] [-n 31]

Prints, per file, the median wall and CPU times of ``darkconv.apps.imread.load_image`` with
``decoder="stb"`` and ``decoder="pillow"`` (both return the same ``(3, h, w)`` uint8 layout) and
their ratio.  Each round runs both decoders back to back, so machine load hits both alike.
"""

from __future__ import annotations

import argparse
import statistics
import time

from darkconv.apps.imread import load_image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("-n", "--rounds", type=int, default=31)
    args = ap.parse_args()
    print(
        f"{'file':28s} {'size':>9s}  {'stb ms':>8s} {'pillow ms':>9s} {'ratio':>6s}  (cpu: stb, pillow, ratio)"
    )
    for path in args.files:
        shape = load_image(path).shape
        wall: dict[str, list[float]] = {"stb": [], "pillow": []}
        cpu: dict[str, list[float]] = {"stb": [], "pillow": []}
        for _ in range(args.rounds):
            for decoder in ("stb", "pillow"):
                w0, c0 = time.perf_counter(), time.process_time()
                load_image(path, decoder)
                wall[decoder].append(time.perf_counter() - w0)
                cpu[decoder].append(time.process_time() - c0)
        ws, wp = (statistics.median(wall[d]) * 1e3 for d in ("stb", "pillow"))
        cs, cp = (statistics.median(cpu[d]) * 1e3 for d in ("stb", "pillow"))
        size = f"{shape[2]}x{shape[1]}"
        print(
            f"{path.split('/')[-1]:28s} {size:>9s}  {ws:8.2f} {wp:9.2f} {ws / wp:6.2f}  ({cs:.2f}, {cp:.2f}, {cs / cp:.2f})"
        )


if __name__ == "__main__":
    main()
