"""`darkconv build`: the JSON summary checks depend on, and the table."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import CFG_DIR, TABLES

from darkconv.cli.main import cli

NAMES = sorted(p.stem for p in CFG_DIR.glob("*.cfg"))


@pytest.mark.parametrize("name", NAMES)
def test_build_json_matches_darknet(name):
    result = CliRunner().invoke(cli, ["build", str(CFG_DIR / f"{name}.cfg"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    rows = [json.loads(x) for x in (TABLES / f"{name}.shapes.jsonl").read_text().splitlines()]
    layers = [r for r in rows if not r.get("net")]
    net = next(r for r in rows if r.get("net"))
    assert summary["input"] == [net["c"], net["h"], net["w"]]
    assert [(la["type"], la["output"], la["outputs"]) for la in summary["layers"]] == [
        (r["type"], [r["out_c"], r["out_h"], r["out_w"]], r["outputs"]) for r in layers
    ]
    assert summary["weights_bytes"] == int((TABLES / f"{name}.weights_bytes").read_text())
    assert summary["params"] == (summary["weights_bytes"] - 20) // 4
    assert summary["params"] == sum(la["params"] for la in summary["layers"])
    assert set(summary) == {"input", "layers", "params", "bflops", "weights_bytes"}


def test_summary_table_and_totals():
    result = CliRunner().invoke(cli, ["build", "yolov3-tiny", "--summary"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 1 + 24 + 1
    assert lines[1].split()[:3] == ["0", "conv", "16"]
    assert "416 x 416 x    3 ->  416 x 416 x   16" in lines[1]
    assert "35,434,956 bytes" in lines[-1]


def test_parse_side_cli_does_not_import_torch():
    probe = (
        "import sys\nfrom darkconv.cli.main import main\n"
        "try:\n    main(['build', 'yolov3', '--json'])\nexcept SystemExit:\n    pass\n"
        "sys.stderr.write(str('torch' in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stderr.strip().endswith("False")


def test_python_m_darkconv_runs():
    out = subprocess.run(
        [sys.executable, "-m", "darkconv", "build", "darknet53", "--json"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0
    assert json.loads(out.stdout)["weights_bytes"] == int(
        (TABLES / "darknet53.weights_bytes").read_text()
    )


def test_build_fuse_and_winograd():
    fused = CliRunner().invoke(cli, ["build", "yolov3-tiny", "--fuse"])
    assert fused.exit_code == 0, fused.output
    assert "fused batch norm" in fused.output and "Winograd" not in fused.output
    wino = CliRunner().invoke(cli, ["build", "yolov3-tiny", "--winograd"])  # implies --fuse
    assert wino.exit_code == 0, wino.output
    assert "fused batch norm" in wino.output
    # yolov3-tiny at 416: 3x3 stride-1 layers with >= 64 input channels at 52, 26 (F(4,3):
    # 13*13 and 7*7 tiles) and 13 (F(2,3): 7*7 tiles; 4*4 of F(4,3) are too few), except the
    # 512 -> 1024 one at 13, whose 16 * 512 * 1024 transformed weights 49 tiles cannot repay
    assert "Winograd: 2 x F(2x2, 3x3), 3 x F(4x4, 3x3)" in wino.output
