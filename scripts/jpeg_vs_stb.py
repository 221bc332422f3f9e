"""Compare darkconv's exact JPEG decoder with a compiled stb_image on many generated JPEGs.

    python scripts/jpeg_vs_stb.py --stb ../darknet/src/stb_image.h [--seed 0] [FILE.jpg ...]

Builds a tiny ``stbi_load(path, .., 3)`` harness against the given ``stb_image.h`` (Darknet's
copy, v2.19) with ``cc -Ofast -msse2``, as Darknet's Makefile builds it, in a temporary folder.
Without FILEs it writes a corpus there: Pillow JPEGs over tiny to medium sizes, 4:4:4 / 4:2:2 /
4:2:0, quality 10 to 100, baseline and progressive, optimised tables, gray, Adobe CMYK and
'R','G','B' files, restart markers, and libjpeg files (through jpeglib) with unusual sampling
factors (4:1:1, 4:4:0, 3x1, chroma above luma).  Every file must decode to stb_image's bytes, or
fall back with a ``DecoderNote`` exactly when stb_image refuses it.  Nothing is written to the
repository.  Needs a C compiler and the ``jpeg`` extra.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from darkconv.apps.imread import DecoderNote, load_image

_HARNESS = r"""
#define STB_IMAGE_IMPLEMENTATION
#include "STB_IMAGE_H"
#include <stdio.h>
int main(int argc, char **argv) {
    for (int a = 1; a + 1 < argc; a += 2) {
        int w, h, c;
        unsigned char *px = stbi_load(argv[a], &w, &h, &c, 3);
        FILE *f = fopen(argv[a + 1], "wb");
        if (!px) { fprintf(f, "FAIL %s\n", stbi_failure_reason()); fclose(f); continue; }
        fprintf(f, "OK %d %d\n", w, h);
        fwrite(px, 1, (size_t)w * h * 3, f);
        fclose(f);
        stbi_image_free(px);
    }
    return 0;
}
"""
_SOURCE = Path(__file__).resolve().parents[1] / "fixtures" / "data" / "giraffe.jpg"


def _corpus(folder: Path, rng: np.random.Generator) -> list[Path]:
    src = np.asarray(Image.open(_SOURCE).convert("RGB"))
    files = []
    sizes = [
        (1, 1),
        (1, 9),
        (9, 1),
        (3, 5),
        (8, 8),
        (9, 17),
        (16, 15),
        (33, 17),
        (40, 23),
        (97, 61),
    ]
    for n, ((w, h), sub, q) in enumerate(
        (s, sub, q) for s in sizes for sub in ("4:4:4", "4:2:2", "4:2:0") for q in (10, 50, 90, 100)
    ):
        kind = rng.integers(3)
        if kind == 0:
            arr = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
        else:
            y0, x0 = rng.integers(0, src.shape[0] - h), rng.integers(0, src.shape[1] - w)
            arr = np.ascontiguousarray(src[y0 : y0 + h, x0 : x0 + w])
        im = Image.fromarray(arr, "RGB")
        path = folder / f"p{n}.jpg"
        im.save(path, quality=q, subsampling=sub, progressive=bool(rng.integers(2)),
                optimize=bool(rng.integers(2)))  # fmt: skip
        files.append(path)
        extra = {"gray": 0.2, "cmyk": 0.15, "rgb": 0.15, "rst": 0.15}
        for what, chance in extra.items():
            if rng.random() >= chance:
                continue
            p = folder / f"p{n}_{what}.jpg"
            if what == "gray":
                im.convert("L").save(p, quality=q)
            elif what == "cmyk":
                im.convert("CMYK").save(p, quality=q)
            elif what == "rgb":
                im.save(p, quality=q, keep_rgb=True)
            else:
                im.save(
                    p, quality=q, subsampling=sub, restart_marker_blocks=int(rng.integers(1, 6))
                )
            files.append(p)
    try:
        import jpeglib
    except ImportError:
        return files
    # (h, v) per component
    factors = [((1, 2), (1, 1), (1, 1)), ((4, 1), (1, 1), (1, 1)), ((1, 4), (1, 1), (1, 1)),
               ((3, 1), (1, 1), (1, 1)), ((2, 2), (1, 2), (1, 1)), ((2, 2), (2, 1), (1, 1)),
               ((4, 2), (1, 1), (1, 1)), ((1, 1), (2, 2), (2, 2)),
               ((2, 2), (1, 1), (2, 2))]  # fmt: skip
    for i, hv in enumerate(factors):
        for w, h in ((37, 29), (64, 48), (5, 3), (101, 7)):
            y0, x0 = rng.integers(0, src.shape[0] - h), rng.integers(0, src.shape[1] - w)
            jim = jpeglib.from_spatial(np.ascontiguousarray(src[y0 : y0 + h, x0 : x0 + w]))
            jim.samp_factor = np.array([[v, h_] for h_, v in hv])  # jpeglib wants (v, h)
            path = folder / f"j{i}_{w}x{h}.jpg"
            jim.write_spatial(str(path), qt=int(rng.integers(20, 100)))
            files.append(path)
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stb", required=True, type=Path, help="Darknet's src/stb_image.h")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("files", nargs="*", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "ref.c").write_text(_HARNESS.replace("STB_IMAGE_H", str(args.stb.resolve())))
        subprocess.run(["cc", "-Ofast", "-msse2", "-o", str(folder / "ref"), str(folder / "ref.c"),
                        "-lm"], check=True, stderr=subprocess.DEVNULL)  # fmt: skip
        files = args.files or _corpus(folder, np.random.default_rng(args.seed))
        outs = [folder / f"{i}.out" for i in range(len(files))]
        pairs = [str(x) for f, o in zip(files, outs, strict=True) for x in (f, o)]
        for k in range(0, len(pairs), 400):
            subprocess.run([str(folder / "ref"), *pairs[k : k + 400]], check=True)
        exact = refused = 0
        wrong = []
        for f, o in zip(files, outs, strict=True):
            head, _, body = o.read_bytes().partition(b"\n")
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                got = load_image(f)
            noted = any(issubclass(c.category, DecoderNote) for c in caught)
            if head.startswith(b"FAIL"):
                refused += 1
                if not noted:
                    wrong.append(
                        f"{f.name}: stb_image refuses it ({head.decode()}), darkconv did not"
                    )
                continue
            _, w, h = head.split()
            ref = np.frombuffer(body, np.uint8).reshape(int(h), int(w), 3).transpose(2, 0, 1)
            if not noted and np.array_equal(got, ref):
                exact += 1
            else:
                worst = int(np.abs(got.astype(int) - ref).max()) if got.shape == ref.shape else -1
                wrong.append(f"{f.name}: differs (max {worst}, fell back: {noted})")
        print(
            f"{len(files)} files: {exact} bit-exact, {refused} refused by both, {len(wrong)} wrong"
        )
        for line in wrong[:20]:
            print("  " + line)
        sys.exit(1 if wrong else 0)


if __name__ == "__main__":
    main()
