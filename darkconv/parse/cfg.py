"""cfg text -> positioned sections, and sections -> cfg text.

This is the only module that imports lark.  The grammar (``darknet.lark``) knows
syntax only; section names and options are interpreted by ``registry``/``graph``.
Darknet's lexer (``read_cfg`` / ``strip`` in utils.c) removes every space and tab
from a line, so whitespace inside a key or value is dropped here too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from darkconv.errors import CfgError, CfgSyntaxError, Span

if TYPE_CHECKING:
    from lark import Lark

__all__ = ["Option", "Section", "CfgDocument", "parse_cfg", "read_cfg", "write_sections"]

_GRAMMAR = Path(__file__).with_name("darknet.lark")
_WS = re.compile(r"[ \t\f\v]+")


@dataclass(frozen=True)
class Option:
    key: str
    value: str
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Section:
    """One ``[name]`` block: ``name`` is as written (aliases not yet resolved)."""

    name: str
    options: tuple[Option, ...]
    span: Span = field(compare=False)

    def get(self, key: str) -> Option | None:
        for opt in self.options:
            if opt.key == key:
                return opt
        return None


@dataclass(frozen=True)
class CfgDocument:
    path: str
    sections: tuple[Section, ...]
    warnings: tuple[str, ...] = field(default=(), compare=False)


@lru_cache(maxsize=1)
def _parser() -> Lark:
    # Imported lazily: building the LALR tables is the expensive part of a parse,
    # and lark caches them on disk (cache=True) between processes.
    import lark

    return lark.Lark(
        _GRAMMAR.read_text(encoding="utf-8"),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=False,
        cache=True,
    )


def _decode(data: bytes, path: str) -> str:
    if not data.strip():
        raise CfgError("empty cfg file: expected a [net] section", Span(path))
    if b"\0" in data:
        raise CfgSyntaxError("binary file, not a Darknet cfg (found a NUL byte)", Span(path))
    if data.startswith(b"\xef\xbb\xbf"):  # UTF-8 BOM: Darknet would choke on it; we accept it.
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CfgSyntaxError(
            f"not a text file: invalid UTF-8 byte 0x{data[exc.start]:02x}", Span(path, line)
        ) from None


def _syntax_error(exc: Exception, lines: list[str], path: str) -> CfgSyntaxError:
    import lark

    line = getattr(exc, "line", 0) or 0
    col = getattr(exc, "column", 0) or 0
    if line <= 0 or line > len(lines):
        line = max(1, min(line or len(lines), len(lines)))
    text = lines[line - 1] if lines else ""
    token = getattr(exc, "token", None)
    stripped = text.strip()
    if stripped.startswith("[") and "]" not in stripped:
        msg = "unclosed '[': a section header must end with ']'"
        col = len(text.rstrip("\r\n")) + 1
    elif stripped.startswith("="):
        msg = "option without a key: expected 'key=value'"
    elif isinstance(exc, lark.UnexpectedToken) and token is not None and token.type == "_NL":
        msg = f"expected 'key=value', got {_WS.sub('', stripped)!r} (no '=')"
        col = len(text.rstrip("\r\n")) + 1
    else:
        msg = f"unexpected {text[col - 1 : col]!r}" if col > 0 else "syntax error"
    return CfgSyntaxError(msg, Span(path, line, col, text))


def parse_cfg(text: str | bytes, path: str = "<string>") -> CfgDocument:
    """Parse cfg text into sections; keys and values have all whitespace removed."""
    import lark

    if isinstance(text, bytes):
        text = _decode(text, path)
    elif text.startswith("\ufeff"):
        text = text[1:]
    lines = text.splitlines(keepends=True)
    if not text.strip():
        raise CfgError("empty cfg file: expected a [net] section", Span(path))
    try:
        tree = _parser().parse(text if text.endswith("\n") else text + "\n")
    except lark.UnexpectedInput as exc:
        raise _syntax_error(exc, lines, path) from None

    sections: list[Section] = []
    warnings: list[str] = []
    current: tuple[str, Span, list[Option], set[str]] | None = None

    def close() -> None:
        if current is not None:
            sections.append(Section(current[0], tuple(current[2]), current[1]))

    for node in tree.children:
        if isinstance(node, lark.Token):  # a COMMENT line
            continue
        meta = node.meta
        span = Span(path, meta.line, meta.column, lines[meta.line - 1])
        tokens = [t for t in node.children if isinstance(t, lark.Token)]
        if node.data == "header":
            name_tok = next((t for t in tokens if t.type == "NAME"), None)
            trailing = next((t for t in tokens if t.type == "TRAILING"), None)
            if trailing is not None:
                raise CfgSyntaxError(
                    f"unexpected text {trailing.strip()!r} after the section header",
                    Span(path, trailing.line or meta.line, trailing.column or 0, span.text),
                )
            close()
            name = _WS.sub("", str(name_tok)) if name_tok is not None else ""
            current = (name, span, [], set())
            continue
        key_tok = tokens[0]
        value_tok = tokens[1] if len(tokens) > 1 else None
        key = _WS.sub("", str(key_tok))
        if current is None:
            raise CfgError(
                f"option {key!r} before the first section: a cfg starts with [net]", span
            )
        if value_tok is None or not _WS.sub("", str(value_tok)):
            raise CfgError(
                f"empty value for {key!r}", Span(path, meta.line, meta.end_column, span.text)
            )
        value = _WS.sub("", str(value_tok))
        if key in current[3]:
            # option_find() walks the list from the front: the first value wins.
            warnings.append(f"{span}: duplicate option {key!r} ignored; the first value is used")
            continue
        current[3].add(key)
        current[2].append(
            Option(key, value, Span(path, meta.line, value_tok.column or 0, span.text))
        )
    close()
    return CfgDocument(path, tuple(sections), tuple(warnings))


def read_cfg(path: str | Path) -> CfgDocument:
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise CfgError("no such cfg file", Span(str(path))) from None
    except IsADirectoryError:
        raise CfgError("is a directory, not a cfg file", Span(str(path))) from None
    except OSError as exc:
        raise CfgError(f"cannot read: {exc.strerror}", Span(str(path))) from None
    return parse_cfg(data, str(path))


def write_sections(sections: list[tuple[str, list[tuple[str, str]]]]) -> str:
    """Render ``[(name, [(key, value), ...]), ...]`` as cfg text Darknet reads back."""
    blocks = []
    for name, options in sections:
        body = "".join(f"{k}={v}\n" for k, v in options)
        blocks.append(f"[{name}]\n{body}")
    return "\n".join(blocks)
