"""AlexeyAB's Darknet, torch side: every ``fixtures/alexeyab/layers`` case and every
``fixtures/alexeyab/nets`` net end to end (cfg + .weights -> every layer) against the outputs AlexeyAB's
own CPU build computed, in the three ways darkconv can run it:

* ``default``: what ``darknet detector test`` computes (weights folded at load time by
  ``fuse_conv_batchnorm``; darkconv computes batch norm unfolded) -> ``outputs.npz``;
* ``fused``: the default model after :meth:`DarknetModel.fuse` -> ``outputs.npz``;
* ``nofuse``: ``nofuse=True`` (AlexeyAB without the load-time folding) -> ``outputs_nofuse.npz``.

Tolerances are the fixtures README's (layers 1e-5, nets 5e-5, yolov4 3e-3); layers the README
marks as not reproducible (``not_stored``) are not in the files.  A new case folder needs no new
test code.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fixture_util import FIXTURES

from darkconv.errors import DarkconvError, UnsupportedError
from darkconv.nn.activations import FLOAT_ACTIVATIONS
from darkconv.nn.builder import DarknetModel, build, load
from darkconv.nn.modules import SharedConvolutional
from darkconv.nn.winograd import WinogradConvolutional, winograd_model
from darkconv.parse.graph import Network, load_network, shipped_cfgs

AB = FIXTURES / "alexeyab"
LAYER_CASES = sorted(p.name for p in (AB / "layers").iterdir() if p.is_dir())
NETS = sorted(p.name for p in (AB / "nets").iterdir() if p.is_dir())
# Weights files over the repository's 2 MB limit are read from the shared fixtures when present.
SHARED = Path(os.environ.get("DARKCONV_ALEXEYAB_FIXTURES", "/work/shared/fixtures/alexeyab"))
LAYER_TOL = {"pjreddie_cfg_bn_tiny_variance": 3e-5}
NET_TOL = {"yolov4": 3e-3}
VARIANTS = {
    "default": ({}, "outputs.npz"),
    "fused": ({}, "outputs.npz"),
    "nofuse": ({"nofuse": True}, "outputs_nofuse.npz"),
}


def rel_err(out: np.ndarray, ref: np.ndarray) -> float:
    """max|out - ref| / max|ref| over the values finite in the reference; the non-finite ones
    must be non-finite at the same places (AlexeyAB's misread [batchnorm] gives NaN)."""
    assert out.shape == ref.shape, (out.shape, ref.shape)
    finite = np.isfinite(ref)
    assert np.array_equal(finite, np.isfinite(out)), "non-finite values differ"
    if not finite.any():
        return 0.0
    a, b = out[finite].astype(np.float64), ref[finite].astype(np.float64)
    scale = float(np.max(np.abs(b)))
    diff = float(np.max(np.abs(a - b)))
    return diff / scale if scale > 0 else diff


def _run(folder: Path, cfg: Path, weights: Path, variant: str, **kw: Any) -> dict[str, np.ndarray]:
    extra, _ = VARIANTS[variant]
    # allow_short: pjreddie's 3-array [batchnorm] files are 4 floats short for AlexeyAB's reader,
    # whose load_weights freads to EOF and leaves the rest at the constructor's values.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        model = load(cfg, weights, dialect="alexeyab", allow_short=True, **extra, **kw)
    if variant == "fused":
        model.fuse()
    return model.darknet_outputs(np.load(folder / "input.npy"))


def _cases() -> list[Any]:
    return [
        pytest.param(name, variant, id=f"{name}-{variant}")
        for name in LAYER_CASES
        for variant, (_, ref) in VARIANTS.items()
        if (AB / "layers" / name / ref).exists()
    ]


# ------------------------------------------------------------------ layers/: every case, 1e-5


@pytest.mark.parametrize(("name", "variant"), _cases())
def test_layer_case(name: str, variant: str) -> None:
    folder = AB / "layers" / name
    outs = _run(folder, folder / "case.cfg", folder / "case.weights", variant)
    refs = np.load(folder / VARIANTS[variant][1])
    tol = LAYER_TOL.get(name, 1e-5)
    bad = {k: e for k in refs.files if not (e := rel_err(outs[k], refs[k])) <= tol}
    assert not bad, f"layers over {tol}: {bad}"


PJREDDIE_CFG = [n for n in LAYER_CASES if n.startswith("pjreddie_cfg_")]


@pytest.mark.parametrize("name", PJREDDIE_CFG)
def test_same_cfg_gives_pjreddies_numbers_under_pjreddie(name: str) -> None:
    # The same cfg, weights file and input: dialect="pjreddie" reproduces pjreddie's Darknet
    # (fixtures/layers), dialect="alexeyab" AlexeyAB's (test_layer_case).
    folder = FIXTURES / "layers" / name.removeprefix("pjreddie_cfg_")
    model = load(folder / "case.cfg", folder / "case.weights", dialect="pjreddie")
    outs = model.darknet_outputs(np.load(folder / "input.npy"))
    refs = np.load(folder / "outputs.npz")
    bad = {k: e for k in refs.files if not (e := rel_err(outs[k], refs[k])) <= 1e-5}
    assert not bad, bad


# ------------------------------------------------------------------ nets/: stored layers + summaries


def _summary_errors(out: np.ndarray, s: dict[str, Any], tol: float) -> list[str]:
    # fixtures README: abs_sum relative 10x tol; sum within tol*abs_sum; min/max/values within
    # tol*max(|min|, |max|).
    flat = out.reshape(-1).astype(np.float64)
    scale = max(abs(s["min"]), abs(s["max"]))
    errs = []
    if not abs(np.abs(flat).sum() - s["abs_sum"]) <= 10 * tol * s["abs_sum"]:
        errs.append(f"abs_sum {np.abs(flat).sum()} vs {s['abs_sum']}")
    if not abs(flat.sum() - s["sum"]) <= tol * s["abs_sum"]:
        errs.append(f"sum {flat.sum()} vs {s['sum']}")
    got = [flat.min(), flat.max(), *flat[s["positions"]]]
    names = ["min", "max", *(f"value@{p}" for p in s["positions"])]
    for name, g, want in zip(names, got, [s["min"], s["max"], *s["values"]], strict=True):
        if not abs(g - want) <= tol * scale:
            errs.append(f"{name} {g} vs {want}")
    return errs


def _net_weights(name: str) -> Path:
    for root in (AB / "nets", SHARED / "nets"):
        path = root / name / f"{name}.weights"
        if path.exists():
            return path
    pytest.skip(
        f"{name}.weights (over 2 MB) is not in the repository; set DARKCONV_ALEXEYAB_FIXTURES"
    )


@pytest.mark.parametrize("variant", ["default", "fused"])
@pytest.mark.parametrize("name", NETS)
def test_net(name: str, variant: str) -> None:
    folder = AB / "nets" / name
    outs = _run(folder, folder / f"{name}.cfg", _net_weights(name), variant)
    refs = np.load(folder / "outputs.npz")
    tol = NET_TOL.get(name, 5e-5)
    bad: dict[str, Any] = {k: e for k in refs.files if not (e := rel_err(outs[k], refs[k])) <= tol}
    manifest = json.loads((folder / "manifest.json").read_text())
    for layer in manifest["layers"]:
        errs = _summary_errors(outs[layer["key"]], layer["summary"], tol)
        if errs:
            bad[layer["key"]] = errs
    assert not bad, f"over {tol}: {bad}"


def test_winograd_on_yolov4_tiny() -> None:
    folder = AB / "nets" / "yolov4-tiny"
    model = load(folder / "yolov4-tiny.cfg", folder / "yolov4-tiny.weights", dialect="alexeyab")
    winograd_model(model.fuse(), tile=4)  # the thinned net is below choose_tile's sizes
    assert sum(isinstance(m, WinogradConvolutional) for m in model.modules()) >= 4
    outs = model.darknet_outputs(np.load(folder / "input.npy"))
    refs = np.load(folder / "outputs.npz")
    assert max(rel_err(outs[k], refs[k]) for k in refs.files) <= 5e-5


# ------------------------------------------------------------------ AlexeyAB's broken CPU activations

ZERO_CASES = ["act_relu6", "act_swish", "act_mish", "act_hard_mish", "act_normalize_channels"]


@pytest.mark.parametrize("name", ZERO_CASES)
def test_intended_activations_computes_the_named_formula(name: str) -> None:
    # Layer 6 is an [activation] section on layer 1's output: AlexeyAB's CPU activate() has no
    # case for these names and outputs 0 (the fixture); intended_activations computes the formula.
    folder = AB / "layers" / name
    act = name.removeprefix("act_")
    x = np.load(folder / "input.npy")
    cpu = load(folder / "case.cfg", folder / "case.weights", dialect="alexeyab")
    assert cpu.network.cpu_zero_layers()  # the parse side names the layers (build warns)
    assert not np.any(cpu.darknet_outputs(x)["layer_006"])
    fixed = load(
        folder / "case.cfg", folder / "case.weights", dialect="alexeyab", intended_activations=True
    )
    outs = fixed.darknet_outputs(x)
    want = FLOAT_ACTIVATIONS[act](torch.from_numpy(outs["layer_001"])).numpy()
    assert np.any(want) and rel_err(outs["layer_006"], want) <= 1e-6


# ------------------------------------------------------------------ share_index


def test_share_index_has_no_parameters_and_survives_copies(tmp_path: Path) -> None:
    folder = AB / "layers" / "conv_share_index"
    model = load(folder / "case.cfg", folder / "case.weights", dialect="alexeyab")
    assert isinstance(model.layers[2], SharedConvolutional)
    assert not [k for k in model.state_dict() if k.startswith("layers.2.")]
    x = np.load(folder / "input.npy")
    ref = model.darknet_outputs(x)["layer_002"]
    with torch.no_grad():  # the sharing layer follows the owner's parameters
        model.layers[1].bn.weight.mul_(2)
    assert not np.allclose(model.darknet_outputs(x)["layer_002"], ref)
    with torch.no_grad():
        model.layers[1].bn.weight.div_(2)
    path = tmp_path / "m.pt"
    torch.save(model, path)
    for other in (copy.deepcopy(model), torch.load(path, weights_only=False)):
        assert isinstance(other, DarknetModel)
        assert other.layers[2].owner is other.layers[1]
        assert np.array_equal(other.darknet_outputs(x)["layer_002"], ref)
    assert pickle.loads(pickle.dumps(model)).layers[2].owner is not None


# ------------------------------------------------------------------ every shipped AlexeyAB cfg


@pytest.fixture(scope="module")
def alexeyab_networks() -> dict[str, Network]:
    """Every shipped AlexeyAB cfg that AlexeyAB's Darknet itself loads (the others are
    positioned errors, tests/parse)."""
    nets = {}
    for name in shipped_cfgs("alexeyab"):
        try:
            nets[name] = load_network(name)
        except DarkconvError:
            continue
    return nets


@pytest.mark.slow
def test_every_alexeyab_cfg_builds_with_its_records_and_shapes(
    alexeyab_networks: dict[str, Network],
) -> None:
    assert len(alexeyab_networks) >= 70
    for name, net in alexeyab_networks.items():
        try:
            model = build(net, device="meta")
        except UnsupportedError as exc:  # an option without a forward (xnor...): positioned
            assert exc.span.line > 0, (name, exc)
            continue
        got = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
        want = [("header", (4,))] + [
            (f"layers.{la.index}.{r.key}", tuple(r.shape)) for la in net.layers for r in la.records
        ]
        assert got == want, name
        shape = net.input if net.input != (0, 0, 0) else (net.inputs,)
        try:
            outs = model(torch.zeros((1, *shape), device="meta"), all_outputs=True)
        except UnsupportedError:  # [region] tree= (yolo9000): the forward refuses
            continue
        for la, module, y in zip(net.layers, model.layers, outs, strict=True):
            assert y.numel() == la.outputs, (name, la.index, la.type, tuple(y.shape))
            if la.type != "route" and hasattr(module, "out_shape"):
                assert tuple(module.out_shape) == la.output, (name, la.index, la.type)
