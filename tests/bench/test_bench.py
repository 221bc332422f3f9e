"""``darkconv bench`` runs a tiny configuration end to end (no timing assertions: benchmarks
are not tests), and its helpers behave."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from darkconv.bench.models import compile_options
from darkconv.bench.peers import write_opencv_files
from darkconv.bench.run import Report, Settings, default_specs, format_table, run_bench
from darkconv.bench.spec import ModelSpec, random_state, resized_network
from darkconv.cli.bench import ProgressBar
from darkconv.cli.main import cli
from darkconv.parse.graph import load_network

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

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[shortcut]
from=-2
activation=linear

[avgpool]

[connected]
output=5
activation=linear

[softmax]
"""


def test_bench_cli_tiny(tmp_path: Path) -> None:
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(TINY)
    out = tmp_path / "bench.json"
    args = [
        "bench", str(cfg), "--size", "32", "--runs", "2", "--warmup", "0", "--no-peers",
        "--threads", "1", "--json", str(out),
    ]  # fmt: skip
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "median ms" in result.stdout and "tiny" in result.stdout
    assert "random weights" in result.stdout
    data = json.loads(out.read_text())
    assert data["reference"] == "tiny" and data["settings"]["size"] == 32
    (row,) = data["models"]
    assert row["kind"] == "darkconv" and len(row["times_ms"]) == 2
    assert row["ratio"] == 1.0 and row["median_ms"] > 0
    assert row["params"] == load_network(cfg).params or row["params"] > 0
    assert row["peak_mib"] is not None and row["peak_mib"] >= row["base_mib"] > 0
    assert data["machine"]["torch"]


def test_bench_skips_a_model_that_fails(tmp_path: Path) -> None:
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(TINY)
    specs = [ModelSpec("tiny", "darkconv", str(cfg)), ModelSpec("bogus", "nope", "x")]
    seen: list[tuple[int, int]] = []
    report = run_bench(
        specs,
        Settings(size=32, threads=1, channels_last=True),
        runs=1,
        warmup=1,
        memory=False,
        progress=lambda done, total, label: seen.append((done, total)),
    )
    assert isinstance(report, Report)
    assert report.rows[0].median_ms is not None and report.rows[1].error
    assert any("bogus skipped" in n for n in report.notes)
    assert seen[-1][0] == seen[-1][1] == 2 + 1 + 1
    table = format_table(report)
    assert "skipped" in table and "channels_last" in table


def test_default_specs_and_peer_notes() -> None:
    specs, notes = default_specs((), peers=False)
    assert [s.target for s in specs][:2] == ["darknet53", "resnet50"]
    assert notes == []
    specs, notes = default_specs(("yolov3-tiny",), peers=True)
    assert specs[0].name == "yolov3-tiny"
    names = {s.kind for s in specs}
    # each optional peer is either present or explained by a note
    assert "timm" in names or any("timm" in n for n in notes)
    assert "opencv" in names or any("OpenCV" in n or "opencv" in n for n in notes)


def test_resized_network_and_opencv_files(tmp_path: Path) -> None:
    net = resized_network("darknet53", 224)
    assert net.input == (3, 224, 224)
    assert abs(net.bflops - 14.22) < 0.05
    assert net.params == load_network("darknet53").params
    tiny = resized_network(load_network("yolov3-tiny"), 64)
    cfg, weights = write_opencv_files(tiny, tmp_path, "t")
    assert resized_network(cfg, None).input == (3, 64, 64)
    assert Path(weights).stat().st_size == tiny.weights_bytes()
    state = random_state(tiny)
    var = [v for k, v in state.items() if k.endswith("running_var")]
    assert var and all(np.all(v >= 0.5) for v in var)


def test_progress_bar_draws_on_a_tty() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    bar = ProgressBar(stream, width=10)
    bar(5, 10, "run x")
    bar(10, 10, "run x")
    bar.close()
    text = stream.getvalue()
    assert "[#####.....] 5/10 run x" in text and "10/10" in text
    quiet = io.StringIO()
    ProgressBar(quiet)(1, 2, "x")
    assert quiet.getvalue() == ""


def test_compile_options() -> None:
    # inductor settings of `bench --compile`: frozen weights everywhere, C++ wrapper on the CPU
    assert compile_options("cpu") == {"freezing": True, "cpp_wrapper": True}
    assert compile_options("cuda") == {"freezing": True, "cpp_wrapper": False}


def test_bench_winograd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import darkconv.nn.winograd as winograd

    cfg = tmp_path / "wide.cfg"
    cfg.write_text(TINY.replace("filters=8", "filters=64"))
    swapped: list[int] = []
    original = winograd.winograd_model

    def spy(model, batch=1, tile=None):  # count the layers the bench run swaps
        original(model, batch, tile)
        swapped.append(sum(isinstance(m, winograd.WinogradConvolutional) for m in model.modules()))
        return model

    monkeypatch.setattr(winograd, "winograd_model", spy)
    out = tmp_path / "bench.json"
    args = [
        "bench", str(cfg), "--size", "32", "--runs", "1", "--warmup", "0", "--no-peers",
        "--no-memory", "--threads", "1", "--winograd", "--json", str(out),
    ]  # fmt: skip
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Winograd 3x3" in result.stdout
    assert json.loads(out.read_text())["settings"]["winograd"] is True
    assert swapped == [1]  # the 64-channel 16x16 stride-1 layer: F(2, 3)
    bad = CliRunner().invoke(cli, [*args[:-2], "--no-fuse"])
    assert bad.exit_code == 2 and "--winograd works on fused layers" in bad.output


def test_bench_yolov4_tiny_shipped_alexeyab_cfg(tmp_path: Path) -> None:
    # A shipped AlexeyAB cfg by bare name (read in the alexeyab dialect): mish-free but with
    # [route] groups and leaky convs; fused + Winograd where a layer qualifies.
    out = tmp_path / "bench.json"
    args = [
        "bench", "yolov4-tiny", "--size", "64", "--runs", "1", "--warmup", "0", "--no-peers",
        "--no-memory", "--threads", "1", "--winograd", "--json", str(out),
    ]  # fmt: skip
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (row,) = json.loads(out.read_text())["models"]
    assert row["name"] == "yolov4-tiny" and row["median_ms"] > 0
    assert row["params"] == load_network("yolov4-tiny").params
