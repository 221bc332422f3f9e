"""`--dialect` and `build --json` on AlexeyAB's cfgs (fixtures/alexeyab/tables)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import CFG_DIR, FIXTURES

from darkconv.cli.main import cli, main
from darkconv.cli.options import DIALECTS
from darkconv.parse.registry import DIALECTS as REGISTRY_DIALECTS

TABLES = FIXTURES / "alexeyab" / "tables"
INDEX = json.loads((TABLES / "index.json").read_text())


def test_cli_choices_are_the_registry_dialects():
    assert ("auto", *REGISTRY_DIALECTS) == DIALECTS


def _main_err(capsys, argv: list[str]) -> str:
    """Run the console entry point (where errors become exit codes); return stderr."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(INDEX))
def test_build_json_matches_alexeyab(name, capsys):
    if not INDEX[name]["parsed_ok"]:
        # Darknet aborts on these: one positioned error line, exit 2, no traceback.
        err = _main_err(capsys, ["build", f"alexeyab/{name}", "--json"])
        assert f"error: {CFG_DIR / 'alexeyab' / name}.cfg:" in err
        assert "Traceback" not in err
        return
    result = CliRunner().invoke(cli, ["build", f"alexeyab/{name}", "--json"])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("dialect: alexeyab: ")
    summary = json.loads(result.stdout)
    rows = [json.loads(x) for x in (TABLES / f"{name}.shapes.jsonl").read_text().splitlines()]
    net = next(r for r in rows if r.get("net"))
    assert summary["input"] == [net["c"], net["h"], net["w"]]
    assert [(la["type"], la["output"], la["outputs"]) for la in summary["layers"]] == [
        (r["type"], [r["out_c"], r["out_h"], r["out_w"]], r["outputs"])
        for r in rows
        if not r.get("net")
    ]
    assert summary["weights_bytes"] == INDEX[name]["weights_bytes"]
    assert summary["params"] == (summary["weights_bytes"] - 20) // 4
    assert set(summary) == {"input", "layers", "params", "bflops", "weights_bytes"}


def test_build_prints_the_dialect_and_why():
    ab = CliRunner().invoke(cli, ["build", "yolov4-tiny", "--summary"])
    assert ab.exit_code == 0
    assert "dialect: alexeyab: [route] groups at line 60" in ab.stderr
    pj = CliRunner().invoke(cli, ["build", "yolov3-tiny", "--summary"])
    assert "dialect: pjreddie: no AlexeyAB-only section, option or activation" in pj.stderr
    forced = CliRunner().invoke(cli, ["build", "yolov3-tiny", "--json", "--dialect", "alexeyab"])
    assert forced.exit_code == 0 and "dialect: alexeyab: chosen explicitly" in forced.stderr
    # The same cfg through both Darknets: same shapes and sizes; AlexeyAB also counts maxpool
    # BFLOPs (make_maxpool_layer), pjreddie does not.
    pj_json, ab_json = (
        json.loads(CliRunner().invoke(cli, ["build", "yolov3-tiny", "--json"]).stdout),
        json.loads(forced.stdout),
    )
    strip = [{k: v for k, v in la.items() if k != "bflops"} for la in pj_json["layers"]]
    assert strip == [{k: v for k, v in la.items() if k != "bflops"} for la in ab_json["layers"]]
    assert pj_json["weights_bytes"] == ab_json["weights_bytes"]
    pools = [la["bflops"] for la in ab_json["layers"] if la["type"] == "maxpool"]
    assert ab_json["bflops"] > pj_json["bflops"] and all(b > 0 for b in pools)


def test_build_warns_about_cpu_zero_activations():
    cfg = FIXTURES / "alexeyab" / "layers" / "act_mish" / "case.cfg"
    result = CliRunner().invoke(cli, ["build", str(cfg), "--json", "--dialect", "alexeyab"])
    assert result.exit_code == 0
    assert "layer 6: AlexeyAB's Darknet's CPU forward outputs 0 for mish in [activation]" in (
        result.stderr
    )


def test_wrong_dialect_is_one_error_with_a_hint(capsys):
    err = _main_err(capsys, ["build", "yolov4", "--json", "--dialect", "pjreddie"])
    assert err.startswith("error: ") and "hint: " in err
    assert "--dialect alexeyab" in err
    bad = CliRunner().invoke(cli, ["build", "yolov4", "--dialect", "darknet"])
    assert bad.exit_code == 2 and "darknet" in bad.output


def test_run_and_verify_take_the_dialect(tmp_path):
    case = FIXTURES / "alexeyab" / "layers" / "conv_bn"
    args = [str(case / "case.cfg"), str(case / "case.weights"), "--input", str(case / "input.npy")]
    ref = ["--reference", str(case / "outputs.npz"), "--device", "cpu"]
    # conv_bn.cfg uses nothing AlexeyAB-only: auto reads it as pjreddie's (BN epsilon 1e-6 after
    # the sqrt), 6e-6 from AlexeyAB's fused output; --dialect alexeyab matches it to float rounding.
    strict = CliRunner().invoke(cli, ["verify", *args, *ref, "--tol", "1e-6"])
    assert strict.exit_code != 0
    ab = CliRunner().invoke(cli, ["verify", *args, *ref, "--tol", "1e-6", "--dialect", "alexeyab"])
    assert ab.exit_code == 0, ab.output
    out = tmp_path / "out.npz"
    run = CliRunner().invoke(cli, ["run", *args, "-o", str(out), "--dialect", "alexeyab"])
    assert run.exit_code == 0, run.output
    assert out.exists()
