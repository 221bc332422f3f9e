"""Options that several ``darkconv`` commands share, declared once.  Costs only click."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

__all__ = ["DEVICES", "device_option"]

#: ``auto``: CUDA when torch sees a GPU, else the CPU (:func:`darkconv.builder.pick_device`).
DEVICES = ("cpu", "cuda", "auto")


def device_option(
    default: str = "cpu", choices: tuple[str, ...] = DEVICES, help: str | None = None
) -> Callable[[Any], Any]:
    """``--device`` with ``choices`` (default cpu, cuda, auto)."""
    if default not in choices:
        raise ValueError(f"default {default!r} is not one of {choices}")
    return click.option(
        "--device", type=click.Choice(list(choices)), default=default, show_default=True, help=help
    )
