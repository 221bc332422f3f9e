"""TorchScript (``.pt``) and ``torch.export`` (``.pt2``) files against Darknet's outputs, and the
errors of ``darkconv.export`` / ``darkconv export``."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from export_util import NET_NAMES, NET_TOL, batch3, exported, net_files, net_input, net_outputs
from fixture_util import rel_err

import darkconv
from darkconv.errors import DarkconvError, UnsupportedError
from darkconv.export import output_names
from darkconv.nn.builder import load

# TorchScript is deprecated in favour of torch.export; .pt stays for the consumers that need it
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")


def _load(path, suffix: str):
    return torch.jit.load(str(path)) if suffix == ".pt" else torch.export.load(str(path)).module()


@pytest.mark.parametrize("suffix", [".pt", ".pt2"])
@pytest.mark.parametrize("name", NET_NAMES)
def test_torch_formats_match_darknet_batch_1_and_3(name: str, suffix: str) -> None:
    cfg, weights = net_files(name)
    module = _load(exported(cfg, weights, suffix), suffix)
    ref = net_outputs(name)
    names = output_names(load(cfg, weights))
    x = torch.from_numpy(net_input(name))
    with torch.no_grad():
        for batch, rows in ((x, [0]), (torch.from_numpy(batch3(x.numpy())), [0, 2])):
            outs = module(batch)
            for out_name, out in zip(names, outs, strict=True):
                for row in rows:
                    got = out[row : row + 1].numpy().reshape(ref[out_name].shape)
                    assert rel_err(got, ref[out_name]) <= NET_TOL, (out_name, row)


def test_decode_in_torchscript_matches_onnx_layout() -> None:
    cfg, weights = net_files("yolov3-tiny")
    module = _load(exported(cfg, weights, ".pt", decode=True), ".pt")
    boxes, scores = module(torch.from_numpy(batch3(net_input("yolov3-tiny"))))
    assert boxes.shape == (3, (4 * 4 + 8 * 8) * 3, 4) and scores.shape == (3, 240, 2)
    assert torch.equal(boxes[0], boxes[2]) and torch.all(boxes[..., 2] >= boxes[..., 0])


@pytest.fixture(scope="module")
def tiny():
    return load(*net_files("yolov3-tiny"))


@pytest.mark.parametrize(
    ("path", "options", "message"),
    [
        ("m.onnx.txt", {}, "unknown export format .txt"),
        ("m", {}, "(no extension)"),
        ("m.pt", {"nms": True}, "--nms adds the ONNX NonMaxSuppression op"),
        ("m.onnx", {"opset": 9}, "supported opsets are 13..23"),
        ("m.onnx", {"nms": True, "max_det": 0}, "--max-det must be at least 1"),
    ],
)
def test_bad_requests_fail_in_one_line(tiny, tmp_path, path, options, message) -> None:
    with pytest.raises(UnsupportedError, match=message.replace(".", r"\.")):
        darkconv.export(tiny, tmp_path / path, **options)
    assert list(tmp_path.iterdir()) == []


def test_decode_needs_a_detector(tmp_path) -> None:
    with pytest.raises(UnsupportedError, match="no \\[yolo\\], \\[region\\] or \\[detection\\]"):
        darkconv.export(load(*net_files("darknet19")), tmp_path / "m.pt", decode=True)


def test_missing_extra_is_one_clear_message(tiny, tmp_path, monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "onnxscript" else real(n, *a)
    )
    with pytest.raises(DarkconvError, match=r"needs onnxscript: pip install 'darkconv\[onnx\]'"):
        darkconv.export(tiny, tmp_path / "m.onnx")


def test_cli_error_exit_code(tmp_path, capsys) -> None:
    from darkconv.cli.main import main

    cfg, weights = net_files("yolov3-tiny")
    with pytest.raises(SystemExit) as stop:
        main(["export", str(cfg), str(weights), "-o", str(tmp_path / "m.pt"), "--nms"])
    assert stop.value.code != 0
    err = capsys.readouterr().err
    assert "--nms adds the ONNX NonMaxSuppression op" in err and "Traceback" not in err


def test_a_fused_model_exports(tmp_path) -> None:
    name = "yolov3-tiny"
    model = load(*net_files(name)).fuse()
    model(torch.from_numpy(net_input(name)))  # packs the oneDNN weights
    darkconv.export(model, tmp_path / "m.pt", fuse=False)
    outs = torch.jit.load(str(tmp_path / "m.pt"))(torch.from_numpy(net_input(name)))
    ref = net_outputs(name)
    for out_name, out in zip(output_names(model), outs, strict=True):
        assert rel_err(out.numpy().reshape(ref[out_name].shape), ref[out_name]) <= NET_TOL


def test_the_model_is_not_modified(tiny, tmp_path) -> None:
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    kinds = [type(m) for m in tiny.modules()]
    darkconv.export(tiny, tmp_path / "m.pt", fp16=True, decode=True)
    assert [type(m) for m in tiny.modules()] == kinds  # not fused, not wrapped
    state = tiny.state_dict()
    assert all(torch.equal(before[k], v) and v.dtype == before[k].dtype for k, v in state.items())
