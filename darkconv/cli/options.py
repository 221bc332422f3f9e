"""Options that several ``darkconv`` commands share, declared once.  Costs only click."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from darkconv.parse.budget import MAX_IMAGE_PIXELS

__all__ = ["DECODERS", "DEVICES", "decoder_option", "device_option", "max_pixels_option"]

#: image decoders (:data:`darkconv.apps.imread.DECODERS`; repeated here so --help costs no numpy)
DECODERS = ("stb", "pillow")

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


def max_pixels_option() -> Callable[[Any], Any]:
    """``--max-image-pixels``: the bound on an input image's pixel count (decompression bombs)."""
    return click.option(
        "--max-image-pixels",
        type=click.IntRange(min=1),
        default=MAX_IMAGE_PIXELS,
        show_default=True,
        help="Refuse images with more pixels than this (checked before decoding).",
    )


def decoder_option() -> Callable[[Any], Any]:
    """``--decoder``: ``stb`` (Darknet's stb_image, exact for JPEG) or ``pillow``."""
    return click.option(
        "--decoder",
        type=click.Choice(list(DECODERS)),
        default=DECODERS[0],
        show_default=True,
        help="Image decoder: stb decodes JPEGs bit-exactly as Darknet; pillow is libjpeg-turbo.",
    )
