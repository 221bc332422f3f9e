"""One exception hierarchy for everything darkconv reports to a user.

Every error that points into a file carries a :class:`Span`; ``str(err)`` renders
``path:line:col: message`` and, where the offending line is known, the line itself
with a caret under the column.  The CLI prints ``str(err)`` and exits non-zero.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Span",
    "DarkconvError",
    "CfgError",
    "CfgSyntaxError",
    "GraphError",
    "UnsupportedError",
    "WeightsError",
    "ImageError",
    "ResourceError",
    "is_out_of_memory",
]


@dataclass(frozen=True)
class Span:
    """A position in a text file: 1-based line and column, plus the line's text."""

    path: str = "<string>"
    line: int = 0
    col: int = 0
    text: str | None = None

    def __str__(self) -> str:
        if self.line <= 0:
            return self.path
        if self.col <= 0:
            return f"{self.path}:{self.line}"
        return f"{self.path}:{self.line}:{self.col}"


class DarkconvError(Exception):
    """Base class: a problem with the user's input, reported without a traceback."""

    exit_code = 2

    def __init__(self, message: str, span: Span | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.span = span
        self.hint = hint

    def headline(self) -> str:
        """The one-line form: ``path:line:col: message``."""
        return f"{self.span}: {self.message}" if self.span else self.message

    def __str__(self) -> str:
        out = [self.headline()]
        span = self.span
        if span is not None and span.text is not None and span.line > 0:
            text = span.text.rstrip("\r\n")
            out.append(f"    {text}")
            if span.col > 0:
                out.append("    " + " " * (span.col - 1) + "^")
        if self.hint:
            out.append(f"hint: {self.hint}")
        return "\n".join(out)


class CfgError(DarkconvError):
    """A cfg file that Darknet's parser would reject or misread."""


class CfgSyntaxError(CfgError):
    """The cfg text does not fit the grammar (brackets, missing '=', binary data)."""


class GraphError(CfgError):
    """Options that parse but do not make a network (bad sizes, dangling route indices)."""


class UnsupportedError(CfgError):
    """A section or option with a meaning darkconv does not implement."""


class WeightsError(DarkconvError):
    """A .weights / .pth / .safetensors file that does not fit the network."""


class ImageError(DarkconvError):
    """An image that cannot be read."""


class ResourceError(DarkconvError):
    """An input whose cost (parameters, activations, decoded pixels) exceeds what this machine
    or process can give, refused before it is allocated, or an allocation that failed anyway."""


def is_out_of_memory(exc: BaseException) -> bool:
    """An allocator's failure: ``MemoryError``, or the error torch raises for a failed CPU/CUDA
    allocation (``DefaultCPUAllocator: can't allocate memory``, ``CUDA out of memory``)."""
    if isinstance(exc, MemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        "can't allocate memory" in text or "out of memory" in text.lower()
    )
