"""Write scikit-learn's bundled ``digits`` set (1,797 real 8x8 handwritten digits, no download)
as a Darknet classifier dataset: PNG files, train/valid lists, labels and a ``.data`` file.

    python scripts/demo/make_digits.py OUT_DIR [--size 16]

Layout (also the ImageFolder layout, ``--data OUT_DIR``): ``OUT_DIR/train/digitN/NNNNN.png``,
``OUT_DIR/val/digitN/NNNNN.png``.  Darknet finds a class by the substring ``digitN`` in the path
(``fill_truth``).  The split is fixed: a stratified 80/20 cut of a seeded permutation.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from PIL import Image

LABELS = [f"digit{i}" for i in range(10)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--size", type=int, default=16, help="upscaled side in pixels (default 16)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SystemExit("this demo needs scikit-learn: pip install scikit-learn") from None

    digits = load_digits()
    images = (digits.images / 16.0 * 255.0).round().astype(np.uint8)  # 0..16 -> 0..255
    target = digits.target
    rng = np.random.default_rng(args.seed)
    split = np.zeros(len(target), dtype=bool)  # True = valid
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(target == c))
        split[idx[: round(len(idx) * 0.2)]] = True
    lists: dict[str, list[str]] = {"train": [], "val": []}
    for i, (im, c) in enumerate(zip(images, target, strict=True)):
        part = "val" if split[i] else "train"
        folder = os.path.join(args.out, part, LABELS[c])
        os.makedirs(folder, exist_ok=True)
        path = os.path.abspath(os.path.join(folder, f"{i:05d}.png"))
        pil = Image.fromarray(im, mode="L").resize((args.size, args.size), Image.BILINEAR)
        pil.convert("RGB").save(path)
        lists[part].append(path)
    out = os.path.abspath(args.out)
    for part, name in (("train", "train.list"), ("val", "valid.list")):
        with open(os.path.join(out, name), "w") as fh:
            fh.write("\n".join(lists[part]) + "\n")
    with open(os.path.join(out, "labels.txt"), "w") as fh:
        fh.write("\n".join(LABELS) + "\n")
    with open(os.path.join(out, "digits.data"), "w") as fh:
        fh.write(
            f"classes=10\ntrain={out}/train.list\nvalid={out}/valid.list\n"
            f"labels={out}/labels.txt\nbackup={out}/backup\ntop=2\n"
        )
    print(f"{len(lists['train'])} train + {len(lists['val'])} valid images in {out}")


if __name__ == "__main__":
    main()
