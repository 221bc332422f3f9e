"""Decode JPEG files to the exact bytes Darknet's ``load_image_color`` holds (stb_image v2.19).

Darknet's default build decodes with the stb_image copy in its ``src/``; libjpeg(-turbo), and so
Pillow, round differently in the inverse DCT, the chroma upsampling and the colour conversion.
The entropy-coded coefficients are the same whichever decoder reads them, so they come from
libjpeg through the ``jpeglib`` package (the ``darkconv[jpeg]`` extra); the pixel arithmetic is
stb_image's, re-done in NumPy (:mod:`darkconv.apps.jpeg_pixels`).

``decode_jpeg`` returns ``(3, h, w)`` uint8 RGB planes or raises :class:`StbRefusal` when
stb_image itself would refuse the file; ``JpegDecoderMissing`` says the extra is not installed.
"""

from __future__ import annotations

import ctypes
import glob
import os
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

from darkconv.apps.jpeg_header import JpegHeader, StbRefusal, is_jpeg, read_header
from darkconv.apps.jpeg_pixels import (
    CHUNK_PIXELS,
    blinn_8x8,
    idct_component,
    row_walk,
    upsample_rows,
    ycbcr_to_rgb,
)

__all__ = [
    "JpegDataError",
    "JpegDecoderMissing",
    "StbRefusal",
    "decode_jpeg",
    "exact_jpeg_available",
    "is_jpeg",
]

INSTALL_HINT = "pip install 'darkconv[jpeg]'"
# the libjpeg build used for entropy decoding (lossless: every build gives the same coefficients)
_LIBJPEG = "turbo210"


class JpegDecoderMissing(ImportError):
    """The ``jpeglib`` package (``darkconv[jpeg]`` extra) is not installed."""


class JpegDataError(Exception):
    """libjpeg could not read the entropy-coded data (corrupt or unsupported)."""


def exact_jpeg_available() -> bool:
    try:
        import jpeglib  # noqa: F401
    except ImportError:
        return False
    return True


@lru_cache(maxsize=1)
def _libjpeg() -> Any:
    """jpeglib's ``read_jpeg_dct`` from its libjpeg-turbo build, or ``None`` to use its public API.

    Calling the C function directly skips jpeglib's extra header pass and temporary file copy
    (about half of its read time); the public ``jpeglib.read_dct`` is the fallback.
    """
    import jpeglib.cjpeglib as cj

    for folder in cj.__path__:
        for so in sorted(glob.glob(os.path.join(folder, f"cjpeglib_{_LIBJPEG}.*"))):
            try:
                lib = ctypes.CDLL(so)
                return lib.read_jpeg_dct
            except (OSError, AttributeError):
                continue
    return None


def _block_dims(header: JpegHeader) -> list[tuple[int, int]]:
    """Blocks per component, ``ceil(comp.y / 8) x ceil(comp.x / 8)`` as libjpeg sizes them."""
    h_max = max(c.h for c in header.components)
    v_max = max(c.v for c in header.components)
    dims = []
    for c in header.components:
        cw = -(-header.width * c.h // h_max)
        ch = -(-header.height * c.v // v_max)
        dims.append(((ch + 7) // 8, (cw + 7) // 8))
    return dims


def _coefficients(path: str, header: JpegHeader) -> list[NDArray[np.int16]]:
    """Quantised DCT coefficients per component, ``(by, bx, 8, 8)`` int16, natural order."""
    try:
        import jpeglib
    except ImportError:
        raise JpegDecoderMissing(f"exact JPEG decoding needs jpeglib: {INSTALL_HINT}") from None
    read = _libjpeg()
    dims = _block_dims(header)
    if read is not None:
        # a spare block row at the end of each buffer: libjpeg writes what it sized itself
        bufs = [np.empty((by + 1, bx, 8, 8), dtype=np.int16) for by, bx in dims]
        ptrs: list[Any] = [b.ctypes.data_as(ctypes.POINTER(ctypes.c_short)) for b in bufs]
        ptrs += [None] * (4 - len(ptrs))  # Y, Cb, Cr, K; NULL skips a component
        qt = (ctypes.c_ushort * (64 * 4))()
        tbl = (ctypes.c_short * 4)()
        if read(ctypes.c_char_p(os.fsencode(path)), *ptrs, qt, tbl) == 0:
            raise JpegDataError("libjpeg cannot read its DCT coefficients")
        return [b[:-1] for b in bufs]
    try:
        im = jpeglib.read_dct(path)
    except OSError as err:
        raise JpegDataError(f"libjpeg cannot read its DCT coefficients ({err})") from None
    planes = [im.Y, im.Cb, im.Cr, im.K][: len(header.components)]
    return [
        np.asarray(p, dtype=np.int16)[:by, :bx] for p, (by, bx) in zip(planes, dims, strict=True)
    ]


def decode_jpeg(
    path: str | os.PathLike[str], data: bytes | None = None, header: JpegHeader | None = None
) -> NDArray[np.uint8]:
    """``stbi_load(path, .., 3)`` for a JPEG: ``(3, h, w)`` uint8 RGB planes, bit-exact.

    ``data`` (the file's bytes) and ``header`` (:func:`read_header` of them) save reading again.
    Raises :class:`StbRefusal` for files stb_image refuses, :class:`JpegDataError` when libjpeg
    cannot read the coefficients and :class:`JpegDecoderMissing` without the ``jpeg`` extra.
    """
    p = os.fspath(path)
    if data is None:
        with open(p, "rb") as f:
            data = f.read()
    if header is None:
        header = read_header(data)
    coefs = _coefficients(p, header)
    h_max = max(c.h for c in header.components)
    v_max = max(c.v for c in header.components)
    w, h = header.width, header.height
    sources = []
    for comp, coef in zip(header.components, coefs, strict=True):
        pixels = idct_component(coef, np.asarray(comp.qtable, dtype=np.int64))
        comp_w = -(-w * comp.h // h_max)
        comp_h = -(-h * comp.v // v_max)
        hs, vs = h_max // comp.h, v_max // comp.v
        sources.append((pixels[:comp_h, :comp_w], hs, vs, *row_walk(comp_h, h, vs)))
    # upsample and colour-convert in stripes of rows that stay in the CPU cache
    out = np.empty((3, h, w), dtype=np.uint8)
    step = max(1, CHUNK_PIXELS // w)
    for r in range(0, h, step):
        rows = slice(r, min(r + step, h))
        stripe = [
            upsample_rows(src, hs, vs, w, near[rows], far[rows])
            for src, hs, vs, near, far in sources
        ]
        _to_rgb(header, stripe, out[:, rows])
    return out


def _to_rgb(header: JpegHeader, planes: list[NDArray[np.uint8]], out: NDArray[np.uint8]) -> None:
    """``load_jpeg_image``'s colour step for ``req_comp = 3``, into ``out`` ``(3, rows, w)``."""
    n = len(planes)
    if n == 1:  # gray: the value goes to R, G and B
        out[:] = planes[0]
    elif n == 3 and header.is_rgb:
        out[:] = planes
    elif n == 4 and header.adobe_transform == 0:  # CMYK, Adobe-inverted: R = C*K/255
        for i in range(3):
            out[i] = blinn_8x8(planes[i], planes[3])
    else:
        ycbcr_to_rgb(planes[0], planes[1], planes[2], out)
        if n == 4 and header.adobe_transform == 2:  # YCCK
            for i in range(3):
                out[i] = blinn_8x8(255 - out[i], planes[3])
        # YCbCr; a fourth plane without an Adobe transform is ignored
