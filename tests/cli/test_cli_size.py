"""``--size WxH`` and ``--exact-batch`` on every command that runs a network, checked against the
Darknet run of the same weights with ``[net] width/height`` edited (apps/ 160x96 case)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import pytest
from fixture_util import FIXTURES, rel_err
from fixture_util import run_main as _main

from darkconv.cli.main import cli

CASE = FIXTURES / "apps" / "detect_yolov3-tiny_160x96_scream"
NET = FIXTURES / "nets" / "yolov3-tiny"
CFG, WEIGHTS = str(NET / "yolov3-tiny.cfg"), str(NET / "yolov3-tiny.weights")
RUNS_A_NETWORK = ("build", "run", "verify", "predict", "detect", "bench")


@pytest.mark.parametrize("name", RUNS_A_NETWORK)
def test_every_command_that_runs_a_network_takes_size(name: str) -> None:
    command = cli.commands[name]
    option = next(p for p in command.params if p.name == "size")
    assert isinstance(option, click.Option) and option.opts == ["--size"]
    assert option.metavar == "WxH"


def _inputs(tmp_path: Path) -> tuple[str, str]:
    arrays = np.load(CASE / "arrays.npz")
    x, ref = tmp_path / "x.npy", tmp_path / "ref.npz"
    np.save(x, np.concatenate([arrays["input"]] * 2))
    np.savez(ref, **{k: np.concatenate([arrays[k]] * 2) for k in ("layer_016", "layer_023")})
    return str(x), str(ref)


@pytest.mark.parametrize("exact", [False, True])
def test_run_and_verify_at_size(tmp_path: Path, exact: bool) -> None:
    x, ref = _inputs(tmp_path)
    flags = ["--size", "160x96", "--device", "cpu"] + ["--exact-batch"] * exact
    assert _main(["verify", CFG, WEIGHTS, "--input", x, "--reference", ref, *flags]) == 0
    out = tmp_path / "out.npz"
    assert _main(["run", CFG, WEIGHTS, "--input", x, "-o", str(out), *flags]) == 0
    got, want = np.load(out), np.load(ref)
    assert got["layer_016"].shape == (2, 21, 3, 5)
    assert rel_err(got["layer_023"], want["layer_023"]) <= 5e-4
    if exact:
        assert np.array_equal(got["layer_023"][0], got["layer_023"][1])


def test_run_without_size_names_the_mismatch(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    x, _ = _inputs(tmp_path)
    assert _main(["run", CFG, WEIGHTS, "--input", x, "-o", str(tmp_path / "o.npz")]) == 2
    assert "does not fit the network input" in capsys.readouterr().err


def test_detect_at_size_prints_darknets_lines() -> None:
    import darkconv

    case = json.loads((CASE / "case.json").read_text())
    arrays = np.load(CASE / "arrays.npz")  # the image as Darknet decoded it
    model = darkconv.load(CFG, WEIGHTS)
    result = darkconv.detect(model, arrays["image"], thresh=case["thresh"], nms=case["nms"],
                             names=case["names"], size=(160, 96))  # fmt: skip
    assert result.nboxes == case["nboxes"] and list(result.lines) == case["printed_lines"]


def test_detect_cli_size_equals_the_edited_cfg(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = json.loads((CASE / "case.json").read_text())
    names = tmp_path / "names.txt"
    names.write_text("\n".join(case["names"]) + "\n")
    tail = [str(FIXTURES / "data" / case["image"]), "--names", str(names), "--thresh", "0.55"]
    assert _main(["detect", CFG, WEIGHTS, *tail, "--size", "160x96"]) == 0
    resized = capsys.readouterr().out
    assert _main(["detect", str(CASE / case["cfg"]), WEIGHTS, *tail]) == 0
    assert resized == capsys.readouterr().out and resized.count("%") >= 5


def test_predict_and_build_at_size(capsys: pytest.CaptureFixture[str]) -> None:
    net = FIXTURES / "nets" / "darknet19"
    image = str(FIXTURES / "data" / "dog.jpg")
    assert _main(["predict", str(net / "darknet19.cfg"), str(net / "darknet19.weights"), image,
                  "--size", "96x64", "--json"]) == 0  # fmt: skip
    assert len(json.loads(capsys.readouterr().out)["predictions"]) == 1
    assert _main(["build", "yolov3", "--summary", "--size", "608x352"]) == 0
    assert "input 608x352x3" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("size", "message"),
    [("100x96", "multiples of 32"), ("abc", "expected WxH"), ("0x32", "positive")],
)
def test_bad_size_is_one_error(size: str, message: str, capsys: pytest.CaptureFixture) -> None:
    assert _main(["build", "yolov3-tiny", "--summary", "--size", size]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
