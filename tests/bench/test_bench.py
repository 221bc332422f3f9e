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
from darkconv.bench.run import (
    Report,
    Row,
    Settings,
    default_specs,
    format_table,
    run_bench,
    summarize,
)
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
    assert data["reference"] == "tiny" and data["settings"]["size"] == [32, 32]
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


def test_batches_rows_images_per_s_and_opencv_ratio(tmp_path: Path) -> None:
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(TINY)
    specs, _ = default_specs((str(cfg),), peers=False, batches=(1, 3))
    assert [(s.name, s.batch) for s in specs] == [("tiny b1", 1), ("tiny b3", 3)]
    report = run_bench(specs, Settings(size=(64, 32), threads=1, exact_batch=True), runs=1,
                       warmup=0, memory=False)  # fmt: skip
    rows = {r.name: r for r in report.rows}
    assert rows["tiny b3"].batch == 3 and rows["tiny b3"].median_ms is not None
    assert rows["tiny b3"].images_per_s == pytest.approx(3e3 / rows["tiny b3"].median_ms)
    table = format_table(report)
    assert "img/s" in table and "batch 1,3" in table and "64x32" in table
    assert "--exact-batch" in table and "vs OpenCV" not in table


def test_peak_row_gflops_and_share(tmp_path: Path) -> None:
    """``peak=n`` adds an n x n matrix-product row; GFLOP/s is BFLOPs x batch / median (the
    peak row: 2 n^3 per call), and every other row's share of the peak row's rate is printed."""
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(TINY)
    specs, _ = default_specs((str(cfg),), peers=False, batches=(1, 2), peak=128)
    assert (specs[-1].kind, specs[-1].target, specs[-1].name) == ("peak", "128", "sgemm 128 (peak)")
    report = run_bench(specs, Settings(size=(64, 32), threads=1), runs=2, warmup=0, memory=False)
    rows = {r.name: r for r in report.rows}
    peak = rows["sgemm 128 (peak)"]
    assert peak.bflops == pytest.approx(2 * 128**3 / 1e9) and peak.ratio is None
    assert peak.gflops_per_s == pytest.approx(peak.bflops * 1e3 / peak.median_ms)
    b2 = rows["tiny b2"]
    assert b2.gflops_per_s == pytest.approx(2 * b2.bflops * 1e3 / b2.median_ms)
    assert b2.of_peak == pytest.approx(b2.gflops_per_s / peak.gflops_per_s)
    table = format_table(report)
    assert "GFLOP/s" in table and "of peak" in table


def test_bench_cli_peak_row(tmp_path: Path) -> None:
    """``--peak`` puts the matrix-product row in the table, with no memory figure of its own."""
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(TINY)
    out = tmp_path / "bench.json"
    args = [
        "bench", str(cfg), "--size", "32", "--runs", "1", "--warmup", "0", "--no-peers",
        "--threads", "1", "--peak", "--json", str(out),
    ]  # fmt: skip
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "sgemm 2048 (peak)" in result.stdout and "of peak" in result.stdout
    rows = {r["name"]: r for r in json.loads(out.read_text())["models"]}
    peak = rows["sgemm 2048 (peak)"]
    assert peak["kind"] == "peak" and peak["peak_mib"] is None and peak["gflops_per_s"] > 0
    assert rows["tiny"]["of_peak"] == pytest.approx(
        rows["tiny"]["gflops_per_s"] / peak["gflops_per_s"]
    )


def test_summarize_ratios_to_reference_and_opencv() -> None:
    rows = [
        Row("yolov3", "darkconv", "yolov3", times_ms=[30.0, 10.0, 20.0]),
        Row("yolov3 (OpenCV DNN)", "opencv", "yolov3", times_ms=[40.0]),
        Row("yolov3 b8", "darkconv", "yolov3", times_ms=[80.0], batch=8),
        Row("yolov3-tiny", "darkconv", "yolov3-tiny", times_ms=[5.0]),
    ]
    assert summarize(rows) == "yolov3"
    assert [r.median_ms for r in rows] == [20.0, 40.0, 80.0, 5.0]
    assert [r.ratio for r in rows] == [1.0, 2.0, 4.0, 0.25]
    assert [r.vs_opencv for r in rows] == [0.5, None, None, None]  # b8 has no OpenCV b8 row
    assert rows[2].images_per_s == 100.0 and rows[0].min_ms == 10.0


@pytest.mark.parametrize(
    ("cfgs", "opencv_rows"),
    [(("darknet53", "resnet50"), ["darknet53"]), (("darknet53", "yolov3", "yolov3-tiny"),
     ["darknet53", "yolov3", "yolov3-tiny"]), (("resnet50", "yolov2"), ["resnet50", "yolov2"])],
)  # fmt: skip
def test_opencv_row_for_the_first_cfg_and_every_detector(
    cfgs: tuple[str, ...], opencv_rows: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import types

    from darkconv.bench import peers

    monkeypatch.setattr(peers, "_installed", lambda name: name == "cv2")
    fake = types.SimpleNamespace(dnn=types.SimpleNamespace(readNetFromDarknet=None))
    monkeypatch.setattr(peers.importlib, "import_module", lambda name: fake)
    specs, _ = peers.peer_specs(list(cfgs), "cpu")
    assert [s.target for s in specs if s.kind == "opencv"] == opencv_rows


def test_bench_cli_batches_and_bad_size(tmp_path: Path) -> None:
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(TINY)
    out = tmp_path / "b.json"
    args = ["bench", str(cfg), "--size", "32x64", "--batch", "1,2", "--runs", "1", "--warmup",
            "0", "--no-peers", "--no-memory", "--threads", "1", "--json", str(out)]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["settings"]["size"] == [32, 64]
    assert [(m["name"], m["batch"]) for m in data["models"]] == [("tiny b1", 1), ("tiny b2", 2)]
    bad = CliRunner().invoke(cli, ["bench", "yolov3-tiny", "--size", "100", "--no-peers"])
    assert bad.exit_code != 0 and "multiples of 32" in str(bad.exception or bad.output)


def test_cpu_clock_needs_one_thread(tmp_path: Path) -> None:
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(TINY)
    spec = [ModelSpec("tiny", "darkconv", str(cfg))]
    with pytest.raises(ValueError, match="threads=1"):
        run_bench(spec, Settings(size=32, threads=2), runs=1, warmup=0, memory=False, clock="cpu")
    report = run_bench(spec, Settings(size=32, threads=1), runs=2, warmup=0, memory=False,
                       clock="cpu")  # fmt: skip
    assert report.machine["clock"] == "cpu" and len(report.rows[0].times_ms) == 2
    assert "CPU time" in format_table(report)
    bad = CliRunner().invoke(cli, ["bench", str(cfg), "--clock", "cpu", "--no-peers"])
    assert bad.exit_code != 0 and "--threads 1" in bad.output


def test_bench_dialect_option(capsys: pytest.CaptureFixture[str]) -> None:
    """``--dialect`` reaches the bench's networks: AlexeyAB's yolov4-tiny read as pjreddie's is
    refused before anything runs, naming an AlexeyAB-only option and the way out."""
    from darkconv.cli.main import main

    with pytest.raises(SystemExit) as info:
        main(["bench", "yolov4-tiny", "--dialect", "pjreddie", "--runs", "1", "--no-peers"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "--dialect alexeyab" in err, err
    settings = Settings(size=416, dialect="alexeyab")
    assert resized_network("yolov4-tiny", settings.size, settings.dialect).dialect == "alexeyab"
