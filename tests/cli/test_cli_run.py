"""`darkconv run` and `darkconv verify` on the Darknet fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixture_util import FIXTURES, rel_err
from fixture_util import run_main as _main

CASE = FIXTURES / "layers" / "reorg"
ARGS = [str(CASE / "case.cfg"), str(CASE / "case.weights"), "--input", str(CASE / "input.npy")]


def test_run_writes_every_layer_like_darknet(tmp_path: Path) -> None:
    out = tmp_path / "out.npz"
    assert _main(["run", *ARGS, "-o", str(out), "--device", "cpu"]) == 0
    got, ref = np.load(out), np.load(CASE / "outputs.npz")
    assert sorted(got.files) == sorted(ref.files)
    for key in ref.files:
        assert got[key].dtype == np.float32 and got[key].shape == ref[key].shape
        assert rel_err(got[key], ref[key]) <= 1e-5, key
    assert [p.name for p in tmp_path.iterdir()] == ["out.npz"]  # no temp file left behind


def test_run_flat_layers_shape(tmp_path: Path) -> None:
    case = FIXTURES / "layers" / "route_mismatch"
    out = tmp_path / "o.npz"
    argv = ["run", str(case / "case.cfg"), str(case / "case.weights"), "--input",
            str(case / "input.npy"), "-o", str(out)]  # fmt: skip
    assert _main(argv) == 0
    assert np.load(out)["layer_002"].shape == (1, 256)  # dims 0 -> (1, outputs)


def test_verify_passes_on_darknet_reference(capsys: pytest.CaptureFixture[str]) -> None:
    code = _main(["verify", *ARGS, "--reference", str(CASE / "outputs.npz"), "--tol", "1e-5"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "reorg" in out and "all 10 layers within" in out


def test_read_input_is_a_writable_copy() -> None:
    # np.load(mmap_mode="r") is read-only; torch.from_numpy warned "not writable" on every verify
    from darkconv.cli.run import read_input
    from darkconv.nn.builder import load

    x = read_input(str(CASE / "input.npy"), load(CASE / "case.cfg", CASE / "case.weights"))
    assert x.flags.writeable and x.dtype == np.float32
    assert np.array_equal(x, np.load(CASE / "input.npy").reshape(x.shape))


def test_verify_names_first_diverging_layer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = dict(np.load(CASE / "outputs.npz"))
    ref["layer_007"] = ref["layer_007"].copy()
    ref["layer_007"].reshape(-1)[3] += 1.0  # one wrong value in the reorg output
    bad = tmp_path / "bad.npz"
    np.savez(bad, **ref)
    code = _main(["verify", *ARGS, "--reference", str(bad)])
    out = capsys.readouterr().out
    assert code == 1
    assert "first diverging layer: 7 (reorg)" in out
    assert "FAIL" in out.splitlines()[8]  # header row + layers 0..6, then layer 7


def test_run_rejects_wrong_input_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 3, 5, 5), np.float32))
    argv = ["run", str(CASE / "case.cfg"), str(CASE / "case.weights"), "--input", str(x),
            "-o", str(tmp_path / "o.npz")]  # fmt: skip
    assert _main(argv) == 2
    err = capsys.readouterr().err
    assert "does not fit the network input" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.npz").exists()
