"""Helpers for tests/export: the fixtures' files and an onnxruntime session."""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from fixture_util import FIXTURES

NETS = FIXTURES / "nets"
APPS = FIXTURES / "apps"
NET_NAMES = sorted(p.name for p in NETS.iterdir() if (p / "manifest.json").exists())
AB_NETS = FIXTURES / "alexeyab" / "nets"
AB_NET_NAMES = sorted(
    p.name for p in AB_NETS.glob("*") if (p / f"{p.name}.weights").exists()
)  # (a net whose weights are not in the repo is left out)
#: as tests/nn/test_alexeyab.py: yolov4's heads differ from Darknet's by up to 2.5e-4 even in an
#: independent re-implementation (fixtures/alexeyab/README.md)
AB_NET_TOL = {"yolov4": 3e-3}
DETECT_CASES = sorted(p.name for p in APPS.glob("detect_*") if (p / "case.json").exists())
#: fixtures/README.md: nets/ outputs agree within 5e-4 of max|ref|
NET_TOL = 5e-4
_CACHE: dict[tuple[Any, ...], Path] = {}
_FOLDER: list[Path] = []


def net_files(name: str, folder: Path = NETS) -> tuple[Path, Path]:
    return folder / name / f"{name}.cfg", folder / name / f"{name}.weights"


def net_input(name: str, folder: Path = NETS) -> np.ndarray:
    return np.load(folder / name / "input.npy")


def net_outputs(name: str, folder: Path = NETS) -> dict[str, np.ndarray]:
    with np.load(folder / name / "outputs.npz") as z:
        return {k: z[k] for k in z.files}


def batch3(x: np.ndarray) -> np.ndarray:
    """The fixture input, a random image, the fixture input again."""
    other = np.random.default_rng(3).random(x.shape, dtype=np.float32)
    return np.concatenate([x, other, x])


def detect_case(name: str) -> tuple[dict[str, Any], dict[str, np.ndarray], Path, Path]:
    folder = APPS / name
    case = json.loads((folder / "case.json").read_text())
    with np.load(folder / "arrays.npz") as z:
        arrays = {k: z[k] for k in z.files}
    return case, arrays, (folder / case["cfg"]).resolve(), (folder / case["weights"]).resolve()


def exported(cfg: Path, weights: Path, suffix: str, via_cli: bool = False, **options: Any) -> Path:
    """The file ``darkconv.export(load(cfg, weights), OUT, **options)`` writes (``via_cli``:
    ``darkconv export CFG WEIGHTS -o OUT --option value``), written once per test session:
    exporting is slow, so every test module shares this cache."""
    key = (str(cfg), str(weights), suffix, via_cli, tuple(sorted(options.items())))
    if key not in _CACHE:
        if not _FOLDER:
            _FOLDER.append(Path(tempfile.mkdtemp(prefix="darkconv-export-")))
            atexit.register(shutil.rmtree, _FOLDER[0], True)
        out = _FOLDER[0] / f"m{len(_CACHE)}{suffix}"
        if via_cli:
            from click.testing import CliRunner

            from darkconv.cli.main import cli

            args = ["export", str(cfg), str(weights), "-o", str(out)]
            for opt, value in options.items():
                flag = "--" + opt.replace("_", "-")
                args += [flag] if value is True else [flag, str(value)]
            result = CliRunner().invoke(cli, args, catch_exceptions=False)
            assert result.exit_code == 0, result.output
            assert f"wrote {out}" in result.output
        else:
            import darkconv
            from darkconv.nn.builder import load

            darkconv.export(load(cfg, weights), out, **options)
        _CACHE[key] = out
    return _CACHE[key]


def ort_session(path: Path, extra_outputs: tuple[str, ...] = ()) -> Any:
    """An onnxruntime CPU session; ``extra_outputs`` exposes intermediate values too."""
    import onnx
    import onnxruntime as ort

    if not extra_outputs:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    proto = onnx.load(str(path))
    for name in extra_outputs:
        proto.graph.output.append(
            onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
        )
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
