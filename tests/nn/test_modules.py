"""Every fixtures/layers case, built module by module from the manifest's parsed parameters
(no cfg parser involved), must match Darknet's every layer within 1e-5 (max|diff|/max|ref|)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fixture_util import FIXTURES, fixture_shape, load_layout, load_manifest, rel_err
from torch import nn

from darkconv.nn import heads, modules, pool, recurrent, spatial

CASES = sorted(p.name for p in (FIXTURES / "layers").iterdir() if p.is_dir())
TOL = 1e-5


def _chw(e: dict[str, Any]) -> tuple[int, int, int]:
    return (e["c"], e["h"], e["w"])


def make_module(e: dict[str, Any], folder: Path) -> nn.Module:
    """Manifest entry (Darknet's parsed parameters) -> module."""
    t = e["type"]
    if t == "convolutional":
        return modules.Convolutional(
            _chw(e),
            e["filters"],
            e["size"],
            e["stride"],
            e["pad"],
            e["groups"],
            bool(e["batch_normalize"]),
            e["activation"],
            xnor=bool(e["xnor"]),
        )
    if t == "deconvolutional":
        return modules.Deconvolutional(
            _chw(e),
            e["filters"],
            e["size"],
            e["stride"],
            e["pad"],
            bool(e["batch_normalize"]),
            e["activation"],
        )
    if t == "local":
        return modules.Local(
            _chw(e), e["filters"], e["size"], e["stride"], e["pad"], e["activation"]
        )
    if t == "connected":
        return modules.Connected(
            e["inputs"], e["output"], bool(e["batch_normalize"]), e["activation"]
        )
    if t == "batchnorm":
        return modules.BatchNormLayer(_chw(e))
    if t == "activation":
        return modules.Activation(e["activation"])
    if t == "logistic":
        return modules.Activation("logistic")
    if t == "dropout":
        return modules.Identity()
    if t == "maxpool":
        return pool.MaxPool(_chw(e), e["size"], e["stride"], e["padding"])
    if t == "avgpool":
        return pool.AvgPool(_chw(e))
    if t == "route":
        return spatial.Route((e["out_c"], e["out_h"], e["out_w"]))
    if t == "shortcut":
        return spatial.Shortcut(
            (e["out_c"], e["out_h"], e["out_w"]), _chw(e), e["activation"], e["alpha"], e["beta"]
        )
    if t == "upsample":
        return spatial.Upsample(_chw(e), -e["stride"] if e["reverse"] else e["stride"], e["scale"])
    if t == "reorg":
        return spatial.Reorg(_chw(e), e["stride"], e["reverse"], e["flatten"], e["extra"])
    if t == "crop":
        return spatial.Crop(_chw(e), e["crop_height"], e["crop_width"], bool(e["noadjust"]))
    if t == "l2norm":
        return spatial.L2Norm(_chw(e))
    if t == "normalization":
        return spatial.Normalization(_chw(e), e["size"], e["alpha"], e["beta"], e["kappa"])
    if t == "softmax":
        tree = heads.read_tree_groups(str(folder / "case.tree")) if e["tree"] else None
        return heads.Softmax(e["inputs"], e["groups"], e["temperature"], tree)
    if t == "yolo":
        return heads.Yolo(_chw(e), e["classes"], e["mask"], e["anchors"])
    if t == "region":
        return heads.Region(
            _chw(e),
            e["classes"],
            e["coords"],
            e["num"],
            bool(e["softmax"]),
            bool(e["background"]),
            e["anchors"],
        )
    if t == "detection":
        return heads.Detection(e["inputs"], e["classes"], e["side"], bool(e["softmax"]))
    if t == "cost":
        return heads.Cost(e["inputs"])
    if t == "rnn":
        return recurrent.RNN(e["inputs"], e["outputs"], e["activation"], bool(e["batch_normalize"]))
    if t == "gru":
        return recurrent.GRU(e["inputs"], e["outputs"], bool(e["batch_normalize"]), bool(e["tanh"]))
    if t == "lstm":
        return recurrent.LSTM(e["inputs"], e["outputs"], bool(e["batch_normalize"]))
    if t == "crnn":
        return recurrent.CRNN(
            _chw(e),
            e["hidden_filters"],
            e["output_filters"],
            e["activation"],
            bool(e["batch_normalize"]),
        )
    raise AssertionError(f"unhandled layer type {t}")


def sources(e: dict[str, Any]) -> list[int]:
    if e["type"] == "route":
        return list(e["layers"])
    if e["type"] == "shortcut":
        return [e["index"] - 1, e["from"]]
    return [e["index"] - 1]


def run_case(name: str, device: str = "cpu") -> dict[str, float]:
    folder = FIXTURES / "layers" / name
    m = load_manifest(folder)
    entries = m["layers"]
    mods = [make_module(e, folder) for e in entries]
    flipped = {e["index"] for e in entries if e.get("flipped")}
    with torch.no_grad():
        load_layout(mods, folder / m["weights_file"], m["weights_layout"], flipped)
    x = torch.from_numpy(np.load(folder / "input.npy")).to(device)
    refs = np.load(folder / "outputs.npz")
    outs: list[torch.Tensor] = []
    errs: dict[str, float] = {}
    with torch.no_grad():
        for e, mod in zip(entries, mods, strict=True):
            mod.to(device).eval()
            args = [x if s < 0 else outs[s] for s in sources(e)]
            y = mod(*args)
            outs.append(y)
            ref = refs[e["key"]]
            assert ref.shape == fixture_shape(e)
            got = y.detach().cpu().numpy().reshape(ref.shape)
            errs[e["key"]] = rel_err(got, ref)
    return errs


@pytest.mark.parametrize("name", CASES)
def test_layer_case(name: str) -> None:
    errs = run_case(name)
    bad = {k: v for k, v in errs.items() if not v <= TOL}
    assert not bad, f"{name}: layers over {TOL}: {bad}"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", CASES)
def test_layer_case_cuda(name: str) -> None:
    errs = run_case(name, "cuda")
    bad = {k: v for k, v in errs.items() if not v <= TOL}
    assert not bad, f"{name} (cuda): layers over {TOL}: {bad}"


def test_gpu_bn_mode_differs_on_tiny_variance() -> None:
    # fixtures/README.md: sqrt(var+1e-5) is wrong by O(1) on bn_tiny_variance, CPU form is exact.
    folder = FIXTURES / "layers" / "bn_tiny_variance"
    m = load_manifest(folder)
    e = m["layers"][0]
    conv = modules.Convolutional(
        _chw(e),
        e["filters"],
        e["size"],
        e["stride"],
        e["pad"],
        batch_normalize=True,
        activation=e["activation"],
        bn_mode="gpu",
    )
    with torch.no_grad():
        load_layout([conv], folder / m["weights_file"], m["weights_layout"][:1])
        y = conv(torch.from_numpy(np.load(folder / "input.npy"))).numpy()
    assert rel_err(y, np.load(folder / "outputs.npz")["layer_000"]) > 0.1


def test_activations_match_darknet_formulas_in_double() -> None:
    # Values straight from the formulas in fixtures/README.md, evaluated in float64 with numpy.
    x64 = np.array([-400.0, -5.5, -4.0, -2.5, -1.0, -0.3, 0.0, 0.4, 1.0, 1.7, 3.0, 4.5, 400.0])
    x = torch.tensor(x64, dtype=torch.float32)
    xf = x.double().numpy()
    with np.errstate(over="ignore", invalid="ignore"):
        expected = {
            "stair": np.where(
                np.floor(xf) % 2 == 0, np.floor(xf / 2), (xf - np.floor(xf)) + np.floor(xf / 2)
            ),
            "plse": np.where(
                xf < -4, 0.01 * (xf + 4), np.where(xf > 4, 0.01 * (xf - 4) + 1, 0.125 * xf + 0.5)
            ),
            "lhtan": np.where(xf < 0, 0.001 * xf, np.where(xf > 1, 0.001 * (xf - 1) + 1, xf)),
            "tanh": (np.exp(2 * xf) - 1) / (np.exp(2 * xf) + 1),
            "selu": np.where(xf >= 0, 1.0507 * xf, 1.0507 * 1.6732 * (np.exp(xf) - 1)),
        }
    for name, exp in expected.items():
        got = modules.activate(x, name).double().numpy()
        np.testing.assert_allclose(
            got, exp.astype(np.float32), rtol=1e-6, atol=1e-7, equal_nan=True, err_msg=name
        )
    assert torch.isnan(modules.activate(x, "tanh")[-1])  # Darknet's double overflow


def test_connected_state_dict_in_file_order() -> None:
    fc = modules.Connected(4, 3, batch_normalize=True)
    assert list(fc.state_dict()) == [
        "bn.bias",
        "fc.weight",
        "bn.weight",
        "bn.running_mean",
        "bn.running_var",
    ]
    conv = modules.Convolutional((2, 4, 4), 3, 3, 1, 1)
    assert list(conv.state_dict()) == ["conv.bias", "conv.weight"]
