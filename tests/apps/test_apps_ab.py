"""End to end on every fixtures/alexeyab/apps case: image -> darkconv model -> AlexeyAB's lines.

``darknet detector test`` of AlexeyAB's fork, through the CLI (``darkconv detect --dialect
alexeyab``) and through :func:`darkconv.detect`.  Expected values come only from the fixtures.
Tolerances are the fixtures README's: network input within 1e-6 (bit-exact), heads as nets/
(5e-5 of max|ref|, yolov4 3e-3), boxes and probabilities within 1e-3*max(1,|ref|), corners within
1 px, printed lines and NMS order identical.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

import darkconv  # noqa: E402
from darkconv.apps.api import detector_setup, forward_layers, network_input  # noqa: E402
from darkconv.cli.main import cli  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
APPS = FIXTURES / "alexeyab" / "apps"
CASES = sorted(p.name for p in APPS.glob("detect_*") if (p / "case.json").exists())
#: fixtures/alexeyab/README "Tolerance": heads as nets/ (max|diff|/max|ref|)
HEAD_TOL = {"yolov4": 3e-3}
HEAD_TOL_DEFAULT = 5e-5
#: where the shared fixture folders live in this repository
FOLDERS = {"darknet": FIXTURES, "alexeyab": FIXTURES / "alexeyab"}
#: files over 2 MB (yolov4.weights) are not in the repository: a full copy of the AlexeyAB
#: fixtures can be named here (the nn tests read the same variable)
SHARED = os.environ.get("DARKCONV_ALEXEYAB_FIXTURES")


def _case(name: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    case = json.loads((APPS / name / "case.json").read_text())
    with np.load(APPS / name / "arrays.npz") as z:
        arrays = {k: z[k] for k in z.files}
    return case, arrays


def _path(name: str, rel: str) -> Path:
    """A case path (relative to ``fixtures/alexeyab/apps/<case>`` of the shared fixtures)."""
    parts: list[str] = ["alexeyab", "apps", name]
    for part in PurePosixPath(rel).parts:
        if part == "..":
            parts.pop()
        else:
            parts.append(part)
    path = FOLDERS[parts[0]].joinpath(*parts[1:])
    if not path.is_file() and SHARED and parts[0] == "alexeyab":
        path = Path(SHARED).joinpath(*parts[1:])
    if not path.is_file():
        pytest.skip(
            f"{'/'.join(parts)} is not in fixtures/ (over 2 MB: set DARKCONV_ALEXEYAB_FIXTURES)"
        )
    return path


def _flags(case: dict[str, Any]) -> tuple[bool, bool]:
    """(``-letter_box`` given on the command line, ``-ext_output``)."""
    return "-letter_box" in case["command"].split(), bool(case["ext_output"])


@functools.cache
def _model(cfg: Path, weights: Path) -> Any:
    return darkconv.load(str(cfg), str(weights), dialect="alexeyab")


def _case_model(name: str, case: dict[str, Any]) -> Any:
    return _model(_path(name, case["cfg"]), _path(name, case["weights"]))


@pytest.mark.parametrize("name", CASES)
def test_cli_prints_alexeyab_lines(name: str, tmp_path: Path) -> None:
    case, _ = _case(name)
    letter, ext = _flags(case)
    names = tmp_path / "app.names"
    names.write_text("".join(f"{n}\n" for n in case["names"]))
    args = ["detect", str(_path(name, case["cfg"])), str(_path(name, case["weights"])),
            str(_path(name, case["image_from_case"])), "--dialect", "alexeyab",
            "--thresh", str(case["thresh"]), "--names", str(names)]  # fmt: skip
    args += ["--letter-box"] * letter + ["--ext-output"] * ext
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines() == case["printed_lines"]


@pytest.mark.parametrize("name", CASES)
def test_detect_api_steps(name: str) -> None:
    case, arrays = _case(name)
    letter, ext = _flags(case)
    model = _case_model(name, case)
    network = model.network
    image = _path(name, case["image_from_case"])
    # network input: resize_image or letterbox_image, bit-exact
    _, x = network_input(image, network, "alexeyab", letter)
    assert np.array_equal(x, arrays["input"][0])
    # heads within the nets/ tolerance
    setup = detector_setup(network, "alexeyab", letter)
    assert setup.letter_box == bool(case["letter_box"])
    assert (setup.nms_kind, setup.beta_nms) == (case["nms_kind"], pytest.approx(case["beta_nms"]))
    outs = forward_layers(model, x, [h.index for h in setup.heads])
    net = PurePosixPath(case["weights"]).stem
    for h in setup.heads:
        ref = arrays[f"layer_{h.index:03d}"].reshape(-1).astype(np.float64)
        err = np.abs(outs[h.index] - ref).max() / np.abs(ref).max()
        assert err <= HEAD_TOL.get(net, HEAD_TOL_DEFAULT), (h.index, err)
    # the whole detector: lines, NMS order, boxes, probabilities, corners
    res = darkconv.detect(model, image, thresh=case["thresh"], names=case["names"],
                          dialect="alexeyab", letter_box=letter, ext_output=ext)  # fmt: skip
    assert list(res.lines) == case["printed_lines"]
    assert res.nboxes == case["nboxes"]
    mine = [(d.position, d.index, j) for d in res.detections for j in d.classes]
    assert mine == [(p["position"], p["pre_index"], p["cls"]) for p in case["printed"]]
    post = {d["position"]: d for d in case["detections_after_nms"]}
    for d in res.detections:
        ref_box = np.asarray(post[d.position]["bbox"], np.float64)
        assert np.all(np.abs(np.asarray(d.bbox) - ref_box) <= 1e-3 * np.maximum(1, abs(ref_box)))
        ref_prob = np.asarray(post[d.position]["prob"], np.float64)
        assert np.all(np.abs(np.asarray(d.prob) - ref_prob) <= 1e-3)
    drawn = [(d.position, d.left, d.right, d.top, d.bot) for d in res.drawn()]
    ref = [(b["position"], b["left"], b["right"], b["top"], b["bot"]) for b in case["drawn_boxes"]]
    assert [g[0] for g in drawn] == [r[0] for r in ref]
    assert np.abs(np.array(drawn, np.int64) - np.array(ref, np.int64)).max(initial=0) <= 1


def test_cli_json_and_drawn_image(tmp_path: Path) -> None:
    name = next(c for c in CASES if "letterbox_person" in c)
    case, arrays = _case(name)
    letter, _ = _flags(case)
    names = tmp_path / "app.names"
    names.write_text("".join(f"{n}\n" for n in case["names"]))
    out = tmp_path / "boxes.png"
    args = ["detect", str(_path(name, case["cfg"])), str(_path(name, case["weights"])),
            str(_path(name, case["image_from_case"])), "--dialect", "alexeyab", "--names",
            str(names), "--thresh", str(case["thresh"]), "--json", "-o", str(out)]  # fmt: skip
    args += ["--letter-box"] * letter
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["dialect"] == "alexeyab"
    assert [line.split("\t")[0] for line in case["printed_lines"]] == doc["lines"]
    ids = [c["id"] for d in doc["detections"] for c in d["classes"]]
    assert ids == [p["cls"] for p in case["printed"]]
    from PIL import Image

    with Image.open(out) as im:
        assert im.size == (case["image_size"]["w"], case["image_size"]["h"])
        drawn = np.asarray(im.convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255
    assert not np.allclose(drawn, arrays["image"], atol=1 / 255)  # boxes were drawn
    assert sorted(os.listdir(tmp_path)) == ["app.names", "boxes.png"]  # no temp file left
