"""Atomic file writes: every output goes to a temporary file in its destination folder and
is renamed over the target only when complete, so a failed or interrupted command leaves
nothing half-written and never clobbers an existing file.  No torch here."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import IO

from darkconv.errors import DarkconvError

__all__ = ["check_output_path", "atomic_path", "atomic_writer"]


def check_output_path(
    path: str | os.PathLike[str], error: type[DarkconvError] = DarkconvError
) -> str:
    """Fail early (before any work) when ``path`` cannot be written."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise error(f"cannot write {path}: the folder {folder} does not exist")
    if os.path.isdir(path):
        raise error(f"cannot write {path}: it is a folder")
    return path


def _final_mode(path: str) -> int:
    # mkstemp creates 0600; give the result the mode a plain open() would (or the old file's).
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike[str], error: type[DarkconvError] = DarkconvError
) -> Iterator[str]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, else it is removed."""
    path = check_output_path(path, error)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    except OSError as exc:
        raise error(f"cannot write {path}: {exc.strerror or exc}") from None
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, _final_mode(path))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_writer(
    path: str | os.PathLike[str], error: type[DarkconvError] = DarkconvError
) -> Iterator[IO[bytes]]:
    """An open binary file that becomes ``path`` only if the block succeeds."""
    with atomic_path(path, error) as tmp:
        try:
            with open(tmp, "wb") as f:
                yield f
        except OSError as exc:
            raise error(f"cannot write {os.fspath(path)}: {exc.strerror or exc}") from None
