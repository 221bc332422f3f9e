"""Corpus tests: every shipped cfg against what Darknet reported when it parsed it."""

from __future__ import annotations

import json
import re

import pytest
from conftest import CFG_DIR, TABLES

from darkconv.parse.graph import load_network, parse_network, shipped_cfgs, write_network

NAMES = sorted(p.stem for p in CFG_DIR.glob("*.cfg"))


def test_all_45_cfgs_are_shipped_and_unchanged():
    assert len(NAMES) == 45
    assert shipped_cfgs("") == NAMES
    for name in NAMES:
        assert (CFG_DIR / f"{name}.cfg").read_bytes() == (TABLES / f"{name}.cfg").read_bytes()


def _darknet_layers(name):
    rows = [json.loads(line) for line in (TABLES / f"{name}.shapes.jsonl").read_text().splitlines()]
    return [r for r in rows if not r.get("net")], next(r for r in rows if r.get("net"))


@pytest.mark.parametrize("name", NAMES)
def test_shapes_match_darknet(name):
    net = load_network(CFG_DIR / f"{name}.cfg")
    layers, netrow = _darknet_layers(name)
    assert net.input == (netrow["c"], netrow["h"], netrow["w"])
    assert net.inputs == netrow["inputs"]
    assert len(net.layers) == len(layers) == netrow["n"]
    for ours, ref in zip(net.layers, layers, strict=True):
        assert ours.type == ref["type"], ours.index
        assert ours.output == (ref["out_c"], ref["out_h"], ref["out_w"]), ours.index
        assert ours.outputs == ref["outputs"], ours.index


@pytest.mark.parametrize("name", NAMES)
def test_weights_bytes_match_darknet(name):
    net = load_network(CFG_DIR / f"{name}.cfg")
    assert net.weights_bytes() == int((TABLES / f"{name}.weights_bytes").read_text())


_CONV_LINE = re.compile(r"^\s*(\d+)\s+conv\s.*?([\d.]+) BFLOPs$")


@pytest.mark.parametrize("name", NAMES)
def test_bflops_match_darknet_table(name):
    net = load_network(CFG_DIR / f"{name}.cfg")
    printed = {}
    for line in (TABLES / f"{name}.txt").read_text().splitlines():
        m = _CONV_LINE.match(line)
        if m:
            printed[int(m.group(1))] = m.group(2)
    convs = [la.index for la in net.layers if la.type == "convolutional"]
    assert sorted(printed) == convs
    for i, text in printed.items():
        assert f"{net.layers[i].bflops:.3f}" == text, i


@pytest.mark.parametrize("name", NAMES)
def test_writer_round_trip(name):
    net = load_network(CFG_DIR / f"{name}.cfg")
    again = parse_network(write_network(net), "written.cfg")
    assert again == net


def test_bare_name_resolves_to_shipped_cfg():
    assert load_network("darknet53") == load_network(CFG_DIR / "darknet53.cfg")
    assert load_network("darknet53.cfg") == load_network(CFG_DIR / "darknet53.cfg")


def test_yolov3_known_figures():
    # The published yolov3.weights is 248,007,048 bytes (fixtures/README.md, tables/).
    net = load_network("yolov3")
    assert net.weights_bytes() == 248_007_048
    assert net.params == (248_007_048 - 20) // 4
    assert [la.index for la in net.layers if la.type == "yolo"] == [82, 94, 106]
    assert net.layers[83].options["layers"] == (79,)
    assert net.layers[86].options["layers"] == (85, 61)
    assert net.layers[4].options["from"] == 1


def test_route_mismatch_reports_zero_dims():
    text = (
        "[net]\nwidth=8\nheight=8\nchannels=3\n[maxpool]\nsize=2\nstride=2\n[route]\nlayers=-1,-2\n"
    )
    net = parse_network(text.replace("-1,-2", "0") + "", "a.cfg")
    assert net.layers[1].output == (3, 4, 4)
    text2 = (
        "[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=2\nsize=1\n"
        "[maxpool]\nsize=2\nstride=2\n[route]\nlayers=-1,-2\n"
    )
    net2 = parse_network(text2, "b.cfg")
    assert net2.layers[2].output == (0, 0, 0)
    assert net2.layers[2].outputs == 2 * 4 * 4 + 2 * 8 * 8


def test_layer_fixture_manifests_agree_with_graph(fixtures_dir):
    # Every per-feature case: shapes and the weights layout Darknet wrote.
    for case in sorted((fixtures_dir / "layers").iterdir()):
        manifest = json.loads((case / "manifest.json").read_text())
        net = load_network(case / "case.cfg")
        for ours, ref in zip(net.layers, manifest["layers"], strict=True):
            assert ours.output == (ref["out_c"], ref["out_h"], ref["out_w"]), (
                case.name,
                ours.index,
            )
            assert ours.outputs == ref["outputs"], (case.name, ours.index)
        layout = {e["index"]: e for e in manifest["weights_layout"]}
        for layer in net.layers:
            if layer.index in layout:
                assert layer.params == layout[layer.index]["floats"], (case.name, layer.index)
            else:
                assert layer.params == 0, (case.name, layer.index)
        assert net.weights_bytes() == manifest["weights_bytes"], case.name
