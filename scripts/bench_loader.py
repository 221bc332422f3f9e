"""Images per second of darkconv's training loader alone (decode + Darknet augmentation +
collate, in torch.utils.data workers), no model.

    python scripts/bench_loader.py [--workers 0,1,2] [--batches 20]

Three cases: the baseline (decode + letterbox to 416, no augmentation), a classifier at 224 (ImageNet-like 500x375 JPEGs, darknet53's [net] augmentation) and
a detector at 416 (yolov3-tiny: jitter .2, hue .1, saturation/exposure 1.5, boxes), on
synthetic images written to a temporary folder.  Prints one line per case and worker count:
images per second from the first batch to the last.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from PIL import Image
from torch.utils.data import DataLoader

from darkconv.errors import Span
from darkconv.train.augment import Augment
from darkconv.train.data import Sample
from darkconv.train.loader import DarknetBatches, TrainSet, collate, loader_kwargs


def _images(folder: str, n: int) -> list[Sample]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        path = os.path.join(folder, f"{i}.jpg")
        Image.fromarray(rng.integers(0, 255, (375, 500, 3), dtype=np.uint8)).save(path, quality=90)
        boxes = np.array([[i % 20, 0.5, 0.5, 0.3, 0.4], [1, 0.2, 0.3, 0.1, 0.2]], np.float32)
        out.append(Sample(path, Span(path), label=i % 10, hot=(i % 10,), boxes=boxes))
    return out


class _DecodeOnly(TrainSet):
    """The baseline: decode + letterbox to the network size, no augmentation."""

    def __getitem__(self, key: tuple[int, int, int]) -> tuple[object, object, str | None]:
        from darkconv.apps.image import letterbox_image, load_image

        i, w, h = key
        return (
            letterbox_image(load_image(self.samples[i].path), w, h),
            np.zeros(1, np.float32),
            None,
        )


def run(
    samples: list[Sample], kind: str, size: int, batch: int, workers: int, batches: int
) -> float:
    if kind == "decode-only":
        ds: TrainSet = _DecodeOnly(samples, "classifier", Augment(), 1)
    elif kind == "detector":
        aug = Augment(jitter=0.2, hue=0.1, saturation=1.5, exposure=1.5)
    else:
        aug = Augment(angle=7, aspect=0.75, hue=0.1, saturation=0.75, exposure=0.75,
                      min_ratio=256 / 224, max_ratio=448 / 224)  # fmt: skip
    if kind != "decode-only":
        ds = TrainSet(samples, kind, aug, 1000 if kind == "classifier" else 20, 90)
    sampler = DarknetBatches(len(samples), batch, batches, (size, size), 0)
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=collate, **loader_kwargs(workers))
    stamps = [time.perf_counter() for _ in loader]
    # the rate after the first batch (worker start-up excluded), over the whole run: a median
    # of per-batch rates would count batches already prefetched as instantaneous
    return (len(stamps) - 1) * batch / (stamps[-1] - stamps[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", default="0,1,2")
    ap.add_argument("--batches", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        samples = _images(tmp, 64)
        cases = (("decode-only", 416, 16), ("classifier", 224, 16), ("detector", 416, 16))
        for kind, size, batch in cases:
            for w in (int(v) for v in args.workers.split(",")):
                rate = run(samples, kind, size, batch, w, args.batches)
                print(f"{kind:10s} {size}x{size} batch {batch}: workers {w}: {rate:7.1f} images/s")


if __name__ == "__main__":
    main()
