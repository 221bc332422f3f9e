"""``--decode`` and ``--nms`` graphs against ``darkconv detect`` and Darknet (fixtures/apps).

One export per network, shared by its cases: ``thresh`` is the lowest of those cases, and each
case keeps the rows above its own threshold.  That is exactly NMS at the case's threshold:
greedy NMS visits boxes in descending score order and a box only suppresses lower ones, so the
boxes between the two thresholds change nothing above the higher one.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from export_util import APPS, DETECT_CASES, detect_case, exported, ort_session

from darkconv.apps.api import forward_layers
from darkconv.apps.decode import get_network_boxes
from darkconv.export.decode import decoded_index, model_heads, prob_classes, undo_letterbox
from darkconv.nn.builder import load

pytest.importorskip("onnxruntime", reason="onnxruntime missing: pip install 'darkconv[onnx]'")
pytest.importorskip("onnxscript", reason="onnxscript missing: pip install 'darkconv[onnx]'")

MAX_DET = 1000  # no case comes close: every surviving row is returned


def _lowest_thresh() -> dict[tuple[str, str], float]:
    lowest: dict[tuple[str, str], float] = defaultdict(lambda: 1.0)
    for name in DETECT_CASES:
        case, _, cfg, weights = detect_case(name)
        key = (str(cfg), str(weights))
        lowest[key] = min(lowest[key], float(case["thresh"]))
    return lowest


LOWEST = _lowest_thresh()


def _run(name: str) -> tuple[dict, dict, object, dict[str, np.ndarray]]:
    case, arrays, cfg, weights = detect_case(name)
    path: Path = exported(cfg, weights, ".onnx", nms=True, max_det=MAX_DET,
                          thresh=LOWEST[(str(cfg), str(weights))])  # fmt: skip
    session = ort_session(path, ("decoded_boxes", "decoded_scores"))
    names = [o.name for o in session.get_outputs()]
    outs = dict(zip(names, session.run(None, {"input": arrays["input"]}), strict=True))
    return case, arrays, load(cfg, weights), outs


def _xywh(corners: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = np.moveaxis(corners, -1, 0)
    return np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=-1)


@pytest.mark.parametrize("name", DETECT_CASES)
def test_decode_equals_detect_before_nms(name: str) -> None:
    case, arrays, model, outs = _run(name)
    network = model.network
    heads = model_heads(model, network)
    _, net_h, net_w = network.input
    im_w, im_h = case["image_size"]["w"], case["image_size"]["h"]
    thresh = float(case["thresh"])
    # darkconv detect before NMS: the eager model's heads through get_network_boxes
    layers = forward_layers(model, arrays["input"][0], [h.index for h in heads])
    ours = get_network_boxes(heads, layers, im_w, im_h, net_w, net_h, thresh,
                             prob_classes(network, heads))  # fmt: skip
    k = [decoded_index(heads, *map(int, o[1:])) for o in ours.origin]
    boxes = _xywh(undo_letterbox(outs["decoded_boxes"][0, k], im_w, im_h, net_w, net_h))
    np.testing.assert_allclose(boxes, ours.bbox, rtol=1e-4, atol=1e-5)
    scores = outs["decoded_scores"][0, k]
    kept = ours.prob != 0  # Darknet zeroes every prob <= thresh
    np.testing.assert_allclose(scores[kept], ours.prob[kept], rtol=1e-4, atol=1e-6)
    assert np.all(scores[~kept] <= np.float32(thresh) + 1e-5)
    # and Darknet's own array, with the fixture's box tolerance
    ref = np.asarray(arrays["dets_pre_bbox"])
    np.testing.assert_allclose(boxes, ref, rtol=0, atol=1e-3 * np.maximum(1, np.abs(ref)).max())
    assert len(k) == case["nboxes"]


@pytest.mark.parametrize("name", DETECT_CASES)
def test_nms_keeps_darknets_printed_lines(name: str) -> None:
    case, arrays, model, outs = _run(name)
    heads = model_heads(model, model.network)
    thresh = np.float32(case["thresh"])
    n = int(outs["num_detections"][0])
    assert n < MAX_DET
    assert np.all(outs["classes"][0, n:] == -1) and np.all(outs["scores"][0, n:] == 0)
    rows = [i for i in range(n) if outs["scores"][0, i] > thresh]
    assert np.all(np.diff(outs["scores"][0, :n]) <= 0)  # best first
    decoded = outs["decoded_boxes"][0]
    got = {}
    for i in rows:
        matches = np.nonzero(np.all(decoded == outs["boxes"][0, i], axis=1))[0]
        assert len(matches) == 1, matches
        got[(int(matches[0]), int(outs["classes"][0, i]))] = float(outs["scores"][0, i])
    pre = case["detections_pre_nms"]
    want = {}
    for line in case["printed"]:
        d = pre[line["pre_index"]]
        want[(decoded_index(heads, d["layer"], d["row"], d["col"], d["anchor"]), line["cls"])] = (
            line["prob"]
        )
    assert sorted(got) == sorted(want), case["printed_lines"]
    for key, prob in want.items():
        assert abs(got[key] - prob) <= 1e-3 * max(1.0, abs(prob))


# --- AlexeyAB's detector test (fixtures/alexeyab/apps) ----------------------------------------

AB_APPS = APPS.parent / "alexeyab" / "apps"
AB_CASES = sorted(p.name for p in AB_APPS.glob("detect_*") if (p / "case.json").exists())
#: AlexeyAB's DIoU kinds (box.c diounms_sort): IoU - (d/c)^beta instead of IoU
DIOU_KINDS = ("greedynms", "diounms")


def _ab_path(name: str, rel: str) -> Path:
    """A case's path, relative to ``alexeyab/apps/<case>`` of the shared fixtures' layout, in
    the repository's fixtures/ (``darknet/`` is fixtures/ itself)."""
    parts = ["alexeyab", "apps", name]
    for part in Path(rel).parts:
        if part == "..":
            parts.pop()
        else:
            parts.append(part)
    root = APPS.parent if parts[0] == "darknet" else APPS.parent / "alexeyab"
    return root.joinpath(*parts[1:])


def _ab_run(name: str, tmp: Path) -> tuple[dict, dict, object, dict[str, np.ndarray]]:
    folder = AB_APPS / name
    case = json.loads((folder / "case.json").read_text())
    with np.load(folder / "arrays.npz") as z:
        arrays = {k: z[k] for k in z.files}
    # nms_kind/beta_nms only choose Darknet's NMS: one export serves every kind of a network
    text = _ab_path(name, case["cfg"]).read_text()
    skip = ("#", "nms_kind", "beta_nms")
    graph = "\n".join(ln for ln in text.splitlines() if not ln.strip().startswith(skip))
    cfg = tmp / f"{abs(hash(graph))}.cfg"
    cfg.write_text(graph)
    weights = _ab_path(name, case["weights"])
    path = exported(cfg, weights, ".onnx", nms=True, max_det=MAX_DET, thresh=0.2,
                    dialect="alexeyab", via_cli=True)  # fmt: skip
    session = ort_session(path, ("decoded_boxes", "decoded_scores"))
    names = [o.name for o in session.get_outputs()]
    outs = dict(zip(names, session.run(None, {"input": arrays["input"]}), strict=True))
    return case, arrays, load(cfg, weights, dialect="alexeyab"), outs


@pytest.fixture(scope="module")
def ab_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ab_cfgs")


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=[pytest.mark.slow] if "yolov4_" in n else []) for n in AB_CASES],
)
def test_alexeyab_decode_and_nms(name: str, ab_tmp: Path) -> None:
    case, arrays, model, outs = _ab_run(name, ab_tmp)
    heads = model_heads(model, model.network)
    _, net_h, net_w = model.network.input
    pre = case["detections_pre_nms"]
    k = [decoded_index(heads, d["layer"], d["row"], d["col"], d["anchor"]) for d in pre]
    corners = outs["decoded_boxes"][0, k]
    pp = case["preprocess"]
    if pp["kind"] == "letterbox_image":  # resize_image: network-relative = image-relative
        im = case["image_size"]
        corners = undo_letterbox(corners, im["w"], im["h"], net_w, net_h)
    ref = np.asarray(arrays["dets_pre_bbox"])
    np.testing.assert_allclose(_xywh(corners), ref, rtol=0,
                               atol=1e-3 * np.maximum(1, np.abs(ref)).max())  # fmt: skip
    prob = np.asarray(arrays["dets_pre_prob"])
    scores = outs["decoded_scores"][0, k]
    np.testing.assert_allclose(scores[prob != 0], prob[prob != 0], rtol=1e-3, atol=1e-6)
    # NMS: the rows above the case's threshold against Darknet's printed (box, class) pairs
    thresh = np.float32(case["thresh"])
    n = int(outs["num_detections"][0])
    decoded = outs["decoded_boxes"][0]
    got = set()
    for i in range(n):
        if outs["scores"][0, i] > thresh:
            (match,) = np.nonzero(np.all(decoded == outs["boxes"][0, i], axis=1))[0]
            got.add((int(match), int(outs["classes"][0, i])))
    want = {(k[line["pre_index"]], line["cls"]) for line in case["printed"]}
    if case["nms_kind"] not in DIOU_KINDS:
        assert got == want
        return
    # DIoU <= IoU, so DIoU-NMS suppresses less: each line ONNX drops must overlap a kept box of
    # its class, with a higher score, by IoU > nms (what plain NonMaxSuppression tests)
    assert got <= want
    for box, cls in want - got:
        better = [b for b, c in got if c == cls and outs["decoded_scores"][0, b, cls]
                  > outs["decoded_scores"][0, box, cls]]  # fmt: skip
        ious = [_iou(decoded[box], decoded[b]) for b in better]
        assert ious and max(ious) > case["nms"], (box, cls)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(iw, 0) * max(ih, 0)
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))
