"""Top-1 of a classifier's ``.weights`` over a ``.data`` file's ``valid`` list, through
``darkconv predict``'s code path (``darkconv.predict``: load_image_color, letterbox, forward,
Darknet's top_k), independent of the training loop.  The truth of an image is the label that
is a substring of its path (Darknet's ``fill_truth``).

    python scripts/demo/predict_split.py CFG WEIGHTS FILE.data [--check N]

``--check N`` also runs the ``darkconv predict`` command itself on N images and stops if a
printed line differs from the one computed here.  The last line is ``top-1 = NN.N%``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import darkconv
from darkconv.apps.labels import read_data_file, read_names, resolve_data_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cfg")
    ap.add_argument("weights")
    ap.add_argument("data")
    ap.add_argument("--check", type=int, default=5)
    args = ap.parse_args()
    df = read_data_file(args.data)
    names_path = df.names_path("data/labels.list")
    assert names_path is not None
    labels = read_names(names_path)
    valid = resolve_data_path(df.get("valid") or "", args.data)
    with open(valid) as fh:
        paths = [line.strip() for line in fh if line.strip()]
    model = darkconv.load(args.cfg, args.weights)
    right = 0
    lines = []
    for path in paths:
        pred = darkconv.predict(model, path, top=1, names=labels)[0]
        truth = [lab for lab in labels if lab in path]
        right += int(truth == [pred.name])
        lines.append(pred.line)
    for path, line in list(zip(paths, lines, strict=True))[: args.check]:
        cmd = [sys.executable, "-m", "darkconv", "predict", args.cfg, args.weights, path,
               "--data", args.data, "--top", "1"]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ)
        if out.stdout.strip() != line:
            raise SystemExit(f"darkconv predict {path}: {out.stdout.strip()!r} != {line!r}")
    if args.check:
        print(f"darkconv predict agrees on {min(args.check, len(paths))} images")
    print(f"{right} of {len(paths)} right")
    print(f"top-1 = {100.0 * right / len(paths):.1f}%")


if __name__ == "__main__":
    main()
