"""Make the repository's lean copy of the darknet-train fixtures (fixtures/darknet-train) from the
full set (../shared/fixtures/darknet-train): the inputs of every case, the small arrays of each
dumped call, and the weights files where the budget allows.  Nothing is recomputed or edited:
files and arrays are copied byte for byte (npz members selected by size).

    python scripts/lean_train_fixtures.py ../shared/fixtures/darknet-train fixtures/darknet-train
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

ALWAYS = ("case.cfg", "manifest.json", "X.npy", "Y.npy", "init.weights")
# Per case: (largest npz member kept in bytes, weights files after the calls kept).
SMALL = (32 * 1024, ("after_1.weights", "after_K.weights"))
BUDGET = {
    "residual": (16 * 1024, ("after_1.weights", "after_K.weights")),
    "subdivisions": (16 * 1024, ("after_1.weights", "after_K.weights")),
    "region_loss_gpu_backward": (8 * 1024, ()),
    "region_loss": (8 * 1024, ()),
    "yolo_loss": (8 * 1024, ()),
    "yolo_loss_truth_thresh": (8 * 1024, ()),
    "detection_loss": (8 * 1024, ()),
}


def lean_case(src: Path, dst: Path) -> None:
    limit, weights = BUDGET.get(src.name, SMALL)
    dst.mkdir(parents=True, exist_ok=True)
    for name in (*ALWAYS, *weights):
        shutil.copyfile(src / name, dst / name)
    for npz in sorted(src.glob("step*.npz")):
        with np.load(npz) as z:
            kept = {k: z[k] for k in z.files if z[k].nbytes <= limit}
        np.savez(dst / npz.name, **kept)  # type: ignore[arg-type]


def main(src: str, dst: str) -> None:
    s, d = Path(src), Path(dst)
    for case in sorted(p for p in s.iterdir() if (p / "manifest.json").is_file()):
        lean_case(case, d / case.name)
    (d / "lr_policies").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(s / "lr_policies" / "lr_table.json", d / "lr_policies" / "lr_table.json")
    shutil.copyfile(s / "tolerance_measured.json", d / "tolerance_measured.json")


if __name__ == "__main__":
    main(*sys.argv[1:3])
