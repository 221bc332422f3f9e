"""Class-name lists and Darknet ``.data`` files, read the way Darknet reads them.

* names file (``get_labels``): one label per line, the newline removed, nothing else stripped
  (darkconv also drops a trailing ``\\r`` so that CRLF files give clean labels).
* ``.data`` file (``read_data_cfg``): every space, tab and newline is removed from each line, lines
  that are empty or start with ``#`` / ``;`` are comments, ``key=value`` splits at the first ``=``,
  and when a key repeats the **first** value wins (``option_find`` walks the list from the front).
* relative paths inside a ``.data`` file are opened by Darknet relative to the **current working
  directory**; darkconv does the same and, only when that file does not exist, falls back to the
  ``.data`` file's own folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from darkconv.errors import DarkconvError, Span

__all__ = ["DataFile", "LabelsError", "read_data_file", "read_names", "resolve_data_path"]


class LabelsError(DarkconvError):
    """A names list or ``.data`` file that cannot be read."""


def _read_text(path: str, what: str) -> str:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise LabelsError(f"{path}: cannot open {what}: no such file") from None
    except IsADirectoryError:
        raise LabelsError(f"{path}: cannot open {what}: is a directory") from None
    except OSError as err:
        raise LabelsError(f"{path}: cannot open {what}: {err.strerror or err}") from None
    return raw.decode("utf-8", errors="replace")


def read_names(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """Darknet's ``get_labels``: the lines of the file, each without its newline."""
    p = os.fspath(path)
    text = _read_text(p, "names file")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # fgetl stops at EOF: a final newline does not make an empty label
    return tuple(line[:-1] if line.endswith("\r") else line for line in lines)


def _atoi(text: str) -> int:
    """C ``atoi``: optional sign and leading digits; anything else gives 0."""
    s = text.lstrip(" \t\n\v\f\r")
    sign = 1
    if s[:1] in ("+", "-"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    digits = ""
    for ch in s:
        if not ch.isascii() or not ch.isdigit():
            break
        digits += ch
    return sign * int(digits) if digits else 0


@dataclass(frozen=True)
class DataFile:
    """The options of a Darknet ``.data`` file (first value of a repeated key wins)."""

    path: str
    options: dict[str, str] = field(default_factory=dict)

    def get(self, key: str) -> str | None:
        return self.options.get(key)

    def get_int(self, key: str, default: int) -> int:
        """``option_find_int``: ``atoi`` of the value, or the default when the key is absent."""
        value = self.options.get(key)
        return default if value is None else _atoi(value)

    def names_path(self, default: str | None = None) -> str | None:
        """``names=``, else ``labels=`` (the classifier's fallback key), else ``default``."""
        value = self.options.get("names") or self.options.get("labels")
        if value is None:
            return default
        return resolve_data_path(value, self.path)


def read_data_file(path: str | os.PathLike[str]) -> DataFile:
    """Darknet's ``read_data_cfg``."""
    p = os.fspath(path)
    text = _read_text(p, ".data file")
    options: dict[str, str] = {}
    for lineno, line in enumerate(text.split("\n"), start=1):
        # strip(): every ' ', '\t', '\n' anywhere in the line; darkconv also drops '\r'
        s = "".join(ch for ch in line if ch not in " \t\n\r")
        if not s or s[0] in "#;":
            continue
        if "=" not in s:
            raise LabelsError(
                "line is not key=value",
                span=Span(p, lineno, 1, line),
            )
        key, value = s.split("=", 1)
        options.setdefault(key, value)  # option_find returns the first match
    return DataFile(p, options)


def resolve_data_path(value: str, data_path: str | None) -> str:
    """A path from a ``.data`` file: relative to the cwd like Darknet, else to the file's folder."""
    if os.path.isabs(value) or os.path.exists(value) or data_path is None:
        return value
    candidate = os.path.join(os.path.dirname(os.path.abspath(data_path)), value)
    return candidate if os.path.exists(candidate) else value
