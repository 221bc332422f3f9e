"""AlexeyAB's dialect on the parse side, corpus-driven over fixtures/alexeyab/.

* tables/: every cfg of AlexeyAB's repository (cfg/alexeyab/): shapes, printed BFLOPs, total,
  .weights size as AlexeyAB's Darknet reported them; the ones it refuses give a positioned error.
* layers/, nets/, headers/: AlexeyAB's parse of each case (manifest) and its weights layout.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import CFG_DIR, FIXTURES

from darkconv.errors import CfgError, DarkconvError, GraphError, UnsupportedError
from darkconv.parse import registry
from darkconv.parse.cfg import read_cfg
from darkconv.parse.graph import (
    load_network,
    network_from_document,
    parse_network,
    shipped_cfgs,
    write_network,
)

AB = FIXTURES / "alexeyab"
TABLES = AB / "tables"
AB_CFG = CFG_DIR / "alexeyab"
INDEX = json.loads((TABLES / "index.json").read_text())
PARSED = sorted(n for n, v in INDEX.items() if v["parsed_ok"])
REFUSED = sorted(n for n, v in INDEX.items() if not v["parsed_ok"])
CASES = sorted(p for p in (AB / "layers").iterdir() if (p / "manifest.json").exists())
NETS = sorted(p for p in (AB / "nets").iterdir() if (p / "manifest.json").exists())


def _rows(name: str) -> tuple[list[dict], dict]:
    rows = [json.loads(x) for x in (TABLES / f"{name}.shapes.jsonl").read_text().splitlines()]
    return [r for r in rows if not r.get("net")], next(r for r in rows if r.get("net"))


def test_every_alexeyab_cfg_is_shipped():
    assert sorted(p.stem for p in AB_CFG.glob("*.cfg")) == sorted(INDEX)
    assert len(INDEX) == 87 and len(PARSED) == 78
    assert shipped_cfgs("alexeyab") == sorted(f"alexeyab/{n}" for n in INDEX)


@pytest.mark.parametrize("name", PARSED)
def test_tables_shapes_and_weights_bytes(name):
    net = load_network(f"alexeyab/{name}")
    assert net.dialect == "alexeyab"
    layers, netrow = _rows(name)
    assert net.input == (netrow["c"], netrow["h"], netrow["w"])
    assert net.inputs == netrow["inputs"]
    got = [(la.type, la.output, la.outputs) for la in net.layers]
    want = [(r["type"], (r["out_c"], r["out_h"], r["out_w"]), r["outputs"]) for r in layers]
    assert got == want
    assert net.weights_bytes() == int((TABLES / f"{name}.weights_bytes").read_text())
    assert net.weights_bytes() == INDEX[name]["weights_bytes"]
    assert net.net["letter_box"] == netrow["letter_box"]


_BF_LINE = re.compile(r"^\s*(\d+)\s+(?:conv\w*|max|avg|Shortcut)\b.*?([\d.]+) BF$")


@pytest.mark.parametrize("name", PARSED)
def test_tables_bflops_as_printed(name):
    net = load_network(f"alexeyab/{name}")
    text = (TABLES / f"{name}.txt").read_text()
    printed = {int(m[1]): m[2] for m in map(_BF_LINE.match, text.splitlines()) if m}
    assert printed, name
    assert {i: f"{net.layers[i].bflops:.3f}" for i in printed} == printed
    total = re.search(r"Total BFLOPS\s+([\d.]+)", text)
    assert total and f"{net.bflops:.3f}" == total[1]


@pytest.mark.parametrize("name", REFUSED)
def test_tables_refused_cfgs_are_positioned_errors(name):
    with pytest.raises(GraphError) as info:
        load_network(f"alexeyab/{name}")
    assert info.value.span is not None and info.value.span.line > 0
    tail = " ".join(INDEX[name]["error_tail"])
    # Darknet aborts on the shortcut assert or divides by zero (no 2-D layer): the same cause.
    cause = "parser.c:979" if "parser.c:979" in tail else "parser.c:1751"
    assert cause in info.value.message


def test_pjreddie_cfgs_that_alexeyab_cannot_run():
    cases = json.loads((AB / "layers" / "pjreddie_cfg_failures.json").read_text())["cases"]
    assert len(cases) == 8
    for name in cases:
        with pytest.raises(CfgError) as info:
            load_network(FIXTURES / "layers" / name / "case.cfg", dialect="alexeyab")
        assert info.value.span is not None and info.value.span.line > 0, name


# ------------------------------------------------------------------------ dialect choice


def _detected(path: Path) -> str:
    return network_from_document(read_cfg(path)).dialect_reason  # no shipped-set default


@pytest.mark.parametrize("name", sorted(p.stem for p in CFG_DIR.glob("*.cfg")))
def test_pjreddie_cfgs_are_detected_as_pjreddie(name):
    assert _detected(CFG_DIR / f"{name}.cfg").startswith("pjreddie: no AlexeyAB-only")
    assert load_network(name).dialect == "pjreddie"


def test_detection_names_the_first_alexeyab_feature_and_its_line():
    assert _detected(AB_CFG / "yolov4-tiny.cfg") == "alexeyab: [route] groups at line 60"
    assert _detected(AB_CFG / "yolov4.cfg") == (
        "alexeyab: activation=mish in [convolutional] at line 35"
    )
    assert _detected(AB_CFG / "Gaussian_yolov3_BDD.cfg").startswith("alexeyab: [Gaussian_yolo]")
    # Training-only evidence counts when nothing else does (pjreddie would say "Unused field").
    assert _detected(AB_CFG / "yolov3-voc.yolov3-giou-40.cfg") == (
        "alexeyab: [yolo] iou_normalizer at line 631"
    )
    # An inference feature is named before an earlier training option.
    assert _detected(AB_CFG / "resnet152_trident.cfg") == (
        "alexeyab: [convolutional] dilation at line 1206"
    )
    text = "[net]\nwidth=8\nheight=8\nchannels=3\n[conv]\nfilters=2\n[conv]\nfilters=2\n"
    text += "[shortcut]\nfrom=-1,-2\n"
    assert parse_network(text).dialect_reason == (
        "alexeyab: [shortcut] from with several layers at line 10"
    )


def test_shipped_alexeyab_names():
    # AlexeyAB-only names are bare; names in both keep pjreddie's file, AlexeyAB's is alexeyab/.
    assert load_network("yolov4").path == str(AB_CFG / "yolov4.cfg")
    assert load_network("yolov3").path == str(CFG_DIR / "yolov3.cfg")
    assert load_network("yolov3").dialect == "pjreddie"
    ab = load_network("alexeyab/yolov3")
    assert ab.path == str(AB_CFG / "yolov3.cfg") and ab.dialect == "alexeyab"
    assert ab.dialect_reason == "alexeyab: a cfg of alexeyab's shipped set"
    with pytest.raises(CfgError, match="not a shipped cfg"):
        load_network("yolov5")


def test_a_copy_of_a_shipped_cfg_keeps_its_origin(tmp_path):
    # AlexeyAB's alexnet.cfg differs from pjreddie's: a copy elsewhere is still AlexeyAB's.
    copy = tmp_path / "alexnet.cfg"
    copy.write_bytes((AB_CFG / "alexnet.cfg").read_bytes())
    assert load_network(copy).dialect == "alexeyab"
    # darknet53.cfg is the same file in both sets: the default (pjreddie) decides.
    same = tmp_path / "darknet53.cfg"
    same.write_bytes((AB_CFG / "darknet53.cfg").read_bytes())
    assert (AB_CFG / "darknet53.cfg").read_bytes() == (CFG_DIR / "darknet53.cfg").read_bytes()
    assert load_network(same).dialect == "pjreddie"
    copy.write_bytes((AB_CFG / "alexnet.cfg").read_bytes() + b"\n")  # not a copy any more
    assert load_network(copy).dialect == "pjreddie"


def test_dialect_override_and_its_errors():
    net = load_network("yolov3", dialect="alexeyab")
    assert net.dialect == "alexeyab" and net.dialect_reason.startswith("alexeyab: chosen")
    assert net.facts is registry.ALEXEYAB
    assert load_network("yolov3") != net  # the dialect is part of the network
    with pytest.raises(CfgError, match="unknown dialect 'darknet'"):
        load_network("yolov3", dialect="darknet")
    # AlexeyAB's own options under pjreddie: an error that points to the other dialect.
    with pytest.raises(UnsupportedError) as info:
        load_network("yolov4", dialect="pjreddie")
    assert "--dialect alexeyab" in str(info.value)
    with pytest.raises(CfgError) as info2:
        load_network("yolov4-tiny", dialect="pjreddie")
    assert info2.value.span.line > 0


def test_same_cfg_two_dialects_weights_size():
    # [batchnorm]: AlexeyAB stores 4 arrays (biases first), pjreddie 3.
    case = FIXTURES / "layers" / "batchnorm" / "case.cfg"
    pj, ab = load_network(case), load_network(case, dialect="alexeyab")
    assert [r.key for r in pj.layers[1].records] == [
        "bn.weight",
        "bn.running_mean",
        "bn.running_var",
    ]
    assert [r.key for r in ab.layers[1].records][0] == "bn.bias"
    assert ab.weights_bytes() - pj.weights_bytes() == 4 * pj.layers[1].input[0]


def test_writer_round_trip_keeps_the_network():
    for name in ("yolov4-tiny", "yolov4-csp", "yolov7-tiny", "Gaussian_yolov3_BDD"):
        net = load_network(name)
        again = parse_network(write_network(net), "w.cfg", dialect=net.dialect)
        assert again == net, name


# ------------------------------------------------------------------------ layers/, nets/


def _stored_dims(ref: dict) -> tuple[tuple[int, int, int], int]:
    # Antialiasing: the next layer reads the blurred result (stored_output), not the host dims.
    out = ref.get("stored_output")
    if out:
        return (out["c"], out["h"], out["w"]), out["outputs"]
    return (ref["out_c"], ref["out_h"], ref["out_w"]), ref["outputs"]


@pytest.mark.parametrize("case", CASES + NETS, ids=lambda p: p.name)
def test_case_shapes_and_layout_match_alexeyab(case):
    manifest = json.loads((case / "manifest.json").read_text())
    cfg = case / "case.cfg" if (case / "case.cfg").exists() else case / f"{case.name}.cfg"
    net = load_network(cfg, dialect="alexeyab")
    for ours, ref in zip(net.layers, manifest["layers"], strict=True):
        assert ours.type == ref["type"], ours.index
        assert (ours.output, ours.outputs) == _stored_dims(ref), ours.index
        # build --json and the table show what Darknet reports (the host layer's dims).
        assert ours.reported == ((ref["out_c"], ref["out_h"], ref["out_w"]), ref["outputs"])
        if "antialias_blur" in ref:
            assert ours.options["antialias_blur"][1:3] == (
                ref["antialias_blur"]["stride_x"],
                ref["antialias_blur"]["stride_y"],
            )
    if "weights_layout" not in manifest:  # pjreddie_cfg_*: pjreddie wrote the file
        return
    layout = {e["index"]: e for e in manifest["weights_layout"]}
    for layer in net.layers:
        entry = layout.get(layer.index, {"floats": 0, "parts": []})
        assert layer.params == entry["floats"], layer.index
        assert [r.count for r in layer.records] == [n for _, n in entry["parts"]], layer.index
        assert [r.part for r in layer.records] == [p.split(".")[-1] for p, _ in entry["parts"]]
    assert net.weights_bytes() == manifest["weights_bytes"]


def test_conv_options_resolved_like_parse_convolutional():
    net = load_network(AB / "layers" / "conv_stride_xy" / "case.cfg", dialect="alexeyab")
    manifest = json.loads((AB / "layers" / "conv_stride_xy" / "manifest.json").read_text())
    for ours, ref in zip(net.layers, manifest["layers"], strict=True):
        for key in ("stride", "stride_x", "stride_y", "dilation", "size", "groups"):
            if key in ref:
                assert ours.options[key] == ref[key], (ours.index, key)
        if ref["type"] == "convolutional":
            assert ours.options["padding"] == ref["pad"]


def test_cpu_zero_activations_are_listed():
    net = load_network(AB / "layers" / "act_mish" / "case.cfg", dialect="alexeyab")
    assert net.cpu_zero_layers() == ((6, "activation", "mish"),)
    relu6 = load_network(AB / "layers" / "act_relu6" / "case.cfg", dialect="alexeyab")
    assert {t for _, t, _ in relu6.cpu_zero_layers()} == {"convolutional", "activation"}
    assert load_network("yolov3").cpu_zero_layers() == ()


def test_unbuilt_options_parse_but_refuse_a_model():
    net = load_network("alexeyab/yolov3-tiny_xnor")
    assert net.weights_bytes() == int((TABLES / "yolov3-tiny_xnor.weights_bytes").read_text())
    with pytest.raises(UnsupportedError, match="'xnor'") as info:
        net.check_buildable()
    assert info.value.span.line > 0
    load_network("yolov4-tiny").check_buildable()  # nothing unbuilt: no error
    load_network("yolov4-tiny_contrastive").check_buildable()  # [contrastive] outputs zeros


def test_semantic_errors_are_positioned():
    base = "[net]\nwidth=8\nheight=8\nchannels=4\n[conv]\nfilters=4\nsize=1\n"
    bad = {
        "[shortcut]\nfrom=-1\nweights_type=per_channel\n": "weights_normalization",
        "[shortcut]\nfrom=-1\nweights_type=bogus\n": "weights_type",
        "[route]\nlayers=-1\ngroups=2\ngroup_id=2\n": "group_id",
        "[conv]\nfilters=4\nshare_index=5\n": "share_index",
        "[maxpool]\nsize=2\nstride=2\n[sam]\nfrom=-2\n": "must match",
    }
    for tail, what in bad.items():
        with pytest.raises(DarkconvError, match=what) as info:
            parse_network(base + tail, "x.cfg", dialect="alexeyab")
        assert info.value.span.line > 6, tail


def test_dilation_without_matching_padding_is_not_reproducible():
    # im2col pads by pad*dilation while the output size ignores dilation: Darknet reads leftovers.
    base = (
        "[net]\nwidth=16\nheight=16\nchannels=3\n[convolutional]\nfilters=4\nsize=3\ndilation=2\n"
    )
    bad = parse_network(base + "pad=0\n", "d.cfg", dialect="alexeyab")
    assert bad.layers[0].output == (4, 14, 14)  # what Darknet reports
    with pytest.raises(UnsupportedError, match="dilation=2") as info:
        bad.check_buildable()
    assert info.value.span.line == 8
    parse_network(base + "pad=1\n", "d.cfg", dialect="alexeyab").check_buildable()
