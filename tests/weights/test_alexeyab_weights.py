"""AlexeyAB's .weights files: header 0.2.5 rules, extra parameter blocks, byte-exact round trips.

Every .weights file AlexeyAB's ``save_weights`` wrote in fixtures/alexeyab (layers/, nets/,
headers/) goes .weights -> .pth / .safetensors -> .weights and must come back byte for byte.
"""

from __future__ import annotations

import json
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from darkconv.cli.main import cli
from darkconv.errors import WeightsError
from darkconv.parse.graph import load_network
from darkconv.weights.format import default_header, eof_init, layout, weights_bytes
from darkconv.weights.io import read_header, read_weights, write_weights
from darkconv.weights.statedict import load_state_dict, save_state_dict

FIX = Path(__file__).resolve().parents[2] / "fixtures"
AB = FIX / "alexeyab"
AB_HEADERS = AB / "headers"
HEADER_MANIFEST = json.loads((AB_HEADERS / "manifest.json").read_text())


def _cases() -> list[tuple[str, Path, Path]]:
    out = [
        (p.parent.name, p, p.parent / "case.cfg")
        for p in sorted(AB.glob("layers/*/case.weights"))
        if not p.parent.name.startswith("pjreddie_cfg_")  # those files were written by pjreddie
    ]
    out += [(p.stem, p, p.with_suffix(".cfg")) for p in sorted(AB.glob("nets/*/*.weights"))]
    out += [(p.stem, p, AB_HEADERS / "headers.cfg") for p in sorted(AB_HEADERS.glob("*.weights"))]
    return out


CASES = _cases()


@pytest.mark.parametrize(("name", "wpath", "cfg"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("ext", [".pth", ".safetensors"])
def test_round_trip_is_byte_identical(name, wpath, cfg, ext, tmp_path):
    net = load_network(cfg, dialect="alexeyab")
    header, sd = read_weights(wpath, net)
    sd_path = tmp_path / f"{name}{ext}"
    save_state_dict(sd_path, sd)
    back = tmp_path / "back.weights"
    n = write_weights(back, load_state_dict(sd_path), net)
    assert back.read_bytes() == wpath.read_bytes()
    assert n == wpath.stat().st_size == weights_bytes(net, header)


def test_alexeyab_cases_exist():
    names = {c[0] for c in CASES}
    # the extra parameter blocks AlexeyAB stores: weighted [shortcut], [implicit], conv_lstm
    assert {"shortcut_weights_per_channel", "implicit", "conv_lstm", "batchnorm"} <= names
    assert len(CASES) >= 45 + 4


def test_extra_blocks_in_file_order():
    sd = read_weights(*_net("shortcut_weights_per_channel"))[1]
    net = _net("shortcut_weights_per_channel")[1]
    manifest = json.loads((AB / "layers/shortcut_weights_per_channel/manifest.json").read_text())
    for entry in manifest["weights_layout"]:
        layer = net.layers[entry["index"]]
        assert [r.part for r in layer.records] == [p for p, _ in entry["parts"]]
    weighted = [la for la in net.layers if la.records and la.type == "shortcut"]
    assert weighted and all(r.key == "shortcut.weight" for la in weighted for r in la.records)
    shape = tuple(sd[f"layers.{weighted[0].index}.shortcut.weight"].shape)
    n_from = len(weighted[0].options["from"])
    assert shape == (n_from + 1, weighted[0].input[0])
    lstm = _net("conv_lstm")[1].layers[1]
    prefixes = [r.key.split(".")[0] for r in lstm.records]
    order = list(dict.fromkeys(prefixes))
    assert order[-4:] == ["uf", "ui", "ug", "uo"] and order[-8:-4] == ["wf", "wi", "wg", "wo"]


def _net(case: str):
    folder = AB / "layers" / case
    return folder / "case.weights", load_network(folder / "case.cfg", dialect="alexeyab")


# ------------------------------------------------------------------------------ headers


@pytest.mark.parametrize("fname", sorted(HEADER_MANIFEST["files"]))
def test_header_variants_read_like_alexeyab(fname):
    info = HEADER_MANIFEST["files"][fname]
    data = (AB_HEADERS / fname).read_bytes()
    h = read_header(data, "alexeyab")
    want = info["header"]
    assert (h.major, h.minor, h.revision) == (want["major"], want["minor"], want["revision"])
    assert h.seen == info["seen_as_read_by_darknet"]
    assert h.transpose == want["transpose"]
    # AlexeyAB: uint64 seen whenever major*10+minor >= 2 (0.1001 too); the file size agrees.
    assert h.header_bytes == (16 if want["minor"] == 1 else 20)
    assert h.to_bytes() == data[: h.header_bytes]
    net = load_network(AB_HEADERS / "headers.cfg", dialect="alexeyab")
    assert weights_bytes(net, h) == info["bytes"] == len(data)


def test_header_variants_hold_the_same_parameters():
    net = load_network(AB_HEADERS / "headers.cfg", dialect="alexeyab")
    dicts = [read_weights(AB_HEADERS / f, net)[1] for f in sorted(HEADER_MANIFEST["files"])]
    for other in dicts[1:]:
        assert other.keys() == dicts[0].keys()
        for key in dicts[0]:
            if key != "header":
                assert torch.equal(other[key], dicts[0][key]), key


def test_pjreddie_headers_through_alexeyab():
    info = HEADER_MANIFEST["pjreddie_headers_through_alexeyab"]["files"]
    pj_net = load_network(FIX / "headers" / "headers.cfg")
    ab_net = load_network(FIX / "headers" / "headers.cfg", dialect="alexeyab")
    for fname, want in info.items():
        data = (FIX / "headers" / fname).read_bytes()
        assert read_header(data, "alexeyab").seen == want["seen_as_read_by_alexeyab"], fname
    # pjreddie's 0.1001 file has a 32-bit seen: AlexeyAB reads 8 bytes and every parameter
    # shifts by one float.  darkconv refuses it (4 bytes short) instead of misreading it.
    transposed = FIX / "headers" / "headers_transpose_v0.1001_seen32.weights"
    read_weights(transposed, pj_net)
    with pytest.raises(WeightsError, match="4 short") as err:
        read_weights(transposed, ab_net)
    assert "seen" in (err.value.hint or "")


def test_default_header_is_0_2_5(tmp_path):
    wpath, net = _net("conv_bn")
    sd = read_weights(wpath, net)[1]
    del sd["header"]
    out = tmp_path / "fresh.weights"
    write_weights(out, sd, net)
    assert struct.unpack("<iiiQ", out.read_bytes()[:20]) == (0, 2, 5, 0)
    assert out.read_bytes()[20:] == wpath.read_bytes()[20:]
    assert default_header("alexeyab").to_list() == [0, 2, 5, 0]
    assert default_header("pjreddie").to_list() == [0, 2, 0, 0]


def test_strict_by_default_and_darknet_eof_reading_on_request(tmp_path):
    # pjreddie's [batchnorm] file stores 3 arrays; AlexeyAB reads 4 and stops at EOF.
    folder = AB / "layers" / "pjreddie_cfg_batchnorm"
    net = load_network(folder / "case.cfg", dialect="alexeyab")
    with pytest.raises(WeightsError, match="16 short"):
        read_weights(folder / "case.weights", net)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, sd = read_weights(folder / "case.weights", net, allow_short=True)
    assert any("runs out in layers.1.bn.running_var" in str(w.message) for w in caught)
    body = np.fromfile(folder / "case.weights", dtype="<f4", offset=20)
    flat = np.concatenate([sd[slot.key].numpy().reshape(-1) for slot in layout(net)])
    assert np.array_equal(flat[: body.size], body)
    # the last 4 rolling_variance floats were never read: calloc'd by make_batchnorm_layer
    assert flat.size == body.size + 4 and not flat[body.size :].any()
    # A truncated conv weight array is random in Darknet: still an error.
    cut = tmp_path / "cut.weights"
    wpath, conv = _net("conv_bn")
    cut.write_bytes(wpath.read_bytes()[:-8])
    with pytest.raises(WeightsError, match="random"):
        read_weights(cut, conv, allow_short=True)
    assert eof_init("layers.3.shortcut.weight", "weights") == 1.0


def test_cli_converts_both_ways_with_the_dialect(tmp_path):
    wpath, _ = _net("implicit")
    src = tmp_path / "case.weights"
    src.write_bytes(wpath.read_bytes())
    cfg = AB / "layers" / "implicit" / "case.cfg"
    runner = CliRunner()
    out = tmp_path / "case.safetensors"
    args = ["weights", str(src), "-o", str(out), "--cfg", str(cfg), "--dialect", "alexeyab"]
    res = runner.invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "header 0.2.5 seen=0" in res.stdout and "dialect alexeyab" in res.stderr
    back = tmp_path / "back.weights"
    res = runner.invoke(cli, ["weights", str(out), "-o", str(back), "--cfg", str(cfg),
                              "--dialect", "alexeyab"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert back.read_bytes() == wpath.read_bytes()


def test_an_alexeyab_file_read_as_pjreddie_warns():
    wpath, _ = _net("conv_bn")
    auto = load_network(AB / "layers" / "conv_bn" / "case.cfg")  # nothing AlexeyAB-only in it
    assert auto.dialect == "pjreddie"
    with pytest.warns(RuntimeWarning, match="header 0.2.5 is what AlexeyAB's Darknet writes"):
        read_weights(wpath, auto)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_weights(wpath, _net("conv_bn")[1])
        # AlexeyAB loading pjreddie's 0.2.0 files is normal: no warning
        pj_case = FIX / "layers" / "conv_bn"
        read_weights(pj_case / "case.weights", load_network(pj_case / "case.cfg", "alexeyab"))
