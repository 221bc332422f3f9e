"""Shared helpers of the training tests: run a darknet-train fixture case through the Python API
(with :class:`darkconv.train.trace.Tracer` on the dumped calls) and compare with the fixture."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from conftest import FIXTURES

import darkconv
from darkconv.train import GlibcRand, TrainHyper, install_glibc_rand, make_optimizer, train_step
from darkconv.train.trace import Tracer
from darkconv.weights import read_weights

TRAIN_FIXTURES = FIXTURES / "darknet-train"
# Extra case folders (e.g. the full shared fixtures) can be added with DARKCONV_TRAIN_FIXTURES.
_EXTRA = [Path(p) for p in os.environ.get("DARKCONV_TRAIN_FIXTURES", "").split(os.pathsep) if p]

# The README's tolerance table: key suffix -> max|ours - darknet| / max|darknet|.
TOLERANCE = {
    "_updates": 2e-3,
    "_updates_after": 2e-3,
    "_rand": 0.0,
    "_delta_in": 3e-4,
    "_delta": 3e-4,
}
FORWARD_TOL = 3e-4  # _output, _x, _mean, _variance, _rolling_*
WEIGHTS_TOL = 1e-4
LOSS_TOL = 1e-4
# Harness overrides (manifest) -> the semantics that reproduces them (cpu + a GPU mechanism).
OVERRIDES = {"backward_region_layer_gpu": "cpu+region"}


def cases() -> list[Path]:
    roots = [*_EXTRA, TRAIN_FIXTURES]  # a full copy given by the variable wins over the lean one
    found = {}
    for root in roots:
        if root.is_dir():
            for p in sorted(root.iterdir()):
                if (p / "manifest.json").is_file() and p.name not in found:
                    found[p.name] = p
    return list(found.values())


def manifest(case: Path) -> dict[str, Any]:
    return json.loads((case / "manifest.json").read_text())


def case_semantics(man: dict[str, Any]) -> str:
    """Stock CPU Darknet unless the harness replaced a function (``harness_overrides``)."""
    for note in man.get("harness_overrides", []):
        for marker, name in OVERRIDES.items():
            if marker in note:
                return name
    return "cpu"


def tolerance(key: str) -> float:
    for suffix, tol in sorted(TOLERANCE.items(), key=lambda kv: -len(kv[0])):
        if key.endswith(suffix):
            return tol
    return FORWARD_TOL


def rel_err(ours: np.ndarray, ref: np.ndarray) -> float:
    ours = np.asarray(ours, np.float64).reshape(ref.shape)
    ref = np.asarray(ref, np.float64)
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    diff = float(np.max(np.abs(ours - ref))) if ref.size else 0.0
    return diff / scale if scale > 0 else diff


def install_rand(model: Any, seed: int) -> None:
    """Replay Darknet's rand() stream (srand(train_srand) right before call 1) in the dropouts."""
    install_glibc_rand(model, GlibcRand(seed))


def run_api(case: Path) -> tuple[list[Any], dict[int, dict[str, np.ndarray]], Any]:
    """K calls through train_step; returns (results, traced arrays per dumped call, model)."""
    man = manifest(case)
    model = darkconv.load(case / "case.cfg", case / "init.weights")
    model.set_semantics(case_semantics(man))
    if man.get("train_srand") is not None:
        install_rand(model, man["train_srand"])
    hyper = TrainHyper.from_network(model.network)
    opt, sched = make_optimizer(model, hyper)
    x, y = np.load(case / "X.npy"), np.load(case / "Y.npy")
    dumped = {v["after_call"]: k for k, v in man.get("dumped", {}).items()}
    results, traces = [], {}
    for k in range(1, man["K"] + 1):
        tracer = Tracer(hyper.subdivisions) if k in dumped else None
        results.append(train_step(model, x, y, opt, sched, tracer=tracer))
        if tracer is not None:
            traces[k] = tracer.arrays
        if k == 1 and (case / "after_1.weights").is_file():  # the lean copy omits some
            check_weights(model, case / "after_1.weights")
    return results, traces, model


def check_weights(model: Any, path: Path) -> None:
    """Every array of a Darknet .weights file (and its header) against the model's state."""
    header, ref = read_weights(path, model.network)
    ours = model.state_dict()
    assert int(model.header[3]) == header.seen, (path.name, int(model.header[3]), header.seen)
    bad = {}
    for key, value in ref.items():
        if not key.startswith("layers."):
            continue
        err = rel_err(ours[key].detach().numpy(), value.numpy())
        if not err <= WEIGHTS_TOL:
            bad[key] = err
    assert not bad, f"{path.name}: {bad}"


def check_trace(case: Path, call: int, arrays: dict[str, np.ndarray]) -> None:
    man = manifest(case)
    name = next(k for k, v in man["dumped"].items() if v["after_call"] == call)
    ref = np.load(case / name)
    missing = [k for k in ref.files if k not in arrays]
    assert not missing, f"{name}: not produced: {missing[:5]}"
    bad = {}
    for key in ref.files:
        err = rel_err(arrays[key], ref[key])
        if not err <= tolerance(key):
            bad[key] = round(err, 6)
    assert not bad, f"{case.name}/{name}: {bad}"
