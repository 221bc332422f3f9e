"""scripts/gpu_check.py: the steps it runs per device and the Markdown it writes (the script
itself runs in CI as ``scripts/gpu_check.sh --device cpu``)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
from conftest import ROOT

from darkconv.bench.run import Row, Settings


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_steps(device: str, tmp_path: Path) -> None:
    gc = _script()
    steps = gc.steps(device, tmp_path)
    names = [s["name"] for s in steps]
    assert names[0].startswith("CUDA parity") and "-m" in steps[0]["cmd"]
    assert [n for n in names if n.startswith("classifiers")] == [
        "classifiers fp32", "classifiers fp16", "classifiers bf16"
    ]  # fmt: skip
    benches = [s for s in steps if s["name"].startswith(("classifiers", "detectors"))]
    detectors = [s for s in benches if s["name"].startswith("detectors")]
    assert detectors and all("--device" in s["cmd"] and device in s["cmd"] for s in benches)
    train = [s for s in steps if s["name"].startswith("training step")]
    assert len(train) == (device == "cuda" and (ROOT / "scripts" / "bench_train.py").is_file())
    if device == "cuda":
        cmd = detectors[0]["cmd"]
        assert "yolov3" in cmd and "yolov4-tiny" in cmd and "416" in cmd and "1,8" in cmd
    else:
        assert all("--no-peers" in s["cmd"] for s in benches)
    assert all(s["json"] is None or s["json"].startswith(str(tmp_path)) for s in steps)


def test_markdown_tables() -> None:
    gc = _script()
    models = [Row("darknet53", "darkconv", "darknet53", times_ms=[10.0], median_ms=10.0,
                  ratio=1.0, images_per_s=100.0).__dict__]  # fmt: skip
    data = {"settings": Settings(size=256, device="cuda").__dict__, "runs": 3, "reference":
            "darknet53", "machine": {"gpu": "H100", "torch": "2.x"}, "models": models}  # fmt: skip
    data["settings"]["size"] = list(data["settings"]["size"])
    report = {"device": "cuda", "finished": "now", "steps": [
        {"name": "CUDA parity tests", "rc": 0, "seconds": 1.0, "result": {"summary": "9 passed"}},
        {"name": "classifiers fp32", "rc": 0, "seconds": 2.0, "result": json.loads(json.dumps(data))},
        {"name": "training step", "rc": 1, "seconds": 0.1, "error": "boom"},
    ]}  # fmt: skip
    text = gc.markdown(report)
    assert "| CUDA parity tests | 0 | 1.0 | 9 passed |" in text
    assert "| training step | 1 | 0.1 | boom |" in text
    assert "| darknet53 | 1 | 10.00 | 100.0 | 1.00 | - | 11.4 |" in text  # seed figure beside
