"""Read an image file into the bytes Darknet's ``load_image_color`` holds: ``(3, h, w)`` uint8 RGB.

Two decoders (``DECODERS``):

* ``"stb"`` (default): JPEGs go through :mod:`darkconv.apps.jpeg`, stb_image's arithmetic bit for
  bit; other formats are lossless and go through Pillow, which gives stb_image's bytes for them.
  A JPEG stb_image refuses (12-bit, arithmetic-coded, lossless ...) or a missing ``jpeg`` extra
  falls back to Pillow and emits one :class:`DecoderNote` warning saying why.
* ``"pillow"``: Pillow (libjpeg-turbo) for everything; JPEG pixels differ from Darknet's by a few
  levels.

Either way gray is replicated into R, G and B, alpha is dropped (not composited), EXIF
orientation is ignored and 16-bit samples keep their high byte, as ``stbi_load(.., 3)`` does.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray

from darkconv.apps.image import check_image_size
from darkconv.apps.jpeg_header import StbRefusal, is_jpeg, read_header
from darkconv.errors import ImageError
from darkconv.parse.budget import MAX_IMAGE_PIXELS

__all__ = ["DECODERS", "DecoderNote", "load_image", "pil_to_rgb"]

DECODERS = ("stb", "pillow")
_SNIFF = 1 << 16  # bytes read to tell a JPEG (stb_image's test: 0xFF fill bytes, then SOI)


class DecoderNote(UserWarning):
    """A file fell back from the exact decoder to Pillow (the message says why)."""


def pil_to_rgb(pil: object) -> NDArray[np.uint8]:
    """A Pillow image as ``stbi_load(.., 3)`` returns it, in planes: ``(3, h, w)`` uint8."""
    from PIL import Image

    if not isinstance(pil, Image.Image):
        raise ImageError(f"not a Pillow image: {type(pil).__name__}")
    mode = pil.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit gray: stb_image keeps the high byte of each sample
        arr16 = np.asarray(pil).astype(np.int64)
        gray = np.clip(arr16 >> 8, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.broadcast_to(gray, (3, *gray.shape)))
    if mode != "RGB":
        # "L"/"LA"/"P"/"RGBA"/"1"/...: Pillow's RGB conversion replicates gray and drops alpha
        pil = pil.convert("RGB")
    return np.ascontiguousarray(np.asarray(pil, dtype=np.uint8).transpose(2, 0, 1))


def _pillow(path: str, max_pixels: int) -> NDArray[np.uint8]:
    from PIL import Image, UnidentifiedImageError

    try:
        with _pillow_bound(max_pixels), Image.open(path) as pil:
            check_image_size(path, pil.size[0], pil.size[1], max_pixels)
            pil.load()
            return pil_to_rgb(pil)
    except UnidentifiedImageError:
        raise ImageError(f"{path}: cannot load image: unknown or corrupt image format") from None
    except (OSError, ValueError, SyntaxError) as err:
        raise ImageError(f"{path}: cannot load image: {err}") from None


@contextlib.contextmanager
def _pillow_bound(max_pixels: int) -> Iterator[None]:
    """Pillow's own bomb check (a warning over its ``MAX_IMAGE_PIXELS``, an error over twice
    that) gives way to ours, :func:`check_image_size`, run right after ``Image.open`` has read
    the header and before any pixel is decoded.  ``max_pixels`` bounds the decode either way."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None  # check_image_size() applies max_pixels instead
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def load_image(
    path: str | os.PathLike[str], max_pixels: int = MAX_IMAGE_PIXELS, decoder: str = "stb"
) -> NDArray[np.uint8]:
    """``load_image_color(path, 0, 0)`` as bytes: ``(3, h, w)`` uint8 RGB planes.

    Darknet's floats are exactly these bytes / 255.  ``decoder`` is ``"stb"`` (Darknet's
    stb_image, exact) or ``"pillow"``.  An image over ``max_pixels`` pixels, or one whose decode
    would not fit in memory, is refused from its header, before any pixel is decoded
    (:func:`darkconv.apps.image.check_image_size`).
    """
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, not {decoder!r}")
    p = os.fspath(path)
    try:
        with open(p, "rb") as f:
            head = f.read(_SNIFF)
            jpeg = decoder == "stb" and is_jpeg(head)
            data = head + f.read() if jpeg else b""  # the rest only for the exact decoder
    except FileNotFoundError:
        raise ImageError(f"{p}: cannot load image: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{p}: cannot load image: is a directory") from None
    except OSError as err:
        raise ImageError(f"{p}: cannot load image: {err.strerror or err}") from None
    if jpeg:
        from darkconv.apps.jpeg import JpegDataError, JpegDecoderMissing, decode_jpeg

        try:
            header = read_header(data)
            check_image_size(p, header.width, header.height, max_pixels)
            return decode_jpeg(p, data, header)
        except StbRefusal as why:
            note = f"{p}: stb_image (Darknet) cannot read this JPEG ({why}); decoded with Pillow"
        except JpegDataError as why:
            note = f"{p}: {why}; decoded with Pillow"
        except JpegDecoderMissing as why:
            note = f"{p}: decoded with Pillow, a few levels off Darknet's stb_image ({why})"
        warnings.warn(note, DecoderNote, stacklevel=2)
    return _pillow(p, max_pixels)
