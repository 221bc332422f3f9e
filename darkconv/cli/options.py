"""Options that several ``darkconv`` commands share, declared once.  Costs only click."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from darkconv.parse.budget import MAX_IMAGE_PIXELS

__all__ = [
    "DECODERS",
    "DEVICES",
    "DIALECTS",
    "exact_batch_option",
    "decoder_option",
    "device_option",
    "dialect_option",
    "max_pixels_option",
    "semantics_options",
    "size_option",
]

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


#: The Darknets a cfg can be read as (``darkconv.parse.registry.DIALECTS``; kept literal here so
#: that the CLI's import costs only click).  ``auto``: detect from the cfg.
DIALECTS = ("auto", "pjreddie", "alexeyab")


def dialect_option(help: str | None = None) -> Callable[[Any], Any]:
    """``--dialect auto|pjreddie|alexeyab``; the command receives ``dialect`` (None for auto)."""
    return click.option(
        "--dialect",
        type=click.Choice(list(DIALECTS)),
        default="auto",
        show_default=True,
        callback=lambda _ctx, _param, value: None if value == "auto" else value,
        help=help
        or "Which Darknet's semantics to use: auto detects AlexeyAB's cfgs (build shows why).",
    )


def semantics_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--intended-activations`` and ``--nofuse``: the command receives ``intended_activations``
    and ``nofuse`` (see :func:`darkconv.nn.builder.build`)."""
    func = click.option(
        "--nofuse",
        is_flag=True,
        help="AlexeyAB without the weight folding its apps do at load time (weighted [shortcut] "
        "normalized with relu instead of max(w, .001)).",
    )(func)
    return click.option(
        "--intended-activations",
        is_flag=True,
        help="Compute relu6/swish/mish/hard_mish/normalize_channels* where AlexeyAB's CPU forward "
        "outputs 0 for them (build lists those layers).",
    )(func)


def _size_callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value is None or isinstance(value, tuple):
        return value
    from darkconv.errors import DarkconvError
    from darkconv.parse.size import parse_size

    try:
        return parse_size(str(value))
    except DarkconvError as exc:
        raise click.BadParameter(exc.message) from None


def size_option(
    default: tuple[int, int] | None = None, help: str | None = None
) -> Callable[[Any], Any]:
    """``--size WxH`` (or ``N`` for NxN) -> the parameter ``size``: ``(w, h)`` or None.

    The same as editing ``[net] width=W height=H`` in the cfg (:func:`darkconv.parse.size.
    with_size`); None keeps the cfg's size.  Every command that runs a network declares it
    through this function, so its name, syntax and meaning are the same everywhere."""
    text = help or (
        "Input size WxH (or N for NxN), as if [net] width/height were edited in the cfg; "
        "the same weights load. Default: the cfg's size."
    )
    return click.option(
        "--size",
        "size",
        default=None if default is None else f"{default[0]}x{default[1]}",
        show_default=default is not None,
        metavar="WxH",
        callback=_size_callback,
        help=text,
    )


def exact_batch_option() -> Callable[[Any], Any]:
    """``--exact-batch``: run the images of a batch one by one, so that each row equals its
    batch-1 result bit for bit (Darknet's own behaviour); default: batched, faster."""
    return click.option(
        "--exact-batch",
        "exact_batch",
        is_flag=True,
        help="Run batch rows one by one: every row equals its batch-1 result bit for bit.",
    )
