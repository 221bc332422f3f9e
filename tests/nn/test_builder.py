"""The builder: graph -> DarknetModel, checked end to end (cfg + .weights -> every layer) against
Darknet's own outputs in fixtures/, plus state-dict keys, shapes, batching and tracing."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fixture_util import FIXTURES, rel_err

import darkconv
from darkconv.parse.graph import load_network, parse_network, shipped_cfgs

# The builder module (`darkconv.build` is the lazily exported function):
B = importlib.import_module("darkconv.nn.builder")
LAYER_CASES = sorted(p.name for p in (FIXTURES / "layers").iterdir() if p.is_dir())
NETS = ["darknet53", "yolov3", "yolov3-tiny", "darknet19", "resnet50"]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def _case(name: str, device: str = "cpu") -> tuple[B.DarknetModel, np.ndarray, Path]:
    folder = FIXTURES / "layers" / name
    model = B.load(folder / "case.cfg", folder / "case.weights", device=device)
    return model, np.load(folder / "input.npy"), folder


def _check_all(outs: dict[str, np.ndarray], refs: Any, tol: float) -> None:
    bad = {}
    for key in refs.files:
        err = rel_err(outs[key], refs[key])
        if not err <= tol:
            bad[key] = err
    assert not bad, f"layers over {tol}: {bad}"


# ------------------------------------------------------------------ layers/: every case, 1e-5


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
@pytest.mark.parametrize("name", LAYER_CASES)
def test_layer_case_end_to_end(name: str, device: str) -> None:
    model, x, folder = _case(name, device)
    outs = model.darknet_outputs(x)
    refs = np.load(folder / "outputs.npz")
    assert sorted(outs) == sorted(refs.files)
    _check_all(outs, refs, 1e-5)


def test_bn_gpu_mode_is_selectable_and_differs() -> None:
    # README: sqrt(var+1e-5) gives O(1) error on bn_tiny_variance; the CPU formula passes 1e-5.
    folder = FIXTURES / "layers" / "bn_tiny_variance"
    model = B.load(folder / "case.cfg", folder / "case.weights", bn_mode="gpu")
    out = model.darknet_outputs(np.load(folder / "input.npy"))["layer_000"]
    assert rel_err(out, np.load(folder / "outputs.npz")["layer_000"]) > 0.1
    model.set_bn_mode("cpu")
    out = model.darknet_outputs(np.load(folder / "input.npy"))["layer_000"]
    assert rel_err(out, np.load(folder / "outputs.npz")["layer_000"]) <= 1e-5


# ------------------------------------------------------------------ nets/: 5e-4 + summaries


def _summary_ok(out: np.ndarray, s: dict[str, Any], tol: float = 5e-4) -> list[str]:
    flat = out.reshape(-1).astype(np.float64)
    scale = max(abs(s["min"]), abs(s["max"]))
    errs = []
    if not abs(np.abs(flat).sum() - s["abs_sum"]) <= tol * s["abs_sum"]:
        errs.append(f"abs_sum {np.abs(flat).sum()} vs {s['abs_sum']}")
    if not abs(flat.sum() - s["sum"]) <= tol * s["abs_sum"]:
        errs.append(f"sum {flat.sum()} vs {s['sum']}")
    for name, got in (("min", flat.min()), ("max", flat.max())):
        if not abs(got - s[name]) <= tol * scale:
            errs.append(f"{name} {got} vs {s[name]}")
    vals = flat[s["positions"]]
    if not np.all(np.abs(vals - np.array(s["values"])) <= tol * scale):
        errs.append(f"values {vals.tolist()} vs {s['values']}")
    return errs


@pytest.fixture(scope="module")
def net_outputs() -> dict[tuple[str, str], dict[str, np.ndarray]]:
    return {}


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
@pytest.mark.parametrize("net", NETS)
def test_net_fixture(net: str, device: str) -> None:
    folder = FIXTURES / "nets" / net
    manifest = json.loads((folder / "manifest.json").read_text())
    model = B.load(folder / f"{net}.cfg", folder / f"{net}.weights", device=device)
    outs = model.darknet_outputs(np.load(folder / "input.npy"))
    _check_all(outs, np.load(folder / "outputs.npz"), 5e-4)
    bad = {}
    for entry in manifest["layers"]:
        errs = _summary_ok(outs[entry["key"]], entry["summary"])
        if errs:
            bad[entry["key"]] = errs
    assert not bad, bad
    # forward(): the network output Darknet returns
    with torch.no_grad():
        y = model(torch.from_numpy(np.load(folder / "input.npy")).to(device))
    if model.heads:
        assert [f"layer_{i:03d}" for i in model.heads] == [
            k for k in manifest["stored_layers"] if k != f"layer_{model.output_index:03d}"
        ] or [f"layer_{i:03d}" for i in model.heads] == manifest["stored_layers"]
        assert isinstance(y, list) and len(y) == len(model.heads)
        for i, t in zip(model.heads, y, strict=True):
            assert np.array_equal(t.cpu().numpy().reshape(-1), outs[f"layer_{i:03d}"].reshape(-1))
    else:
        key = f"layer_{manifest['network']['output_layer']:03d}"
        assert np.array_equal(y.cpu().numpy().reshape(-1), outs[key].reshape(-1))


# ------------------------------------------------------------------ headers/ and partial/


@pytest.mark.parametrize(
    "weights",
    [
        "headers_v0.2_seen64.weights",
        "headers_v0.1_seen32.weights",
        "headers_transpose_v0.1001_seen32.weights",
    ],
)
def test_header_variants(weights: str) -> None:
    folder = FIXTURES / "headers"
    manifest = json.loads((folder / "manifest.json").read_text())
    model = B.load(folder / "headers.cfg", folder / weights)
    info = manifest["files"][weights]
    assert model.seen == info["seen_as_read_by_darknet"]
    assert model.header.tolist()[:3] == [info["header"][k] for k in ("major", "minor", "revision")]
    outs = model.darknet_outputs(np.load(folder / "input.npy"))
    _check_all(outs, np.load(folder / "expected_outputs.npz"), 1e-5)


def test_partial_weights_into_yolov3() -> None:
    folder = FIXTURES / "partial"
    manifest = json.loads((folder / "manifest.json").read_text())
    cfg = FIXTURES / "nets" / "yolov3" / "yolov3.cfg"
    model = B.load(cfg, folder / "darknet53.conv.74", cutoff=manifest["cutoff"])
    assert model.seen == manifest["header"]["seen"]
    outs = model.darknet_outputs(np.load(folder / "input.npy"))
    _check_all(outs, np.load(folder / "expected_outputs.npz"), 5e-4)
    bad = {}
    for entry in manifest["layer_summaries"]:
        errs = _summary_ok(outs[entry["key"]], entry["summary"])
        if errs:
            bad[entry["key"]] = errs
    assert not bad, bad


# ------------------------------------------------------------------ every shipped cfg


@pytest.fixture(scope="module")
def meta_models() -> dict[str, B.DarknetModel]:
    return {name: B.build(name, device="meta") for name in shipped_cfgs("")}


def test_all_cfgs_state_dict_matches_records(meta_models: dict[str, B.DarknetModel]) -> None:
    assert len(meta_models) == 45
    for name, model in meta_models.items():
        got = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
        want = [("header", (4,))] + [
            (f"layers.{la.index}.{r.key}", tuple(r.shape))
            for la in model.network.layers
            for r in la.records
        ]
        assert got == want, name


def test_all_cfgs_shapes_agree_with_graph(meta_models: dict[str, B.DarknetModel]) -> None:
    # The forward on the meta device computes every layer's shape without any arithmetic.
    unsupported = {"darknet9000", "yolo9000"}  # tree files / tree region: forward raises
    for name, model in meta_models.items():
        net = model.network
        for module, la in zip(model.layers, net.layers, strict=True):
            if hasattr(module, "out_shape") and la.type not in ("route",):
                assert tuple(module.out_shape) == la.output, (name, la.index, la.type)
        if name in unsupported:
            continue
        shape = net.input if net.input != (0, 0, 0) else (net.inputs,)
        outs = model(torch.zeros((1, *shape), device="meta"), all_outputs=True)
        for la, y in zip(net.layers, outs, strict=True):
            assert y.numel() == la.outputs, (name, la.index, la.type, tuple(y.shape))
            assert y.shape == B.fixture_shape(la, 1) or y.numel() == la.outputs


def test_unsupported_forward_raises_darkconv_error(meta_models: dict[str, B.DarknetModel]) -> None:
    from darkconv.errors import DarkconvError

    for name in ("darknet9000", "yolo9000"):
        model = meta_models[name]
        with pytest.raises(DarkconvError):
            model(torch.zeros((1, *model.network.input), device="meta"))


# ------------------------------------------------------------------ batching, tracing, API


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
@pytest.mark.parametrize("net", ["yolov3-tiny", "darknet19"])
def test_batch_of_two_equals_batch_of_one(net: str, device: str) -> None:
    folder = FIXTURES / "nets" / net
    cfg, weights = folder / f"{net}.cfg", folder / f"{net}.weights"
    exact = B.load(cfg, weights, device=device, batch_invariant=True)
    batched = B.load(cfg, weights, device=device)  # the default: one batched forward
    assert exact.batch_invariant and not batched.batch_invariant
    x = torch.from_numpy(np.load(folder / "input.npy")).to(device)
    x2 = torch.cat([x, torch.rand_like(x)])
    with torch.no_grad():
        one = exact(x, all_outputs=True)
        two = exact(x2, all_outputs=True)
        fast = batched(x2, all_outputs=True)
    for i, (a, b, c) in enumerate(zip(one, two, fast, strict=True)):
        assert torch.equal(b[0], a[0])  # bit for bit, like Darknet's batch-1 rows
        scale = max(float(b.abs().max()), 1e-30)  # batched: within the fixtures' tolerance
        assert float((c - b).abs().max()) / scale <= 5e-4, i


def _at_size(name: str, size: int) -> Any:
    """The shipped cfg with [net] width/height replaced (Darknet nets have a fixed input size)."""
    text = (load_network(name).path and Path(load_network(name).path).read_text()) or ""
    lines = [
        f"{ln.split('=')[0]}={size}"
        if ln.replace(" ", "").startswith(("width=", "height="))
        else ln
        for ln in text.splitlines()
    ]
    return parse_network("\n".join(lines) + "\n", path=f"{name}@{size}.cfg")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["darknet53", "yolov3"])
def test_jit_trace_equals_eager(name: str) -> None:
    net = _at_size(name, 64)
    assert net.input == (3, 64, 64)
    model = B.build(net)
    torch.manual_seed(0)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        eager = model(x)
        traced = torch.jit.trace(model, (x,), strict=False, check_trace=False)
        again = traced(x)
    eager_list = eager if isinstance(eager, list) else [eager]
    traced_list = again if isinstance(again, list | tuple) else [again]
    assert len(eager_list) == len(traced_list)
    for a, b in zip(eager_list, traced_list, strict=True):
        assert torch.equal(a, b)


def test_header_buffer_default_and_round_trip() -> None:
    model = B.build("yolov3-tiny")
    assert model.header.tolist() == [0, 2, 0, 0] and model.seen == 0
    folder = FIXTURES / "headers"
    loaded = B.load(folder / "headers.cfg", folder / "headers_v0.2_seen64.weights")
    fresh = B.build(folder / "headers.cfg")
    fresh.load_state_dict(loaded.state_dict())
    assert fresh.seen == 5000000000


def test_forward_returns_output_layer_or_heads() -> None:
    cls = B.build(FIXTURES / "layers" / "cost" / "case.cfg")
    assert cls.output_index == 2 and cls.heads == ()
    y = cls(torch.rand(2, 3, 8, 8))
    assert y.shape == (2, 6)  # the softmax before [cost], not the cost's zeros
    det = B.build(FIXTURES / "layers" / "yolo" / "case.cfg")
    assert det.heads == (4, 9)
    ys = det(torch.rand(1, 3, 32, 32))
    assert [tuple(t.shape) for t in ys] == [(1, 21, 4, 4), (1, 21, 8, 8)]


def test_plain_forward_keeps_only_needed_outputs() -> None:
    model = B.build("yolov3", device="meta")
    # route/shortcut sources, heads and the output layer; not every layer
    assert 36 in model.keep and 61 in model.keep and 82 in model.keep
    assert len(model.keep) < len(model.layers) // 2


def test_fuse_keeps_outputs() -> None:
    folder = FIXTURES / "nets" / "darknet19"
    model = B.load(folder / "darknet19.cfg", folder / "darknet19.weights")
    x = np.load(folder / "input.npy")
    ref = np.load(folder / "outputs.npz")
    model.fuse()
    assert not any(k.endswith("running_var") for k in model.state_dict())
    _check_all(model.darknet_outputs(x), ref, 5e-4)


def test_pick_device() -> None:
    assert B.pick_device("cpu").type == "cpu"
    assert B.pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        from darkconv.errors import DarkconvError

        with pytest.raises(DarkconvError):
            B.pick_device("cuda")


def test_package_api_build_and_load() -> None:

    folder = FIXTURES / "layers" / "conv_bn"
    model = darkconv.load(folder / "case.cfg", folder / "case.weights", device="cpu")
    assert isinstance(model, B.DarknetModel)
    y = model(torch.from_numpy(np.load(folder / "input.npy")))
    assert rel_err(y.detach().numpy(), np.load(folder / "outputs.npz")["layer_000"]) <= 1e-5
    # The public function, also after the builder module was imported directly.
    assert isinstance(darkconv.build(folder / "case.cfg"), B.DarknetModel)


def test_whole_model_pickles(tmp_path: Path) -> None:
    folder = FIXTURES / "layers" / "shortcut"
    model = B.load(folder / "case.cfg", folder / "case.weights")
    torch.save(model, tmp_path / "m.pt")
    again = torch.load(tmp_path / "m.pt", weights_only=False)
    x = np.load(folder / "input.npy")
    a, b = model.darknet_outputs(x), again.darknet_outputs(x)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_load_accepts_a_converted_state_dict(tmp_path):
    from darkconv.weights.io import read_weights, save_state_dict

    folder = FIXTURES / "layers" / "conv_bn"
    _, state = read_weights(folder / "case.weights", load_network(folder / "case.cfg"))
    for ext in (".pth", ".safetensors"):
        save_state_dict(tmp_path / f"m{ext}", state)
        model = darkconv.load(folder / "case.cfg", tmp_path / f"m{ext}", device="cpu")
        y = model(torch.from_numpy(np.load(folder / "input.npy")))
        assert rel_err(y.detach().numpy(), np.load(folder / "outputs.npz")["layer_000"]) <= 1e-5
