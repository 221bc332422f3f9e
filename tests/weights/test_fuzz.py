"""Crafted and corrupted weights files, fuzzed: only darkconv's own errors may escape, and a
failed conversion writes nothing.

Every case goes through ``darkconv weights IN -o OUT`` (the command a user or a service runs):
exit 0, or exit 2 with one ``error:`` line; never the ``internal error`` of an escaped exception
(exit 70), and never an OUT file after a failure.
"""

from __future__ import annotations

import json
import struct
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import FIXTURES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from darkconv.cli.main import main

CASE = FIXTURES / "layers" / "conv_bn"  # conv + batch norm: every record kind of a conv layer
CFG = str(CASE / "case.cfg")
WEIGHTS = (CASE / "case.weights").read_bytes()
# capsys is shared by the examples of one test; _convert drains it before each run.
FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,
)


def _convert(src: Path, dst: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["weights", str(src), "-o", str(dst), "--cfg", CFG])
    code = exc.value.code if isinstance(exc.value.code, int) else 1
    return code, capsys.readouterr().err


def _check(code: int, err: str, dst: Path) -> None:
    assert "internal error" not in err and "Traceback" not in err, err
    assert code in (0, 2), (code, err)
    if code:
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, err
        assert not dst.exists(), "a failed conversion left its output behind"
        assert not [p for p in dst.parent.iterdir() if p.name.startswith(".")], "temp file left"


def _run(data: bytes, suffix: str, out: str, capsys: pytest.CaptureFixture[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / f"in{suffix}", Path(tmp) / out
        src.write_bytes(data)
        _check(*_convert(src, dst, capsys), dst)


# ----------------------------------------------------------------------------- .weights


def test_valid_file_converts(capsys: pytest.CaptureFixture[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.weights", Path(tmp) / "out.pth"
        src.write_bytes(WEIGHTS)
        code, err = _convert(src, dst, capsys)
        assert code == 0 and dst.is_file(), err


@FUZZ
@given(cut=st.integers(0, len(WEIGHTS) - 1))
def test_truncated_weights(cut: int, capsys: pytest.CaptureFixture[str]) -> None:
    _run(WEIGHTS[:cut], ".weights", "out.pth", capsys)


@FUZZ
@given(pos=st.integers(0, 19), bit=st.integers(0, 7))
def test_header_bit_flips(pos: int, bit: int, capsys: pytest.CaptureFixture[str]) -> None:
    data = bytearray(WEIGHTS)
    data[pos] ^= 1 << bit
    _run(bytes(data), ".weights", "out.pth", capsys)


@FUZZ
@given(
    major=st.integers(-(2**31), 2**31 - 1),
    minor=st.integers(-(2**31), 2**31 - 1),
    revision=st.integers(-(2**31), 2**31 - 1),
    seen=st.integers(0, 2**64 - 1),
    tail=st.binary(max_size=64),
)
def test_absurd_headers(
    major: int,
    minor: int,
    revision: int,
    seen: int,
    tail: bytes,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A 64-bit seen (the 0.2 layout) followed by the body; other versions read 32 bits of it.
    header = struct.pack("<iiiQ", major, minor, revision, seen)
    _run(header + WEIGHTS[20:] + tail, ".weights", "out.pth", capsys)


# ----------------------------------------------------------------------------- .pth


def _state() -> dict[str, torch.Tensor]:
    from darkconv.parse import load_network
    from darkconv.weights.io import read_weights

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "w.weights"
        path.write_bytes(WEIGHTS)
        _, sd = read_weights(path, load_network(CFG))
    return {k: v.clone() for k, v in sd.items()}


STATE = _state()
KEYS = sorted(STATE)
VALUES = st.one_of(
    st.sampled_from(
        [
            torch.zeros(3, dtype=torch.int64),
            torch.zeros(2, 2, dtype=torch.bool),
            torch.zeros(4, dtype=torch.float16),
            torch.zeros(0),
            torch.tensor(float("nan")),
            torch.zeros(1, 1, 1, 1, 1),
        ]
    ),
    st.integers(),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.none(),
)


@FUZZ
@given(
    drop=st.sets(st.sampled_from(KEYS), max_size=2),
    replace=st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=2),
    extra=st.dictionaries(st.text(min_size=1, max_size=12), VALUES, max_size=2),
    wrap=st.sampled_from(["dict", "list", "nested", "tensor"]),
)
def test_crafted_state_dicts(
    drop: set[str],
    replace: dict[str, Any],
    extra: dict[str, Any],
    wrap: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sd: dict[str, Any] = {k: v for k, v in STATE.items() if k not in drop}
    sd.update(replace)
    sd.update(extra)
    obj: Any = {
        "dict": sd,
        "list": list(sd.values()),
        "nested": {"state_dict": sd, "epoch": 3},
        "tensor": torch.zeros(3),
    }[wrap]
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.pth", Path(tmp) / "out.weights"
        torch.save(obj, src)
        _check(*_convert(src, dst, capsys), dst)


# ----------------------------------------------------------------------------- .safetensors


def _safetensors(header: dict[str, Any], body: bytes, length: int | None = None) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + body


@FUZZ
@given(
    key=st.sampled_from(KEYS),
    dtype=st.sampled_from(["F32", "F16", "I64", "BOOL", "F64", "XX", ""]),
    shape=st.lists(st.integers(-2, 2**40), max_size=4),
    begin=st.integers(-8, 2**40),
    size=st.integers(-8, 64),
    body=st.binary(max_size=64),
    lie=st.one_of(st.none(), st.integers(0, 2**64 - 1)),
)
def test_lying_safetensors_headers(
    key: str,
    dtype: str,
    shape: list[int],
    begin: int,
    size: int,
    body: bytes,
    lie: int | None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("safetensors", reason="the safetensors extra is not installed")
    header = {key: {"dtype": dtype, "shape": shape, "data_offsets": [begin, begin + size]}}
    _run(_safetensors(header, body, lie), ".safetensors", "out.weights", capsys)
