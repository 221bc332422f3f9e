"""Build fixtures/jpeg/ from the shared Darknet JPEG fixture (../shared/fixtures/darknet/jpeg/).

Darknet's decodes (``decoded.npz``, 8 MB compressed) are too big for the repository, so the
expected bytes are kept as SHA-256 digests of the uint8 ``(3, h, w)`` arrays, with their shapes.
JPEGs already in ``fixtures/data/`` (byte-identical) are referenced there, not copied; files over
``--max-bytes`` are listed but not copied (the test skips them unless the shared folder exists).

    python scripts/jpeg_fixture.py ../shared/fixtures/darknet/jpeg fixtures/jpeg
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path)
    ap.add_argument("dest", type=Path)
    ap.add_argument("--max-bytes", type=int, default=1_000_000)
    args = ap.parse_args()
    data_dir = args.dest.parent / "data"
    known = {hashlib.sha256(p.read_bytes()).hexdigest(): p for p in data_dir.glob("*.jpg")}
    decoded = np.load(args.source / "decoded.npz")
    args.dest.mkdir(parents=True, exist_ok=True)
    cases = {}
    for name in sorted(decoded.files):
        src = args.source / f"{name}.jpg"
        raw = src.read_bytes()
        pixels = decoded[name]
        assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[0] == 3
        entry = {
            "shape": list(pixels.shape),
            "sha256": hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest(),
        }
        same = known.get(hashlib.sha256(raw).hexdigest())
        if same is not None:
            entry["file"] = f"../data/{same.name}"
        elif len(raw) <= args.max_bytes:
            shutil.copyfile(src, args.dest / src.name)
            entry["file"] = src.name
        else:
            entry["file"] = None  # only in the shared fixture
            entry["shared_file"] = f"darknet/jpeg/{src.name}"
        cases[name] = entry
    out = {"source": "../shared/fixtures/darknet/jpeg (decoded.npz: Darknet load_image_color)"}
    out["cases"] = cases
    (args.dest / "expected.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
