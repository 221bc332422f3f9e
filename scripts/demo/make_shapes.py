"""Generate a detection set: filled shapes (circle, square, triangle) on textured backgrounds,
with YOLO labels where Darknet looks for them (``images/`` -> ``labels/``, ``.png`` -> ``.txt``).

    python scripts/demo/make_shapes.py OUT_DIR [--train 2000] [--valid 300] [--size 96]

Backgrounds are random colour textures (a few low-frequency sinusoids plus pixel noise); each
image holds 1 to 4 shapes of 11 to 33 pixels (at 96x96) with random colours, aspect 0.75..1.33 and little
overlap.  Everything comes from a seeded generator, so the set is the same on every machine.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from PIL import Image, ImageDraw

NAMES = ["circle", "square", "triangle"]


def texture(rng: np.random.Generator, size: int) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size] / size
    out = np.zeros((size, size, 3))
    for _ in range(4):
        fx, fy = rng.uniform(-6, 6, 2)
        phase = rng.uniform(0, 2 * np.pi)
        wave = np.sin(2 * np.pi * (fx * x + fy * y) + phase)
        out += wave[:, :, None] * rng.uniform(0.05, 0.25, 3)
    out += rng.uniform(0.2, 0.8, 3) + rng.normal(0, 0.06, out.shape)
    return np.clip(out * 255, 0, 255).astype(np.uint8)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def scene(rng: np.random.Generator, size: int) -> tuple[Image.Image, list[tuple[int, ...]]]:
    pil = Image.fromarray(texture(rng, size))
    draw = ImageDraw.Draw(pil)
    boxes: list[tuple[float, ...]] = []
    labels = []
    for _ in range(int(rng.integers(1, 5))):
        for _attempt in range(20):
            s = rng.uniform(14, 44) * size / 128
            ar = rng.uniform(0.75, 1.33)
            w, h = s * np.sqrt(ar), s / np.sqrt(ar)
            x0, y0 = rng.uniform(0, size - w), rng.uniform(0, size - h)
            box = (x0, y0, x0 + w, y0 + h)
            if all(_iou(box, b) < 0.05 for b in boxes):
                break
        else:
            continue
        c = int(rng.integers(len(NAMES)))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        if c == 0:
            draw.ellipse(box, fill=colour)
        elif c == 1:
            draw.rectangle(box, fill=colour)
        else:
            apex = x0 + w * rng.uniform(0.2, 0.8)
            draw.polygon([(apex, y0), (x0 + w, y0 + h), (x0, y0 + h)], fill=colour)
        boxes.append(box)
        labels.append((c, *box))
    return pil, labels


def write_split(rng: np.random.Generator, out: str, part: str, n: int, size: int) -> str:
    img_dir = os.path.join(out, part, "images")
    lab_dir = os.path.join(out, part, "labels")
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(lab_dir, exist_ok=True)
    paths = []
    for i in range(n):
        pil, labels = scene(rng, size)
        path = os.path.join(img_dir, f"{i:05d}.png")
        pil.save(path)
        with open(os.path.join(lab_dir, f"{i:05d}.txt"), "w") as fh:
            for c, x0, y0, x1, y1 in labels:
                cx, cy = (x0 + x1) / 2 / size, (y0 + y1) / 2 / size
                fh.write(f"{c} {cx:.6f} {cy:.6f} {(x1 - x0) / size:.6f} {(y1 - y0) / size:.6f}\n")
        paths.append(path)
    listing = os.path.join(out, f"{part}.list")
    with open(listing, "w") as fh:
        fh.write("\n".join(paths) + "\n")
    return listing


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--valid", type=int, default=300)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    rng = np.random.default_rng(args.seed)
    train = write_split(rng, out, "train", args.train, args.size)
    valid = write_split(rng, out, "valid", args.valid, args.size)
    with open(os.path.join(out, "shapes.names"), "w") as fh:
        fh.write("\n".join(NAMES) + "\n")
    with open(os.path.join(out, "shapes.data"), "w") as fh:
        fh.write(
            f"classes={len(NAMES)}\ntrain={train}\nvalid={valid}\n"
            f"names={out}/shapes.names\nbackup={out}/backup\n"
        )
    print(f"{args.train} train + {args.valid} valid images in {out}")


if __name__ == "__main__":
    main()
