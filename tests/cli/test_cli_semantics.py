"""`--intended-activations` and `--nofuse` on `run`, `verify` and `build` (torch side of the
AlexeyAB dialect), against fixtures/alexeyab/layers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from click.testing import CliRunner
from conftest import FIXTURES

from darkconv.cli.main import cli

LAYERS = FIXTURES / "alexeyab" / "layers"


def _run(case: str, tmp_path: Path, *flags: str) -> dict[str, np.ndarray]:
    folder = LAYERS / case
    out = tmp_path / f"{case}{''.join(flags)}.npz"
    args = ["run", str(folder / "case.cfg"), str(folder / "case.weights")]
    args += ["--input", str(folder / "input.npy"), "-o", str(out), "--device", "cpu"]
    result = CliRunner().invoke(cli, [*args, "--dialect", "alexeyab", *flags])
    assert result.exit_code == 0, result.output
    return dict(np.load(out))


def test_run_intended_activations(tmp_path: Path) -> None:
    # act_relu6 layer 2: a relu6 conv, which AlexeyAB's CPU forward turns into 0 (the fixture).
    plain = _run("act_relu6", tmp_path)
    fixed = _run("act_relu6", tmp_path, "--intended-activations")
    ref = np.load(LAYERS / "act_relu6" / "outputs.npz")
    assert np.array_equal(plain["layer_002"], ref["layer_002"]) and not plain["layer_002"].any()
    assert fixed["layer_002"].max() > 0 and fixed["layer_002"].max() <= 6


def test_verify_nofuse_matches_outputs_nofuse() -> None:
    folder = LAYERS / "shortcut_weights_per_channel"
    args = ["verify", str(folder / "case.cfg"), str(folder / "case.weights"), "--device", "cpu"]
    args += ["--input", str(folder / "input.npy"), "--tol", "1e-5", "--dialect", "alexeyab"]
    for flags, ref, code in (
        ([], "outputs.npz", 0),
        (["--nofuse"], "outputs_nofuse.npz", 0),
        ([], "outputs_nofuse.npz", 1),  # relu vs max(w, .001): 0.35 on layer 3
    ):
        result = CliRunner().invoke(cli, [*args, "--reference", str(folder / ref), *flags])
        assert result.exit_code == code, result.output


def test_build_names_the_zero_layers_and_the_flag() -> None:
    cfg = str(LAYERS / "act_swish" / "case.cfg")
    plain = CliRunner().invoke(cli, ["build", cfg, "--dialect", "alexeyab"])
    fixed = CliRunner().invoke(
        cli, ["build", cfg, "--dialect", "alexeyab", "--intended-activations"]
    )
    assert plain.exit_code == fixed.exit_code == 0, plain.output + fixed.output
    assert "layer 6: " in plain.output and "--intended-activations computes" in plain.output
    assert "darkconv computes the formula instead" in fixed.output
