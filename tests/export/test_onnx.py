"""ONNX exports checked with onnxruntime against Darknet's stored outputs (fixtures/nets)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from export_util import (
    AB_NET_NAMES,
    AB_NET_TOL,
    AB_NETS,
    NET_NAMES,
    NET_TOL,
    batch3,
    exported,
    net_files,
    net_input,
    net_outputs,
    ort_session,
)
from fixture_util import FIXTURES, rel_err

pytest.importorskip("onnxruntime", reason="onnxruntime missing: pip install 'darkconv[onnx]'")
pytest.importorskip("onnxscript", reason="onnxscript missing: pip install 'darkconv[onnx]'")


def _check_rows(names, outs, ref, rows, tol: float = NET_TOL) -> list[str]:
    bad = []
    for name, out in zip(names, outs, strict=True):
        if name not in ref:
            continue
        for row in rows:
            err = rel_err(out[row : row + 1].reshape(ref[name].shape), ref[name])
            if err > tol:
                bad.append(f"{name} row {row}: {err:.2e}")
    return bad


@pytest.mark.parametrize("name", NET_NAMES)
def test_cli_onnx_matches_darknet_batch_1_and_3(name: str) -> None:
    cfg, weights = net_files(name)
    path = exported(cfg, weights, ".onnx", via_cli=True)
    session = ort_session(path)
    names = [o.name for o in session.get_outputs()]
    ref = net_outputs(name)
    assert set(names) & set(ref), (names, sorted(ref))
    x = net_input(name)
    assert _check_rows(names, session.run(None, {"input": x}), ref, [0]) == []
    outs = session.run(None, {"input": batch3(x)})
    assert _check_rows(names, outs, ref, [0, 2]) == []
    # the middle row is another image: it equals the eager model's output for it
    from darkconv.nn.builder import load

    model = load(cfg, weights)
    with torch.no_grad():
        eager = model(torch.from_numpy(batch3(x)[1:2]))
    eager = eager if isinstance(eager, list) else [eager]
    for out, e in zip(outs, eager, strict=True):
        assert rel_err(out[1:2].reshape(e.shape), e.numpy()) < 1e-4


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=[pytest.mark.slow] if n in ("yolov4", "csdarknet53-omega") else [])
             for n in AB_NET_NAMES],
)  # fmt: skip
def test_cli_onnx_matches_alexeyab_batch_1_and_3(name: str) -> None:
    cfg, weights = net_files(name, AB_NETS)
    path = exported(cfg, weights, ".onnx", via_cli=True, dialect="alexeyab")
    session = ort_session(path)
    names = [o.name for o in session.get_outputs()]
    ref = net_outputs(name, AB_NETS)
    assert set(names) & set(ref), (names, sorted(ref))
    x = net_input(name, AB_NETS)
    tol = AB_NET_TOL.get(name, NET_TOL)
    assert _check_rows(names, session.run(None, {"input": x}), ref, [0], tol) == []
    outs = session.run(None, {"input": batch3(x)})
    assert _check_rows(names, outs, ref, [0, 2], tol) == []


@pytest.mark.parametrize("opset", [13, 17, 23])
def test_opsets(opset: int) -> None:
    name = "yolov3-tiny"
    path = exported(*net_files(name), ".onnx", opset=opset)
    import onnx

    assert onnx.load(str(path)).opset_import[0].version == opset
    session = ort_session(path)
    names = [o.name for o in session.get_outputs()]
    outs = session.run(None, {"input": batch3(net_input(name))})
    assert _check_rows(names, outs, net_outputs(name), [0, 2]) == []


def test_static_batch_unfused() -> None:
    name = "darknet19"
    path = exported(*net_files(name), ".onnx", dynamic_batch=False, fuse=False)
    session = ort_session(path)
    assert session.get_inputs()[0].shape[0] == 1
    names = [o.name for o in session.get_outputs()]
    outs = session.run(None, {"input": net_input(name)})
    assert _check_rows(names, outs, net_outputs(name), [0]) == []


#: float16 arithmetic: measured 5.9e-3 (yolov3-tiny), so 2e-2 flags a real fault only
FP16_TOL = 2e-2


def test_fp16() -> None:
    name = "yolov3-tiny"
    path = exported(*net_files(name), ".onnx", fp16=True)
    import onnx

    proto = onnx.load(str(path))
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer)
    session = ort_session(path)
    assert session.get_inputs()[0].type == "tensor(float)"
    names = [o.name for o in session.get_outputs()]
    ref = net_outputs(name)
    for out, n in zip(session.run(None, {"input": batch3(net_input(name))}), names, strict=True):
        assert out.dtype == np.float32
        for row in (0, 2):
            assert rel_err(out[row : row + 1], ref[n]) < FP16_TOL


LAYER_CASES = [
    pytest.param(folder, dialect, id=f"{folder.parent.parent.name}-{folder.name}")
    for root, dialect in ((FIXTURES / "layers", None), (FIXTURES / "alexeyab" / "layers", "alexeyab"))
    for folder in sorted(root.glob("act_*"))
    if (folder / "case.weights").exists()
]  # fmt: skip


@pytest.mark.parametrize("opset", [13, 23])
@pytest.mark.parametrize(("folder", "dialect"), LAYER_CASES)
def test_activations_in_every_opset(folder, dialect, opset: int) -> None:
    """Every activation of both Darknets (mish, swish, gelu... decomposed where the opset has no
    op) within the layers/ tolerance (1e-5) at the oldest and newest opset."""
    path = exported(folder / "case.cfg", folder / "case.weights", ".onnx", opset=opset,
                    **({"dialect": dialect, "via_cli": True} if dialect else {}))  # fmt: skip
    session = ort_session(path)
    x = np.load(folder / "input.npy")
    with np.load(folder / "outputs.npz") as z:
        ref = {k: z[k] for k in z.files}
    names = [o.name for o in session.get_outputs()]
    assert _check_rows(names, session.run(None, {"input": batch3(x)}), ref, [0, 2], 1e-5) == []


def test_size_matches_darknet_run_at_that_size() -> None:
    """``--size 160x96`` exports the network as Darknet runs it with ``[net] width=160
    height=96`` edited: fixtures/apps/detect_yolov3-tiny_160x96_scream is Darknet's run of the
    nets/yolov3-tiny cfg and weights at that size, its heads stored."""
    case = FIXTURES / "apps" / "detect_yolov3-tiny_160x96_scream"
    with np.load(case / "arrays.npz") as z:
        x, ref = z["input"], {k: z[k] for k in ("layer_016", "layer_023")}
    path = exported(*net_files("yolov3-tiny"), ".onnx", via_cli=True, size="160x96")
    session = ort_session(path)
    names = [o.name for o in session.get_outputs()]
    assert set(names) == set(ref), names
    assert _check_rows(names, session.run(None, {"input": batch3(x)}), ref, [0, 2]) == []
