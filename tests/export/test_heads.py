"""``--decode`` and ``--nms`` graphs against ``darkconv detect`` and Darknet (fixtures/apps).

One export per network, shared by its cases: ``thresh`` is the lowest of those cases, and each
case keeps the rows above its own threshold.  That is exactly NMS at the case's threshold:
greedy NMS visits boxes in descending score order and a box only suppresses lower ones, so the
boxes between the two thresholds change nothing above the higher one.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from export_util import DETECT_CASES, detect_case, exported, ort_session

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
