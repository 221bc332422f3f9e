"""Test helpers for the Darknet fixtures: read a .weights file by a manifest's layout,
compare outputs with the fixtures' tolerance rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from conftest import FIXTURES  # noqa: F401  (re-exported for the test modules)
from torch import nn

from darkconv.nn.modules import BatchNormLayer, Connected, Convolutional, Deconvolutional, Local

_SUB = {"input_layer": "input", "self_layer": "self", "output_layer": "output"}


def load_manifest(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "manifest.json").read_text())


def _target(module: nn.Module, part: str) -> tuple[nn.Module, str]:
    """Map a Darknet part name (``biases``, ``input_layer.scales``...) to (module, state key)."""
    while "." in part:
        sub, part = part.split(".", 1)
        module = module._modules[_SUB.get(sub, sub)]  # type: ignore[assignment]
    if isinstance(module, Local):
        return module, {"biases": "bias", "weights": "weight"}[part]
    if isinstance(module, BatchNormLayer):
        pre = "bn"
    elif isinstance(module, Convolutional):
        pre = "conv"
    elif isinstance(module, Deconvolutional):
        pre = "deconv"
    elif isinstance(module, Connected):
        pre = "fc"
    else:
        raise AssertionError(f"no parameters expected on {type(module).__name__}")
    has_bn = getattr(module, "bn", None) is not None
    key = {
        "biases": "bn.bias" if has_bn else f"{pre}.bias",
        "weights": f"{pre}.weight",
        "scales": "bn.weight",
        "rolling_mean": "bn.running_mean",
        "rolling_variance": "bn.running_var",
    }[part]
    return module, key


def load_layout(
    modules: list[nn.Module],
    weights: Path,
    layout: list[dict[str, Any]],
    flipped: set[int] = frozenset(),  # type: ignore[assignment]
) -> None:
    """Copy every part of ``layout`` (manifest ``weights_layout``) from the file into the modules."""
    data = weights.read_bytes()
    for entry in layout:
        offset = entry["byte_offset"]
        for part, count in entry["parts"]:
            arr = np.frombuffer(data, dtype="<f4", count=count, offset=offset).copy()
            offset += 4 * count
            mod, key = _target(modules[entry["index"]], part)
            tensor = mod.state_dict()[key]
            if entry["index"] in flipped and part == "weights":
                # load_convolutional_weights with flipped: stored (c*size*size) x n, transposed
                arr = arr.reshape(-1, tensor.shape[0]).T
            assert arr.size == tensor.numel(), (entry["index"], part)
            tensor.copy_(torch.from_numpy(np.ascontiguousarray(arr)).reshape(tensor.shape))
        assert offset == entry["byte_offset"] + 4 * entry["floats"]


def rel_err(out: np.ndarray, ref: np.ndarray) -> float:
    """max|out - ref| / max|ref| (0 reference: max|out - ref| itself)."""
    assert out.shape == ref.shape, (out.shape, ref.shape)
    diff = (
        float(np.max(np.abs(out.astype(np.float64) - ref.astype(np.float64)))) if ref.size else 0.0
    )
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    return diff / scale if scale > 0 else diff


def fixture_shape(entry: dict[str, Any], batch: int = 1) -> tuple[int, ...]:
    """Darknet's flat buffer shaped as the fixtures store it."""
    c, h, w, n = entry["out_c"], entry["out_h"], entry["out_w"], entry["outputs"]
    return (batch, c, h, w) if c * h * w == n else (batch, n)


def run_main(argv: list[str]) -> int:
    """``darkconv ARGV`` through the console entry point (``main``: errors become messages and
    exit codes); its exit code."""
    from darkconv.cli.main import main

    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
