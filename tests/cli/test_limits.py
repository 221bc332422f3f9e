"""The hostile inputs of the "Limits and failure modes" section, run as a user runs them: under
an 8 GB address-space cap (``ulimit -v``), each ends in one ``error:`` line and exit 2, with no
traceback, no ``internal error`` and nothing written."""

from __future__ import annotations

import os
import resource
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

CAP = 8 * 1024**3


def _cap() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CAP, CAP))


def _png_header_only(path: Path, w: int, h: int) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def _darkconv(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("DARKCONV_DEBUG", None)
    env.pop("DARKCONV_NO_MEMORY_CHECK", None)
    # A hang guard for CI, not a timing assertion: each case takes seconds.
    return subprocess.run(
        [sys.executable, "-m", "darkconv", *args],
        capture_output=True, text=True, preexec_fn=_cap, env=env, timeout=300, check=False,
    )  # fmt: skip


def _one_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hostile")
    _png_header_only(d / "bomb.png", 60000, 60000)
    from PIL import Image

    Image.new("RGB", (64, 48), (90, 40, 10)).save(d / "small.png")
    (d / "filters.cfg").write_text(
        "[net]\nwidth=32\nheight=32\nchannels=3\n\n"
        "[convolutional]\nfilters=2000000000\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
    )
    (d / "huge.cfg").write_text(
        "[net]\nwidth=200000\nheight=200000\nchannels=3\n\n"
        "[convolutional]\nfilters=4\nsize=1\nstride=1\nactivation=linear\n\n[avgpool]\n\n[softmax]\n"
    )
    header = np.array([0, 2, 0], "<i4").tobytes() + np.zeros(1, "<u8").tobytes()
    (d / "huge.weights").write_bytes(header + np.zeros(4 + 4 * 3, "<f4").tobytes())
    return {p.stem + p.suffix: p for p in d.iterdir()}


def test_decompression_bomb_png(files: dict[str, Path]) -> None:
    proc = _darkconv(
        "predict", str(files["huge.cfg"]), str(files["huge.weights"]), str(files["bomb.png"])
    )
    line = _one_error(proc)
    assert "60000x60000" in line and "--max-image-pixels" in line, line


def test_cfg_with_56_g_parameters(files: dict[str, Path]) -> None:
    line = _one_error(_darkconv("build", str(files["filters.cfg"])))
    assert "layer 0 (convolutional): 56 G parameters: needs 224 GB" in line, line


def test_net_of_200000_squared(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "boxes.png"
    args = [str(files["huge.cfg"]), str(files["huge.weights"]), str(files["small.png"])]
    line = _one_error(_darkconv("predict", *args))
    assert "3x200000x200000" in line and "needs" in line, line
    assert not out.exists()


def test_summary_and_json_still_work(files: dict[str, Path]) -> None:
    for flag in ("--summary", "--json"):
        proc = _darkconv("build", str(files["filters.cfg"]), flag)
        assert proc.returncode == 0, proc.stderr
        assert "56,000,000,000" in proc.stdout or "56000000000" in proc.stdout
