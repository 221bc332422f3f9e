"""The onnxruntime row of ``darkconv bench`` (the export timed in onnxruntime); no timing
assertions, only that the row runs and reports the cfg's figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from darkconv.bench.run import Settings, default_specs, run_bench
from darkconv.parse.graph import load_network

pytest.importorskip("onnxruntime", reason="onnxruntime missing: pip install 'darkconv[onnx]'")
pytest.importorskip("onnxscript", reason="onnxscript missing: pip install 'darkconv[onnx]'")

TINY = """[net]
width=64
height=64
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky

[maxpool]
size=2
stride=1

[convolutional]
filters=12
size=1
stride=1
activation=linear

[yolo]
mask=0,1
anchors=10,14,23,27
classes=1
num=2
"""


def test_onnxruntime_row_runs_the_export(tmp_path: Path) -> None:
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(TINY)
    specs, notes = default_specs((str(cfg),), peers=True)
    ort_specs = [s for s in specs if s.kind == "onnxruntime"]
    assert [s.target for s in ort_specs] == [str(cfg)], notes
    report = run_bench(
        [specs[0], *ort_specs], Settings(size=32, threads=1), runs=2, warmup=1, memory=True
    )
    darkconv_row, ort_row = report.rows
    assert ort_row.error is None, report.notes
    assert len(ort_row.times_ms) == 2 and ort_row.ratio is not None
    assert ort_row.params == darkconv_row.params == load_network(cfg).params
    assert ort_row.peak_mib is not None and ort_row.peak_mib >= ort_row.base_mib > 0


def test_no_onnxruntime_row_on_cuda() -> None:
    specs, notes = default_specs(("yolov3-tiny",), peers=True, device="cuda")
    assert all(s.kind != "onnxruntime" for s in specs)
    assert any("onnxruntime" in n for n in notes)
