"""``size=(w, h)``: the same weights at another ``[net]`` size, against Darknet's own run of the
edited cfg (apps/ cases whose cfg differs from nets/ only in width/height) and against the cfg
edited by hand; Darknet's size rules; the one-line error for an input of the wrong size."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from fixture_util import FIXTURES, rel_err

import darkconv
from darkconv.errors import DarkconvError, GraphError
from darkconv.nn.builder import build, load
from darkconv.nn.fuse import FusedConvolutional
from darkconv.nn.winograd import WinogradConvolutional
from darkconv.parse.graph import load_network, parse_network
from darkconv.parse.size import parse_size, with_size

NETS = sorted(p.name for p in (FIXTURES / "nets").iterdir() if p.is_dir())


def _net_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if not ln.startswith("#")]


def _resized_cases() -> list[str]:
    """apps/ cases run by Darknet on a nets/ cfg with only [net] width/height edited."""
    cases = []
    for folder in sorted((FIXTURES / "apps").iterdir()):
        case_file = folder / "case.json"
        if not case_file.is_file():
            continue
        case = json.loads(case_file.read_text())
        net_cfg = FIXTURES / "nets" / case["net"] / f"{case['net']}.cfg"
        if (folder / case["cfg"]).is_file() and (folder / case["cfg"]).read_text() != (
            net_cfg.read_text()
        ):
            cases.append(folder.name)
    return cases


def _edit_by_hand(path: Path, w: int, h: int) -> str:
    """The cfg text with its [net] width= and height= lines rewritten (a plain text edit)."""
    text = path.read_text()
    text = re.sub(r"(?m)^width\s*=.*$", f"width={w}", text, count=1)
    return re.sub(r"(?m)^height\s*=.*$", f"height={h}", text, count=1)


@pytest.mark.parametrize("name", _resized_cases())
def test_size_equals_darknet_on_the_edited_cfg(name: str) -> None:
    folder = FIXTURES / "apps" / name
    case = json.loads((folder / "case.json").read_text())
    net = FIXTURES / "nets" / case["net"]
    size = (case["network_size"]["w"], case["network_size"]["h"])
    # the case's cfg is the nets/ cfg with only width/height changed ...
    edited = _edit_by_hand(net / f"{case['net']}.cfg", *size)
    assert _net_lines(edited) == _net_lines((folder / case["cfg"]).read_text())
    arrays = np.load(folder / "arrays.npz")
    x = torch.from_numpy(arrays["input"])
    model = load(net / f"{case['net']}.cfg", net / f"{case['net']}.weights", size=size)
    ref_model = load(folder / case["cfg"], net / f"{case['net']}.weights")
    with torch.no_grad():
        got, ref = model(x, all_outputs=True), ref_model(x, all_outputs=True)
    for head in case["output_layers"]:
        i = head["index"]
        assert rel_err(got[i].numpy(), arrays[head["key"]]) <= 5e-4  # ... and Darknet ran it
        assert torch.equal(got[i], ref[i])


@pytest.mark.parametrize("name", NETS)
def test_size_equals_cfg_edited_by_hand(name: str) -> None:
    folder = FIXTURES / "nets" / name
    network = load_network(folder / f"{name}.cfg")
    _, h, w = network.input
    size = (w + 32, h + 64)  # not square, both still multiples of 32
    resized = with_size(network, size)
    by_hand = parse_network(_edit_by_hand(folder / f"{name}.cfg", *size))
    assert resized.input == (3, size[1], size[0]) == by_hand.input
    assert [la.output for la in resized.layers] == [la.output for la in by_hand.layers]
    assert resized.bflops == by_hand.bflops and resized.params == network.params
    weights = folder / f"{name}.weights"
    model = load(folder / f"{name}.cfg", weights, size=size)
    hand = load(by_hand, weights)
    x = torch.rand(1, 3, size[1], size[0], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = model(x), hand(x)
    for p, q in zip(
        a if isinstance(a, list) else [a], b if isinstance(b, list) else [b], strict=True
    ):
        assert torch.equal(p, q)


@pytest.mark.parametrize(
    ("cfg", "size", "message"),
    [
        ("yolov3", (100, 100), "multiples of 32 for a network ending in [yolo]"),
        ("yolov2", (400, 416), "multiples of 32 for a network ending in [region]"),
        ("yolov1", (480, 480), "would change its parameters"),  # 32 | 480; its [local] layer
        ("yolov1-tiny", (460, 448), "multiples of 32 for a network ending in [detection]"),
        ("alexnet", (320, 320), "layer 8 [connected] would change its parameters"),
        ("darknet53", (0, 256), "positive"),
        ("yolov3-tiny", (608, 608), None),
        ("darknet53", (250, 190), None),
    ],
)
def test_size_rules(cfg: str, size: tuple[int, int], message: str | None) -> None:
    if message is None:
        assert with_size(cfg, size).input == (3, size[1], size[0])
        return
    with pytest.raises(DarkconvError) as err:
        with_size(cfg, size)
    assert message in str(err.value) and "\n" not in str(err.value)
    if "multiples" in message:
        assert isinstance(err.value, GraphError)


@pytest.mark.parametrize(
    ("text", "size"), [("416", (416, 416)), ("608x352", (608, 352)), ("320X320", (320, 320))]
)
def test_parse_size(text: str, size: tuple[int, int]) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "x", "416x", "-32x32", "0x416", "1.5x2"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(DarkconvError):
        parse_size(text)


@pytest.mark.parametrize(
    ("shape", "words"),
    [
        ((1, 3, 96, 160), ["3x96x160", "3x416x416", "size=(160, 96)", "--size 160x96"]),
        ((3, 416, 416), ["batch dimension"]),
        ((2, 1, 128, 128), ["2x1x128x128", "3 channels"]),
    ],
)
def test_wrong_input_size_is_one_line(shape: tuple[int, ...], words: list[str]) -> None:
    model = build("yolov3-tiny", device="meta")
    with pytest.raises(DarkconvError) as err:
        model(torch.zeros(shape, device="meta"))
    text = str(err.value)
    assert "\n" not in text and all(w in text for w in words), text


def test_at_size_shares_parameters_and_keeps_fusion() -> None:
    torch.manual_seed(0)
    model = build("yolov3-tiny")  # full width: some layers take Winograd at 416 and at 320x256
    plain = build("yolov3-tiny", size=(320, 256))
    plain.load_state_dict(model.state_dict())
    model.fuse(winograd=True)
    other = model.at_size((320, 256))
    assert other.input_shape == (3, 256, 320) and model.at_size(416) is model
    assert other.layers[2].conv.weight.data_ptr() == model.layers[2].conv.weight.data_ptr()
    kinds = {type(m) for m in other.modules()}
    assert FusedConvolutional in kinds and WinogradConvolutional in kinds
    x = torch.rand(1, 3, 256, 320, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for a, b in zip(other(x), plain(x), strict=True):
            assert rel_err(a.numpy(), b.numpy()) <= 5e-5


def test_public_api_takes_size() -> None:
    folder = FIXTURES / "nets" / "yolov3-tiny"
    model = darkconv.load(folder / "yolov3-tiny.cfg", folder / "yolov3-tiny.weights", size=160)
    assert model.input_shape == (3, 160, 160)
    assert darkconv.build("darknet53", size=(320, 256), device="meta").input_shape == (3, 256, 320)
