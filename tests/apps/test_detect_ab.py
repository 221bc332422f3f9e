"""AlexeyAB's ``detector test`` step by step against its stored intermediates
(fixtures/alexeyab/apps): preprocessing, decoding, NMS by nms_kind, draw_detections_v3 lines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from darkconv.apps.decode import Boxes, Head
from darkconv.apps.decode_ab import FAST_MATH_RECIPROCAL, fast_reciprocal, get_network_boxes_ab
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


def _head(kind: str, **kw: object) -> Head:
    base: dict = {"index": 0, "type": kind, "w": 1, "h": 1, "n": 1, "classes": 1}
    base.update(kw)
    return Head.from_dict(base)


def test_region_cell_major_by_hand() -> None:
    # AlexeyAB's [region] output is (cell, anchor, entry); x,y go through the logistic here
    head = _head("region", w=2, classes=2, anchors=[[1, 1]])
    out = np.array([[0, 0, 0, 0, 0.8, 0.5, 0.25], [0, 0, 0, 0, 0.8, 0.5, 0.25]], np.float32)
    b = get_network_boxes_ab([head], {0: out}, 10, 10, 20, 20, 0.3, letter=False)
    # exp(0)*1/lw, then correct_yolo_boxes' w *= 1/ratio with the -Ofast reciprocal of 1
    f = float(FAST_MATH_RECIPROCAL[1.0])
    assert b.bbox.tolist() == [[0.25, 0.5, 0.5 * f, f], [0.75, 0.5, 0.5 * f, f]]
    assert b.objectness.tolist() == [1.0, 1.0]  # custom_get_region_detections
    assert b.prob[:, 0] == pytest.approx([0.4, 0.4]) and b.prob[:, 1].tolist() == [0, 0]


def test_gaussian_yolo_by_hand() -> None:
    # entries x, sx, y, sy, w, sw, h, sh, objectness, class0
    out = np.array([0.5, 0.2, 0.5, 0.2, 0, 0.2, 0, 0.2, 0.9, 0.5], np.float32)
    head = _head("Gaussian_yolo", mask=[0], anchors=[[2, 4]])
    b = get_network_boxes_ab([head], {0: out}, 10, 10, 4, 8, 0.3, letter=False)
    # exp(0)*2/4, exp(0)*4/8, then correct_gaussian_yolo_boxes at -Ofast: ratio = new*rcp(net)
    # = f (net 4, 8: powers of two), x /= f in double (0.5 + 2**-25 + ... rounds up to the next
    # float), w *= net*rcp(new) = f
    f = FAST_MATH_RECIPROCAL[1.0]
    x = float(np.float32(0.5 * (1.0 / float(f))))
    assert x == 0.5 + 2**-24
    assert b.bbox.tolist() == [[x, x, 0.5 * float(f), 0.5 * float(f)]]
    assert b.prob[0, 0] == pytest.approx(0.9 * 0.5 * (1 - 0.2))  # times 1 - mean uncertainty
    lt = _head("Gaussian_yolo", mask=[0], anchors=[[2, 4]], yolo_point="left_top")
    b = get_network_boxes_ab([lt], {0: out}, 10, 10, 4, 8, 0.3, letter=False)
    xl = float(np.float32(0.75 * (1.0 / float(f))))  # x + w/2, y + h/2, then x /= f
    assert b.bbox[0, :2].tolist() == [xl, xl] and xl == 0.75 + 2**-24


def test_new_coords_and_letterbox_correction_by_hand() -> None:
    # new_coords=1: w = t*t*4*anchor/net (no exp); t = 0.5 -> anchor/net
    out = np.zeros((1, 6, 1, 1), np.float32)
    out[0, :, 0, 0] = [0.5, 0.5, 0.5, 0.5, 0.9, 0.9]
    head = _head("yolo", mask=[0], anchors=[[50, 25]], new_coords=1)
    b = get_network_boxes_ab([head], {0: out}, 100, 100, 100, 100, 0.5, letter=False)
    f = float(FAST_MATH_RECIPROCAL[1.0])  # w *= 1/ratio, ratio 1
    assert b.bbox.tolist() == [[0.5, 0.5, 0.5 * f, 0.25 * f]]
    # letterbox: a 200x100 image in 100x100 is 100x50 at dy=25: y' = (y - .25)/.5, h' = h/.5
    # (1/.5 is 2*f: the reciprocal of a power of two has the significand of 1/1)
    b = get_network_boxes_ab([head], {0: out}, 200, 100, 100, 100, 0.5, letter=True)
    assert b.bbox.tolist() == [[0.5, 0.5, 0.5 * f, 0.5 * f]]


def test_fast_math_reciprocal_arithmetic() -> None:
    """rcpps(1) = 1 - 2**-12 on the fixtures' CPU; one Newton step (r0 + r0) - (a*r0)*r0 in float:
    2 - 2**-11 - (1 - 2**-11 + 2**-24) = 1 - 2**-24, all terms exact in float32."""
    r0, a = np.float32(1 - 2**-12), np.float32(1)
    assert FAST_MATH_RECIPROCAL[1.0] == (r0 + r0) - (a * r0) * r0 == np.float32(1 - 2**-24)
    assert fast_reciprocal(np.float32(0.25)) == np.float32(4 * (1 - 2**-24))
    assert fast_reciprocal(np.float32(0.625)) == np.float32(1) / np.float32(0.625)  # no entry


@pytest.mark.parametrize("name", CASES)
def test_resize_boxes_bit_exact(name: str) -> None:
    """Without letterbox every ratio is 1: the decoded boxes equal Darknet's bit for bit."""
    case, arrays = load_case(name)
    if case["letter_box"]:
        pytest.skip("letterbox: ratios other than powers of two use the CPU's rcpps table")
    assert np.array_equal(decode(case, arrays).bbox.astype(np.float32), arrays["dets_pre_bbox"])


def test_resize_min_crop_by_hand() -> None:
    from darkconv.apps.preprocess import classifier_input, crop_image, resize_min

    im = np.arange(2 * 4, dtype=np.float32).reshape(1, 2, 4).repeat(3, 0)
    assert resize_min(im, 2) is im  # the shorter side is already 2
    # a crop leaving the image repeats the edge (constrain_int)
    assert crop_image(im, -1, 0, 3, 1)[0].tolist() == [[0, 0, 1]]
    x = classifier_input(im, 2, 2, app_dialect("alexeyab"))
    assert x[0].tolist() == [[1, 2], [5, 6]]  # centre crop at dx = (4-2)/2


def test_alexeyab_predict_line() -> None:
    from darkconv.apps.classifier import top_predictions

    preds = top_predictions([0.25, 0.5], 2, ["a", "b"], "alexeyab")
    assert [p.line for p in preds] == ["b: 0.500000", "a: 0.250000"]  # "%s: %f"


def test_cli_ext_output_is_alexeyab_only() -> None:
    from click.testing import CliRunner

    from darkconv.cli.main import cli

    nets = APPS.parents[1] / "nets" / "yolov3-tiny"
    args = ["detect", str(nets / "yolov3-tiny.cfg"), str(nets / "yolov3-tiny.weights"),
            str(APPS.parent / "data" / "eagle_256x160.png"), "--dialect", "pjreddie",
            "--ext-output"]  # fmt: skip
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 2 and "AlexeyAB" in res.output
    assert "Traceback" not in res.output


@pytest.mark.parametrize("name", CASES)
def test_detector_steps_from_head_outputs(name: str) -> None:
    """The path darkconv.detect and the CLI take after the forward pass (steps.py)."""
    from darkconv.apps.steps import detect_from_outputs, setup_for_heads

    case, arrays = load_case(name)
    heads = [Head.from_dict(d) for d in case["output_layers"]]
    setup = setup_for_heads(heads, app_dialect("alexeyab"), bool(case["letter_box"]),
                            heads[-1].classes)  # fmt: skip
    assert (setup.nms_kind, setup.beta_nms) == (case["nms_kind"], case["beta_nms"])
    outputs = {h.index: arrays[f"layer_{h.index:03d}"] for h in heads}
    im, net = case["image_size"], case["network_size"]
    res = detect_from_outputs(setup, outputs, im["w"], im["h"], net["w"], net["h"],
                              case["thresh"], names=case["names"],
                              ext_output=bool(case["ext_output"]))  # fmt: skip
    assert list(res.lines) == case["printed_lines"]
    assert res.nboxes == case["nboxes"]
    assert [d.position for d in res.drawn()] == [b["position"] for b in case["drawn_boxes"]]
    doc = res.to_json()
    assert doc["dialect"] == "alexeyab" and doc["lines"] == case["printed_lines"]


def test_alexeyab_prints_no_yolov1_detection() -> None:
    """get_detection_detections never sets dets[i].classes: draw_detections_v3 shows none."""
    from darkconv.apps.steps import detect_from_outputs, setup_for_heads

    head = Head.from_dict({"index": 0, "type": "detection", "side": 1, "n": 1, "classes": 1})
    out = np.array([0.9, 0.8, 0.5, 0.5, 0.5, 0.5], np.float32)  # class, confidence, box
    for dialect, lines in (("pjreddie", ["0: 72%"]), ("alexeyab", [])):
        setup = setup_for_heads([head], app_dialect(dialect), False, 1)
        res = detect_from_outputs(setup, {0: out}, 10, 10, 10, 10, 0.5)
        assert list(res.lines) == lines


def _reference_nms(boxes: Boxes, classes: int, thr: float, kind: str, beta: float) -> Boxes:
    """box.c's loops literally: partition, then per class a stable sort and pair by pair."""
    from darkconv.apps.nms_ab import nms_kind_name

    order = list(range(len(boxes)))
    k, i = len(boxes) - 1, 0
    while i <= k:
        if boxes.objectness[order[i]] == 0:
            order[i], order[k] = order[k], order[i]
            k -= 1
        else:
            i += 1
    live, out = k + 1, boxes.take(order)
    kind = nms_kind_name(kind)
    for c in range(classes):
        out.sort_class[:live] = c
        out = out.take([*np.argsort(-out.prob[:live, c], kind="stable"), *range(live, len(out))])
        for i in range(live):
            if out.prob[i, c] == 0:
                continue
            for j in range(i + 1, live):
                a, b = out.bbox[i], out.bbox[j][None, :]
                if kind in ("default", "cornersnms"):
                    value = box_iou_ab(a, b)[0]
                else:
                    value = box_diou(a, b, 0.6 if kind == "greedynms" else beta)[0]
                if value > np.float32(thr):
                    out.prob[j, c] = 0
    return out


@pytest.mark.parametrize("seed", range(6))
def test_nms_matches_the_literal_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, c = int(rng.integers(1, 60)), int(rng.integers(1, 4))
    bbox = np.concatenate([rng.random((n, 2)), rng.random((n, 2)) * 0.5], 1).astype(np.float32)
    bbox[: n // 8, 2:] = 0  # empty boxes: I = U = 0
    obj = np.where(rng.random(n) < 0.15, 0, rng.random(n)).astype(np.float32)
    prob = np.where(rng.random((n, c)) < 0.4, 0, rng.random((n, c))).astype(np.float32)
    prob[rng.random((n, c)) < 0.1] = 0.5  # ties keep their order
    origin = np.zeros((n, 5), np.int64)
    origin[:, 0] = np.arange(n)
    boxes = Boxes(bbox, obj, prob, np.zeros(n, np.int64), origin)
    for kind, beta, thr in (("default", 0.6, 0.45), ("greedynms", 0.6, 0.3),
                            ("diounms", 1.0, 0.45), ("diounms", 2.0, -0.2)):  # fmt: skip
        got = nms_ab(boxes, c, thr, kind, beta)
        ref = _reference_nms(boxes, c, thr, kind, beta)
        assert got.origin[:, 0].tolist() == ref.origin[:, 0].tolist()
        assert np.array_equal(got.prob, ref.prob) and np.array_equal(got.sort_class, ref.sort_class)
