"""Decoding, NMS, printing and top-k from Darknet's own head outputs (fixtures/apps)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from darkconv.apps.classifier import format_prediction, top_k, top_predictions
from darkconv.apps.decode import Boxes, Head, get_network_boxes
from darkconv.apps.draw import DetectResult, draw_detections, render_boxes, save_image
from darkconv.apps.labels import LabelsError, read_data_file, read_names, resolve_data_path
from darkconv.apps.nms import box_iou, do_nms_sort

APPS = Path(__file__).resolve().parents[2] / "fixtures" / "apps"
DETECT = sorted(p.name for p in APPS.glob("detect_*") if (p / "case.json").exists())
CLASSIFY = sorted(p.name for p in APPS.glob("classify_*") if (p / "case.json").exists())


def _case(name: str) -> tuple[dict, dict]:
    case = json.loads((APPS / name / "case.json").read_text())
    with np.load(APPS / name / "arrays.npz") as z:
        arrays = {k: z[k] for k in z.files}
    return case, arrays


def _decode(case: dict, arrays: dict) -> tuple[list[Head], Boxes]:
    heads = [Head.from_dict(d) for d in case["output_layers"]]
    outputs = {h.index: arrays[f"layer_{h.index:03d}"] for h in heads}
    im, net = case["image_size"], case["network_size"]
    boxes = get_network_boxes(heads, outputs, im["w"], im["h"], net["w"], net["h"], case["thresh"])
    return heads, boxes


def _close(got: np.ndarray, ref: np.ndarray, rel: float) -> bool:
    ref = np.asarray(ref, dtype=np.float64)
    return bool(np.all(np.abs(got - ref) <= rel * np.maximum(1.0, np.abs(ref))))


@pytest.mark.parametrize("name", DETECT)
def test_get_network_boxes(name: str) -> None:
    case, arrays = _case(name)
    _, boxes = _decode(case, arrays)
    assert len(boxes) == case["nboxes"] == case["nms_total_argument"]
    assert _close(boxes.bbox, arrays["dets_pre_bbox"], 1e-3)
    assert _close(boxes.bbox, arrays["dets_pre_bbox"], 1e-6)  # README: within 2 float32 ulp
    assert np.array_equal(boxes.objectness, arrays["dets_pre_objectness"])
    assert np.array_equal(boxes.prob, arrays["dets_pre_prob"])
    where = [(d["layer"], d["row"], d["col"], d["anchor"]) for d in case["detections_pre_nms"]]
    assert [tuple(o) for o in boxes.origin[:, 1:].tolist()] == where


@pytest.mark.parametrize("name", DETECT)
def test_do_nms_sort(name: str) -> None:
    case, arrays = _case(name)
    _, boxes = _decode(case, arrays)
    before = boxes.prob.copy()
    out = do_nms_sort(boxes, case["classes"], case["nms"])
    assert np.array_equal(boxes.prob, before)  # the input is left alone
    assert out.origin[:, 0].tolist() == arrays["dets_post_pre_index"].tolist()
    assert np.array_equal(out.prob, arrays["dets_post_prob"])
    assert out.sort_class.tolist() == [d["sort_class"] for d in case["detections_after_nms"]]


@pytest.mark.parametrize("name", DETECT)
def test_printed_lines_and_corners(name: str) -> None:
    case, arrays = _case(name)
    _, boxes = _decode(case, arrays)
    out = do_nms_sort(boxes, case["classes"], case["nms"])
    im = case["image_size"]
    dets = draw_detections(out, im["w"], im["h"], case["thresh"], case["names"], case["classes"])
    assert [line for d in dets for line in d.lines] == case["printed_lines"]
    got = [(d.position, d.index, d.classes[0], d.label, d.line_width) for d in dets]
    ref = [
        (b["position"], b["pre_index"], b["first_class"], b["label"], b["line_width"])
        for b in case["drawn_boxes"]
    ]
    assert got == ref
    for d, b in zip(dets, case["drawn_boxes"], strict=True):
        for k in ("left", "right", "top", "bot"):
            assert abs(getattr(d, k) - b[k]) <= 1
        assert (d.left, d.right, d.top, d.bot) == (b["left"], b["right"], b["top"], b["bot"])
    printed = [(p["position"], p["cls"], p["prob"]) for p in case["printed"]]
    mine = [(d.position, j, d.prob[j]) for d in dets for j in d.classes]
    assert mine == printed


@pytest.mark.parametrize("name", CLASSIFY)
def test_classifier_top_k(name: str) -> None:
    case, arrays = _case(name)
    preds = top_predictions(arrays["predictions"], case["top"], case["names"])
    assert [p.line for p in preds] == case["printed_lines"]
    assert [(p.index, p.name, p.prob) for p in preds] == [
        (t["index"], t["name"], t["value"]) for t in case["top_k"]
    ]


def test_top_k_ties_and_nan() -> None:
    assert top_k([0.1, 0.5, 0.5, 0.2], 3) == [1, 2, 3]  # tie: lower index first
    assert top_k([0.5, 0.5, 0.5], 2) == [0, 1]
    assert top_k([float("nan"), 0.3, 0.7], 3) == [0, 2, 1]  # NaN fills an empty slot, never moves
    assert top_k([1.0, 2.0], 5) == [1, 0]
    assert top_k([1.0], 0) == []
    assert format_prediction(0.9997754693031311, "Pekinese") == "99.98%: Pekinese"
    assert format_prediction(3.594925146899186e-06, "badger") == " 0.00%: badger"


def _boxes(bbox: list[list[float]], obj: list[float], prob: list[list[float]]) -> Boxes:
    n = len(bbox)
    origin = np.zeros((n, 5), dtype=np.int64)
    origin[:, 0] = np.arange(n)
    return Boxes(
        np.asarray(bbox, np.float32),
        np.asarray(obj, np.float32),
        np.asarray(prob, np.float32),
        np.zeros(n, np.int64),
        origin,
    )


def test_nms_partition_is_unstable_swap_with_last() -> None:
    # objectness 0 at 0 and 2: 0 swaps with 3, then the scan re-checks 0 (was 3)
    b = _boxes([[0.5, 0.5, 0.1, 0.1]] * 4, [0, 1, 0, 1], [[0.0]] * 4)
    out = do_nms_sort(b, 1, 0.45)
    assert out.origin[:, 0].tolist() == [3, 1, 2, 0]
    assert out.sort_class.tolist() == [0, 0, 0, 0]  # sort_class set on the live part only (=0 here)


def test_nms_strict_and_float32_iou() -> None:
    a = np.array([0.5, 0.5, 0.2, 0.2], np.float32)
    same = np.array([[0.5, 0.5, 0.2, 0.2], [0.9, 0.9, 0.1, 0.1]], np.float32)
    iou = box_iou(a, same)
    # float32 union = a + a - inter rounds, so a box's IoU with itself is 1.0000002 in Darknet too
    assert iou.dtype == np.float32 and iou[0] == np.float32(1.0000002) and iou[1] == 0
    # two identical boxes: the second (lower prob) is suppressed, the first kept
    b = _boxes([[0.5, 0.5, 0.2, 0.2]] * 2, [1, 1], [[0.6], [0.9]])
    out = do_nms_sort(b, 1, 0.45)
    assert out.origin[:, 0].tolist() == [1, 0] and out.prob[:, 0].tolist() == pytest.approx(
        [0.9, 0]
    )
    # IoU exactly float32(1/3): not suppressed at nms = 1/3 (strict >), suppressed just below
    half = _boxes([[0.5, 0.5, 0.5, 0.5], [0.75, 0.5, 0.5, 0.5]], [1, 1], [[0.9], [0.6]])
    assert box_iou(half.bbox[0], half.bbox[1:])[0] == np.float32(1 / 3)
    assert np.count_nonzero(do_nms_sort(half, 1, float(np.float32(1 / 3))).prob) == 2
    assert np.count_nonzero(do_nms_sort(half, 1, 0.333).prob) == 1


def _yolo_head() -> Head:
    return Head(
        5, "yolo", w=2, h=2, n=2, classes=1, mask=(1, 2), anchors=((1, 1), (8, 16), (32, 8))
    )


def test_yolo_layout_cell_major_and_gating() -> None:
    head = _yolo_head()
    out = np.zeros((2, 6, 2, 2), np.float32)
    out[0, 4, 1, 0] = 0.9  # anchor 0, row 1, col 0
    out[1, 4, 0, 1] = 0.8  # anchor 1, row 0, col 1
    out[1, 4, 1, 0] = 0.7  # anchor 1, row 1, col 0
    out[:, 5] = 1.0
    b = get_network_boxes([head], {5: out}, 64, 64, 64, 64, 0.5)
    # cells in row-major order, anchors inner
    assert b.origin[:, 1:].tolist() == [[5, 0, 1, 1], [5, 1, 0, 0], [5, 1, 0, 1]]
    assert b.bbox[0, 2] == np.float32(32 / 64) and b.bbox[0, 3] == np.float32(8 / 64)
    assert b.bbox[1, 0] == np.float32(0 / 2) and b.bbox[1, 1] == np.float32(1 / 2)


def test_region_anchor_major_and_detection_layout() -> None:
    head = Head(3, "region", w=2, h=1, n=2, classes=2, anchors=((1, 1), (2, 2)), softmax=1)
    out = np.zeros((2, 4 + 1 + 2, 1, 2), np.float32)
    out[1, 4, 0, 0] = 0.9
    out[1, 5:, 0, 0] = (0.2, 0.8)
    b = get_network_boxes([head], {3: out}, 10, 5, 10, 5, 0.5)
    assert len(b) == 4  # every box is returned
    assert b.origin[:, 4].tolist() == [0, 0, 1, 1]  # anchor-major
    assert b.objectness.tolist() == pytest.approx([0, 0, 0.9, 0])
    assert b.prob[2].tolist() == pytest.approx([0, 0.72])
    det = Head(9, "detection", w=2, h=2, n=1, classes=1, side=2, sqrt=1)
    flat = np.zeros(4 * 1 + 4 * 1 + 4 * 4, np.float32)
    flat[4:8] = (0.0, -2.0, 0.0, 0.0)  # confidences: raw and unbounded
    flat[0:4] = 1.0
    flat[8 + 4 : 8 + 8] = (0.5, 0.5, 0.5, 0.5)  # cell 1 (row 0, col 1)
    d = get_network_boxes([det], {9: flat}, 100, 50, 448, 448, 0.2)
    assert len(d) == 4 and d.objectness[1] == -2
    assert d.bbox[1].tolist() == pytest.approx([75.0, 12.5, 25.0, 12.5])  # pixels, no letterbox


def test_render_and_atomic_save(tmp_path: Path) -> None:
    case, arrays = _case("detect_yolov3-tiny_png")
    _, boxes = _decode(case, arrays)
    out = do_nms_sort(boxes, case["classes"], case["nms"])
    im = case["image_size"]
    dets = draw_detections(out, im["w"], im["h"], case["thresh"], case["names"], case["classes"])
    pil = render_boxes(arrays["image"], dets, case["classes"])
    target = tmp_path / "out.png"
    save_image(pil, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]
    from PIL import Image

    with Image.open(target) as back:
        assert back.size == (im["w"], im["h"])
        px = np.asarray(back)
    original = np.rint(arrays["image"].transpose(1, 2, 0) * 255).astype(np.uint8)
    assert (px != original).any()  # something was drawn
    d = dets[0]
    color = px[d.top + 20, d.left] if d.left > 0 else px[d.bot, d.left + 5]
    assert tuple(color) != (0, 0, 0)
    result = DetectResult(im["w"], im["h"], case["thresh"], 0.5, 0.45, tuple(dets),
                          tuple(line for x in dets for line in x.lines), len(boxes))  # fmt: skip
    js = json.loads(json.dumps(result.to_json()))
    assert len(js["detections"]) == len(case["drawn_boxes"])
    assert js["detections"][0]["bbox"]["x"] == pytest.approx(d.bbox[0] * im["w"])
    with pytest.raises(Exception, match="unknown image extension"):
        save_image(pil, tmp_path / "x.unknownext")


def test_names_and_data_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "n.names").write_bytes(b"a b\r\n c\n")
    assert read_names(tmp_path / "sub" / "n.names") == ("a b", " c")
    data = tmp_path / "sub" / "app.data"
    data.write_text("# comment\nnames = n.names\n top=5x\n;x=1\nnames=other\n")
    df = read_data_file(data)
    assert df.get("names") == "n.names" and df.get_int("top", 1) == 5
    assert df.get_int("missing", 1) == 1
    monkeypatch.chdir(tmp_path)
    # relative to the cwd first (Darknet), then to the .data file's folder
    assert df.names_path() == str(tmp_path / "sub" / "n.names")
    (tmp_path / "n.names").write_text("x\n")
    assert df.names_path() == "n.names"
    assert resolve_data_path("/abs/p", str(data)) == "/abs/p"
    data.write_text("names\n")
    with pytest.raises(LabelsError, match="key=value"):
        read_data_file(data)
    with pytest.raises(LabelsError, match="no such file"):
        read_names(tmp_path / "nope")


def test_no_torch_and_lazy_api() -> None:
    """The preprocessing/decoding modules stay torch-free; darkconv.predict/detect resolve lazily."""
    import subprocess
    import sys

    code = (
        "import sys, darkconv.apps.image, darkconv.apps.decode, darkconv.apps.nms, darkconv.apps.classifier, darkconv.apps.draw, "
        "darkconv.apps.labels, darkconv.apps.api, darkconv.cli.apps\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "import darkconv\n"
        "assert darkconv.detect is darkconv.apps.api.detect\n"
        "assert darkconv.predict is darkconv.apps.api.predict\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
