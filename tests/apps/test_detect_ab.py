"""AlexeyAB's ``detector test`` step by step against its stored intermediates
(fixtures/alexeyab/apps): preprocessing, decoding, NMS by nms_kind, draw_detections_v3 lines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from darkconv.apps.decode import Boxes, Head
from darkconv.apps.decode_ab import get_network_boxes_ab
from darkconv.apps.dialects import app_dialect
from darkconv.apps.draw_ab import draw_detections_v3, ext_output_box
from darkconv.apps.image import load_image
from darkconv.apps.nms_ab import NMS_KINDS, box_diou, box_iou_ab, nms_ab, nms_kind_name
from darkconv.apps.preprocess import detector_input

APPS = Path(__file__).resolve().parents[2] / "fixtures" / "alexeyab" / "apps"
CASES = sorted(p.name for p in APPS.glob("detect_*") if (p / "case.json").exists())


def load_case(name: str) -> tuple[dict, dict]:
    case = json.loads((APPS / name / "case.json").read_text())
    with np.load(APPS / name / "arrays.npz") as z:
        arrays = {k: z[k] for k in z.files}
    return case, arrays


def decode(case: dict, arrays: dict) -> Boxes:
    heads = [Head.from_dict(d) for d in case["output_layers"]]
    outputs = {h.index: arrays[f"layer_{h.index:03d}"] for h in heads}
    im, net = case["image_size"], case["network_size"]
    return get_network_boxes_ab(heads, outputs, im["w"], im["h"], net["w"], net["h"],
                                case["thresh"], bool(case["letter_box"]))  # fmt: skip


def after_nms(case: dict, arrays: dict) -> Boxes:
    return nms_ab(decode(case, arrays), case["classes"], case["nms"], case["nms_kind"],
                  case["beta_nms"])  # fmt: skip


@pytest.mark.parametrize("name", CASES)
def test_image_and_network_input(name: str) -> None:
    case, arrays = load_case(name)
    im = load_image(APPS / name / case["image_from_case"])
    assert np.array_equal(im, arrays["image"])
    net = case["network_size"]
    x = detector_input(im, net["w"], net["h"], app_dialect("alexeyab"), bool(case["letter_box"]))
    assert np.array_equal(x, arrays["input"][0])  # bit-exact (README: achievable)


@pytest.mark.parametrize("name", CASES)
def test_get_network_boxes(name: str) -> None:
    case, arrays = load_case(name)
    boxes = decode(case, arrays)
    assert len(boxes) == case["nboxes"]
    ref = arrays["dets_pre_bbox"].astype(np.float64)
    err = np.abs(boxes.bbox - ref) / np.maximum(np.abs(ref), 1e-30)
    assert float(err.max()) <= 2.5e-7, float(err.max())  # README: within 2 float32 ulp
    assert np.array_equal(boxes.objectness, arrays["dets_pre_objectness"])
    assert np.array_equal(boxes.prob, arrays["dets_pre_prob"])
    where = [(d["layer"], d["row"], d["col"], d["anchor"]) for d in case["detections_pre_nms"]]
    assert [tuple(o) for o in boxes.origin[:, 1:].tolist()] == where


@pytest.mark.parametrize("name", CASES)
def test_nms_order_and_probs(name: str) -> None:
    case, arrays = load_case(name)
    out = after_nms(case, arrays)
    assert out.origin[:, 0].tolist() == arrays["dets_post_pre_index"].tolist()
    assert np.array_equal(out.prob, arrays["dets_post_prob"])
    assert out.sort_class.tolist() == [d["sort_class"] for d in case["detections_after_nms"]]


@pytest.mark.parametrize("name", CASES)
def test_printed_lines_and_drawn_boxes(name: str) -> None:
    case, arrays = load_case(name)
    out = after_nms(case, arrays)
    im = case["image_size"]
    dets, draw = draw_detections_v3(out, im["w"], im["h"], case["thresh"], case["names"],
                                    case["classes"], bool(case["ext_output"]))  # fmt: skip
    assert [line for d in dets for line in d.lines] == case["printed_lines"]
    printed = [(p["position"], p["pre_index"], p["cls"], p["prob"]) for p in case["printed"]]
    mine = [(d.position, d.index, j, d.prob[j]) for d in dets for j in d.classes]
    assert mine == printed
    got = [(dets[n].position, dets[n].index, dets[n].classes[0], dets[n].names[0],
            dets[n].left, dets[n].right, dets[n].top, dets[n].bot, dets[n].line_width)
           for n in draw]  # fmt: skip
    ref = [(b["position"], b["pre_index"], b["best_class"], b["label"], b["left"], b["right"],
            b["top"], b["bot"], b["line_width"]) for b in case["drawn_boxes"]]  # fmt: skip
    assert got == ref


def test_nms_kinds_table() -> None:
    assert nms_kind_name("greedynms") == "greedynms"
    assert nms_kind_name("nonsense") == "default"  # parse_yolo: unknown -> DEFAULT_NMS
    assert nms_kind_name(None) == "default"
    assert set(NMS_KINDS) == {"default", "cornersnms", "greedynms", "diounms"}


def test_box_values_by_hand() -> None:
    a = np.array([0.5, 0.5, 0.2, 0.2], np.float32)
    b = np.array([[0.6, 0.5, 0.2, 0.2], [0.9, 0.9, 0.1, 0.1], [0.5, 0.5, 0.0, 0.0]], np.float32)
    iou = box_iou_ab(a, b)
    # overlap 0.1*0.2 = 0.02, union 0.04+0.04-0.02 = 0.06 -> 1/3; disjoint -> 0; empty box -> 0
    assert iou[0] == pytest.approx(1 / 3, rel=1e-6)
    assert iou[1] == 0 and iou[2] == 0
    # enclosing box 0.3 x 0.2: c = 0.13, d = 0.01 -> IoU - (1/13)^beta
    d = box_diou(a, b[:1], 1.0)
    assert d[0] == pytest.approx(1 / 3 - 1 / 13, rel=1e-5)
    g = box_diou(a, b[:1], 0.6)
    assert g[0] == pytest.approx(1 / 3 - (1 / 13) ** 0.6, rel=1e-5)
    same = box_diou(a, a[None, :], 0.6)
    assert same[0] == pytest.approx(1.0)


def test_ext_output_rounding() -> None:
    # round() halves away from zero, the sign of a zero is printed: -0.3 px -> "  -0"
    line = ext_output_box((0.1, 0.5, 0.2 + 0.3 / 100, 0.5), 100, 10)
    assert line.startswith("\t(left_x:   -0   top_y:    3   width:   20")
    assert ext_output_box((0.5, 0.5, 0.25, 0.5), 10, 10) == (
        "\t(left_x:    4   top_y:    3   width:    3   height:    5)"
    )
