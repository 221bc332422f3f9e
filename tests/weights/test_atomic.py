"""Atomic writes: all or nothing, plain file modes, early failure on a missing folder."""

from __future__ import annotations

import os
import stat

import pytest

from darkconv.errors import DarkconvError, ImageError
from darkconv.weights.atomic import atomic_writer


def test_success_replaces_target_with_umask_mode(tmp_path):
    target = tmp_path / "out.bin"
    with atomic_writer(target) as f:
        f.write(b"abc")
    assert target.read_bytes() == b"abc"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert os.listdir(tmp_path) == ["out.bin"]


def test_failure_keeps_the_old_file_and_leaves_nothing(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_writer(target) as f:
        f.write(b"half")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_missing_folder_is_a_clear_error_of_the_callers_kind(tmp_path):
    with (
        pytest.raises(ImageError, match="does not exist"),
        atomic_writer(tmp_path / "no" / "x.png", ImageError),
    ):
        pass
    with pytest.raises(DarkconvError, match="it is a folder"), atomic_writer(tmp_path):
        pass
