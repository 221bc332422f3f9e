"""End to end on every fixtures/apps case: cfg + .weights -> darkconv model -> Darknet's lines.

Expected values come only from the fixtures (Darknet's own dumps).  Tolerances are the ones the
fixtures README recommends: heads within 5e-4 of max|ref|, boxes and probabilities within
1e-3*max(1,|ref|), corners within 1 px, printed lines identical (the last digit may differ only
where the fixture's rounding margin is smaller than our measured probability error).
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from darkconv.apps.api import detect, forward_layers, predict  # noqa: E402
from darkconv.cli.main import cli  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
APPS = FIXTURES / "apps"
CASES = sorted(p.name for p in APPS.iterdir() if (p / "case.json").exists())
DETECT = [c for c in CASES if c.startswith("detect_")]
CLASSIFY = [c for c in CASES if c.startswith("classify_")]


def _case(name: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    case = json.loads((APPS / name / "case.json").read_text())
    with np.load(APPS / name / "arrays.npz") as z:
        arrays = {k: z[k] for k in z.files}
    return case, arrays


def _inside_fixtures(name: str, rel: str) -> Path:
    path = (APPS / name / rel).resolve()
    assert path.is_relative_to(FIXTURES.resolve()), f"{rel} leaves fixtures/"
    assert path.is_file(), path
    return path


@functools.cache
def _model(cfg: Path, weights: Path) -> Any:
    from darkconv.nn.builder import load

    return load(cfg, weights)


def _case_model(name: str, case: dict[str, Any]) -> Any:
    return _model(_inside_fixtures(name, case["cfg"]), _inside_fixtures(name, case["weights"]))


def _within(got: Any, ref: Any, rel: float) -> bool:
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    return got.shape == ref.shape and bool(
        np.all(np.abs(got - ref) <= rel * np.maximum(1.0, np.abs(ref)))
    )


def _same_lines(got: list[str], ref: list[str], margin: float, err_pct: float) -> None:
    """Identical, except a last-digit difference where the rounding margin is below our error."""
    assert len(got) == len(ref)
    for g, r in zip(got, ref, strict=True):
        if g == r:
            continue
        assert margin < err_pct, f"{g!r} != {r!r} with margin {margin} >= error {err_pct}"
        gl, gn = g.rsplit(":", 1) if ":" in g[-8:] else (g, "")
        rl, rn = r.rsplit(":", 1) if ":" in r[-8:] else (r, "")
        assert gl == rl
        step = 1.0 if "." not in rn else 0.01
        assert abs(float(gn.strip(" %")) - float(rn.strip(" %"))) <= step + 1e-9


@pytest.mark.parametrize("name", CASES)
def test_heads_from_darknet_input(name: str) -> None:
    case, arrays = _case(name)
    model = _case_model(name, case)
    keys = [d["index"] for d in case["output_layers"]]
    outs = forward_layers(model, arrays["input"][0], keys)
    for k in keys:
        ref = arrays[f"layer_{k:03d}"].reshape(-1)
        assert np.abs(outs[k] - ref).max() <= 5e-4 * np.abs(ref).max()


@pytest.mark.parametrize("name", DETECT)
def test_detect_end_to_end(name: str) -> None:
    case, arrays = _case(name)
    model = _case_model(name, case)
    res = detect(model, arrays["image"], thresh=case["thresh"], hier=0.5, nms=case["nms"],
                 names=case["names"])  # fmt: skip
    assert res.nboxes == case["nboxes"]
    drawn = case["drawn_boxes"]
    assert [d.position for d in res.detections] == [b["position"] for b in drawn]
    assert [d.index for d in res.detections] == [b["pre_index"] for b in drawn]
    assert [d.label for d in res.detections] == [b["label"] for b in drawn]
    post = {d["position"]: d for d in case["detections_after_nms"]}
    err = 0.0
    for d, b in zip(res.detections, drawn, strict=True):
        ref = post[d.position]
        assert _within(d.bbox, ref["bbox"], 1e-3)
        assert _within(d.prob, ref["prob"], 1e-3)
        assert _within(d.objectness, ref["objectness"], 1e-3)
        err = max(err, float(np.abs(np.subtract(d.prob, ref["prob"])).max()))
        for k in ("left", "right", "top", "bot"):
            assert abs(getattr(d, k) - b[k]) <= 1, (k, getattr(d, k), b[k])
    _same_lines(list(res.lines), case["printed_lines"], case["margins"]["print_rounding_pct"],
                100 * err)  # fmt: skip


@pytest.mark.parametrize("name", CLASSIFY)
def test_predict_end_to_end(name: str) -> None:
    case, arrays = _case(name)
    model = _case_model(name, case)
    preds = predict(model, arrays["image"], top=case["top"], names=case["names"])
    assert [p.index for p in preds] == [t["index"] for t in case["top_k"]]
    assert _within([p.prob for p in preds], [t["value"] for t in case["top_k"]], 1e-3)
    err = max(abs(p.prob - t["value"]) for p, t in zip(preds, case["top_k"], strict=True))
    _same_lines([p.line for p in preds], case["printed_lines"],
                case["margins"]["print_rounding_pct"], 100 * err)  # fmt: skip


def _image_of(case: dict[str, Any], arrays: dict[str, np.ndarray], name: str, tmp: Path) -> Path:
    """The image file for the CLI: the PNG or JPEG itself; without the exact JPEG decoder
    (``darkconv[jpeg]``), Darknet's decoded JPEG saved losslessly (the fixtures checked that
    Darknet prints the same lines on that PNG)."""
    from darkconv.apps.jpeg import exact_jpeg_available

    if case["image"].endswith(".png") or exact_jpeg_available():
        return _inside_fixtures(name, case["image_from_case"])
    assert case["image_as_png_prints_same_lines"]
    from PIL import Image

    pixels = np.rint(arrays["image"] * 255).astype(np.uint8).transpose(1, 2, 0)
    out = tmp / (Path(case["image"]).stem + ".png")
    Image.fromarray(np.ascontiguousarray(pixels), "RGB").save(out)
    return out


@pytest.mark.parametrize("name", CASES)
def test_cli_from_image_file(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`darkconv predict|detect` with Darknet's own .data file, run from fixtures/ like Darknet
    is run from its repo root (names=data/... resolves against the cwd)."""
    case, arrays = _case(name)
    image = _image_of(case, arrays, name, tmp_path)
    data = tmp_path / "app.data"
    data.write_text(case["data_file"])
    cfg = _inside_fixtures(name, case["cfg"])
    weights = _inside_fixtures(name, case["weights"])
    monkeypatch.chdir(FIXTURES)
    if case["mode"] == "classify":
        args = ["predict", str(cfg), str(weights), str(image), "--data", str(data)]
    else:
        args = ["detect", str(cfg), str(weights), str(image), "--data", str(data),
                "--thresh", str(case["thresh"])]  # fmt: skip
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == case["printed_lines"]


def test_cli_detect_json_and_drawing(tmp_path: Path) -> None:
    name = "detect_yolov3-tiny_png"
    case, _ = _case(name)
    image = _inside_fixtures(name, case["image_from_case"])
    names = FIXTURES / "data" / "coco.names"
    out = tmp_path / "boxes.png"
    args = ["detect", str(_inside_fixtures(name, case["cfg"])),
            str(_inside_fixtures(name, case["weights"])), str(image), "--names", str(names),
            "--thresh", str(case["thresh"]), "-o", str(out), "--json"]  # fmt: skip
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    js = json.loads(result.stdout)
    assert js["lines"] == case["printed_lines"]
    w, h = case["image_size"]["w"], case["image_size"]["h"]
    assert len(js["detections"]) == len(case["drawn_boxes"])
    post = {d["position"]: d for d in case["detections_after_nms"]}
    for det, b in zip(js["detections"], case["drawn_boxes"], strict=True):
        ref = post[b["position"]]["bbox"]
        assert det["label"] == b["label"]
        assert abs(det["bbox"]["x"] - ref[0] * w) <= 1e-3 * max(1.0, abs(ref[0] * w))
        assert abs(det["bbox"]["h"] - ref[3] * h) <= 1e-3 * max(1.0, abs(ref[3] * h))
        assert [c["name"] for c in det["classes"]] == b["label"].split(", ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["boxes.png"]
    from PIL import Image

    with Image.open(out) as im:
        assert im.size == (w, h)


def test_cli_errors(tmp_path: Path) -> None:
    from darkconv.cli.main import main

    name = "classify_darknet19_gray"
    case, _ = _case(name)
    cfg = str(_inside_fixtures(name, case["cfg"]))
    weights = str(_inside_fixtures(name, case["weights"]))
    missing = str(tmp_path / "missing.jpg")
    for args, needle in (
        (["predict", cfg, weights, missing], "cannot load image"),
        (["predict", cfg, weights, missing, "--names", str(tmp_path / "none")], "names file"),
    ):
        runner = CliRunner()
        with pytest.raises(SystemExit) as exc, runner.isolation() as (_out, err, _):
            main(args)
        assert exc.value.code != 0
        text = err.getvalue().decode()
        assert needle in text and text.count("\n") == 1, text
    both = CliRunner().invoke(
        cli, ["predict", cfg, weights, missing, "--names", "a", "--data", "b"]
    )
    assert both.exit_code != 0 and "not both" in both.output
    assert os.path.exists(cfg)
