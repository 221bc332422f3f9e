"""``darkconv train``: every darknet-train case through ``--raw`` (losses, rates and ``seen`` printed
per call, the weights and header written) and every ``lr_table.json`` row through ``--schedule``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from fixture_util import run_main as _main
from train_util import LOSS_TOL, TRAIN_FIXTURES, case_semantics, cases, check_weights, manifest

import darkconv
from darkconv.train import GlibcRand, TrainHyper, get_current_rate

CASES = cases()
LINE = re.compile(r"^(\d+): loss (\S+), rate (\S+), seen (\d+)$")
LR_TABLE = TRAIN_FIXTURES / "lr_policies" / "lr_table.json"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_train_raw_matches_darknet(
    case: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    man = manifest(case)
    out = tmp_path / "out.weights"
    argv = ["train", str(case / "case.cfg"), "--weights", str(case / "init.weights"),
            "--raw", str(case / "X.npy"), str(case / "Y.npy"), "--iterations", str(man["K"]),
            "-o", str(out), "--semantics", case_semantics(man)]  # fmt: skip
    if man.get("train_srand") is not None:
        argv += ["--srand", str(man["train_srand"])]
    assert _main(argv) == 0
    lines = [m for m in map(LINE.match, capsys.readouterr().out.splitlines()) if m]
    assert len(lines) == man["K"]
    for m, call in zip(lines, man["calls"], strict=True):
        loss, rate, seen = float(m.group(2)), m.group(3), int(m.group(4))
        assert abs(loss - call["loss"]) <= LOSS_TOL * abs(call["loss"])
        assert seen == call["seen_after"]
        if call["update_called"]:
            assert np.float32(float(rate)) == np.float32(call["lr_used_in_update"])
    assert [p.name for p in tmp_path.iterdir()] == ["out.weights"]  # written atomically
    model = darkconv.load(case / "case.cfg", out)
    assert model.seen == man["weights_headers"]["after_K.weights"]["seen"]
    if (case / "after_K.weights").is_file():
        check_weights(model, case / "after_K.weights")
    else:  # the lean copy: at least the header bytes equal Darknet's
        assert out.stat().st_size == man["weights_bytes"]


def _tables() -> list[dict]:
    return json.loads(LR_TABLE.read_text())["tables"] if LR_TABLE.is_file() else []


TABLES = _tables()


def _cfg(table: dict, folder: Path) -> Path:
    """The table's cfg: its [net] lines plus batch/subdivisions, and one layer."""
    net = "\n".join(table["net_section"])
    text = (f"[net]\nbatch={table['batch']}\nsubdivisions={table['subdivisions']}\n"
            f"width=8\nheight=8\nchannels=1\n{net}\n\n[convolutional]\nfilters=1\nsize=1\n")  # fmt: skip
    path = folder / f"{table['name']}.cfg"
    path.write_text(text)
    return path


@pytest.mark.parametrize("i", range(len(TABLES)), ids=[t["name"] for t in TABLES])
def test_schedule_reproduces_lr_table(
    i: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = TABLES[i]
    rows = table["rows_seen_batchnum_rate"]
    cfg = _cfg(table, tmp_path)
    hyper = TrainHyper.from_network(darkconv.parse.load_network(cfg))
    assert hyper.net_batch == table["net_batch"]
    # The Python API, row by row at the row's seen (random: srand(1234), rows in order).
    rand = GlibcRand(1234)
    for seen, batch_num, rate in rows:
        assert hyper.batch_num(seen) == batch_num
        got = get_current_rate(hyper, seen, rand)
        assert np.float32(got) == np.float32(rate) or (np.isnan(got) and np.isnan(rate)), seen
    # The CLI: one "N RATE" line per listed batch number, %.9g.
    nums = ",".join(str(bn) for _, bn, _ in rows)
    assert _main(["train", str(cfg), "--schedule", nums, "--srand", "1234"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed[0::2] == [str(bn) for _, bn, _ in rows]
    for text, (_, _, rate) in zip(printed[1::2], rows, strict=True):
        assert text == f"{rate:.9g}" or (text == "nan" and np.isnan(rate)), (text, rate)
