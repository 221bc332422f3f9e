"""Image loading and preprocessing exactly as Darknet's ``src/image.c`` does it.

Images are float32 arrays in Darknet's layout: ``(channels, height, width)`` with values in
``[0, 1]``.  Every arithmetic step mirrors Darknet's float32 loops (vectorized with NumPy
float32 operations, which round after every operation just as the C code does), so the
results are bit-identical to Darknet's ``resize_image`` / ``letterbox_image``.

Decoding: :mod:`darkconv.apps.imread` (JPEGs exactly as Darknet's bundled stb_image, other
formats with Pillow, which gives the same bytes for them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Union

import numpy as np
from numpy.typing import NDArray

from darkconv.errors import ImageError, ResourceError
from darkconv.parse.budget import MAX_IMAGE_PIXELS, Cost, check_fits

__all__ = [
    "MAX_IMAGE_PIXELS",
    "FloatImage",
    "ImageLike",
    "Letterbox",
    "as_image",
    "check_image_size",
    "embed_image",
    "image_from_pil",
    "letterbox_geometry",
    "letterbox_image",
    "load_image",
    "resize_image",
    "to_float",
    "to_uint8_hwc",
]

FloatImage = NDArray[np.float32]
ImageLike = Union[str, "os.PathLike[str]", np.ndarray]

_F32 = np.float32


def image_from_pil(pil: object) -> FloatImage:
    """Convert a Pillow image to Darknet's 3-channel CHW float32 layout.

    Matches ``load_image_color`` -> ``load_image_stb(path, 3)``: gray is replicated, alpha is
    dropped (not composited), EXIF orientation is ignored, and 16-bit samples keep their high
    byte (stb_image's 16 -> 8 bit conversion).  Each byte becomes ``(float)byte/255.``.
    """
    from darkconv.apps.imread import pil_to_rgb

    return to_float(pil_to_rgb(pil))


def to_float(chw: NDArray[np.uint8]) -> FloatImage:
    """``load_image_stb``: ``data[..] = (float)byte/255.``, the division done in double."""
    return (chw.astype(np.float64) / 255.0).astype(np.float32)


def check_image_size(path: str, w: int, h: int, max_pixels: int = MAX_IMAGE_PIXELS) -> None:
    """Refuse, before decoding, an image larger than ``max_pixels`` or than the memory its
    decode needs: about 13 bytes a pixel (the bytes, float64 while dividing by 255, float32)."""
    if w * h > max_pixels:
        raise ImageError(
            f"{path}: {w}x{h} is {w * h:,} pixels, over the limit of {max_pixels:,} "
            "(a decompression bomb?); raise it with --max-image-pixels / max_pixels="
        )
    try:
        check_fits(Cost(w * h * 13, f"{path}: decoding {w}x{h} pixels"), quiet_below=0)
    except ResourceError as exc:
        raise ImageError(exc.message) from None


def load_image(
    path: str | os.PathLike[str], max_pixels: int = MAX_IMAGE_PIXELS, decoder: str = "stb"
) -> FloatImage:
    """Load an image file like Darknet's ``load_image_color(path, 0, 0)``: ``(3, h, w)`` float32.

    The size in the file's header is checked before any pixel is decoded (:func:`check_image_size`).
    ``decoder="stb"`` decodes JPEGs exactly as Darknet's stb_image, ``"pillow"`` uses Pillow for
    every format (see :func:`darkconv.apps.imread.load_image`)."""
    from darkconv.apps.imread import load_image as load_bytes

    return to_float(load_bytes(path, max_pixels=max_pixels, decoder=decoder))


def as_image(image: ImageLike, max_pixels: int = MAX_IMAGE_PIXELS) -> FloatImage:
    """Accept a path or an array; arrays are CHW float in [0, 1] (or HWC uint8, as Pillow gives).

    * a path is decoded with :func:`load_image`;
    * a ``uint8`` array of shape ``(h, w)``, ``(h, w, 1|3|4)`` is taken as Pillow/NumPy HWC pixels;
    * a float array of shape ``(3, h, w)`` or ``(1, 3, h, w)`` is taken as Darknet's image as is.
    """
    if isinstance(image, (str, os.PathLike)):
        return load_image(image, max_pixels)
    arr = np.asarray(image)
    if arr.dtype == np.uint8:
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
            raise ImageError(f"uint8 image must be (h, w), (h, w, 1|3|4); got {arr.shape}")
        if arr.shape[2] == 1:
            arr = np.repeat(arr, 3, axis=2)
        chw = np.ascontiguousarray(arr[:, :, :3].transpose(2, 0, 1))
        return (chw.astype(np.float64) / 255.0).astype(np.float32)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 3 or arr.shape[0] != 3 or not np.issubdtype(arr.dtype, np.floating):
        raise ImageError(f"float image must be CHW with 3 channels; got {arr.dtype} {arr.shape}")
    if arr.shape[1] < 1 or arr.shape[2] < 1:
        raise ImageError(f"empty image: {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _lerp_weights(n_in: int, n_out: int) -> tuple[NDArray[np.intp], FloatImage]:
    """Source index and fraction per output position, in float32 as ``resize_image`` computes."""
    # scale = (float)(in-1)/(out-1); s = c*scale; i = (int)s; d = s - i  (all float32)
    scale = _F32(n_in - 1) / _F32(n_out - 1) if n_out > 1 else _F32(0)
    s = np.arange(n_out, dtype=np.float32) * scale
    idx = s.astype(np.intp)  # (int) truncation; s >= 0
    frac = (s - idx.astype(np.float32)).astype(np.float32)
    return idx, frac


def resize_image(im: FloatImage, w: int, h: int) -> FloatImage:
    """Darknet's ``resize_image``: two-pass bilinear in float32, with its last-row quirk.

    Horizontal pass (``im.h x w``): the last column copies the last input column, the others
    interpolate ``(1-dx)*p[ix] + dx*p[ix+1]``.  Vertical pass: ``(1-dy)*part[iy]``, then
    ``+ dy*part[iy+1]`` on every row **except the last**: when ``(h-1)*h_scale`` rounds just below
    ``im.h-1`` the last row keeps only ``(1-dy)*part[im.h-2]`` and comes out nearly black.
    """
    if w < 1 or h < 1:
        raise ImageError(f"cannot resize to {w}x{h}")
    im = np.asarray(im, dtype=np.float32)
    c, ih, iw = im.shape
    part = np.empty((c, ih, w), dtype=np.float32)
    if iw == 1:
        part[:] = im[:, :, :1]
    else:
        ix, dx = _lerp_weights(iw, w)
        ix1 = np.minimum(ix + 1, iw - 1)  # only the (skipped) last column could reach iw
        one_dx = (_F32(1) - dx).astype(np.float32)
        part[:] = one_dx * im[:, :, ix] + dx * im[:, :, ix1]
        part[:, :, w - 1] = im[:, :, iw - 1]  # c == w-1 copies the last column
    iy, dy = _lerp_weights(ih, h)
    one_dy = (_F32(1) - dy).astype(np.float32)
    out = one_dy[None, :, None] * part[:, iy, :]
    if ih > 1 and h > 1:
        rows = slice(0, h - 1)  # the last row r == h-1 gets no second term
        iy1 = np.minimum(iy[rows] + 1, ih - 1)  # Darknet asserts here; never reached in practice
        out[:, rows, :] += dy[rows][None, :, None] * part[:, iy1, :]
    return out.astype(np.float32, copy=False)


@dataclass(frozen=True)
class Letterbox:
    """Where ``letterbox_image`` puts the resized image inside the network input."""

    new_w: int
    new_h: int
    dx: int  # integer embed offset (floored), used for the pixels
    dy: int
    net_w: int
    net_h: int

    @property
    def box_offset_x(self) -> float:
        """The exact half offset ``(netw-new_w)/2.`` that ``correct_*_boxes`` uses."""
        return (self.net_w - self.new_w) / 2.0

    @property
    def box_offset_y(self) -> float:
        return (self.net_h - self.new_h) / 2.0


def letterbox_geometry(im_w: int, im_h: int, net_w: int, net_h: int) -> Letterbox:
    """``letterbox_image`` / ``correct_yolo_boxes`` sizing (float32 compare, C integer division)."""
    if im_w < 1 or im_h < 1:
        raise ImageError(f"empty image: {im_w}x{im_h}")
    if _F32(net_w) / _F32(im_w) < _F32(net_h) / _F32(im_h):
        new_w, new_h = net_w, (im_h * net_w) // im_w
    else:
        new_w, new_h = (im_w * net_h) // im_h, net_h
    if new_w < 1 or new_h < 1:
        raise ImageError(
            f"a {im_w}x{im_h} image letterboxed into {net_w}x{net_h} becomes {new_w}x{new_h} pixels"
        )
    return Letterbox(new_w, new_h, (net_w - new_w) // 2, (net_h - new_h) // 2, net_w, net_h)


def embed_image(source: FloatImage, dest: FloatImage, dx: int, dy: int) -> None:
    """Darknet's ``embed_image``: copy ``source`` into ``dest`` at ``(dx, dy)`` (in place, clipped)."""
    _, sh, sw = source.shape
    _, dh, dw = dest.shape
    x0, y0 = max(dx, 0), max(dy, 0)
    x1, y1 = min(dx + sw, dw), min(dy + sh, dh)
    if x1 > x0 and y1 > y0:
        dest[:, y0:y1, x0:x1] = source[:, y0 - dy : y1 - dy, x0 - dx : x1 - dx]


def letterbox_image(im: FloatImage, w: int, h: int) -> FloatImage:
    """Darknet's ``letterbox_image``: keep the aspect ratio, resize, embed in a 0.5-filled canvas.

    The embed offsets are integer divisions, so an odd leftover puts the extra row/column of
    padding at the bottom/right.
    """
    im = np.asarray(im, dtype=np.float32)
    geo = letterbox_geometry(im.shape[2], im.shape[1], w, h)
    resized = resize_image(im, geo.new_w, geo.new_h)
    boxed = np.full((im.shape[0], h, w), 0.5, dtype=np.float32)  # fill_image(boxed, .5)
    embed_image(resized, boxed, geo.dx, geo.dy)
    return boxed


def to_uint8_hwc(im: FloatImage) -> NDArray[np.uint8]:
    """Darknet's ``save_image`` pixel conversion: ``(unsigned char)(255*v)`` after clamping to [0,1]."""
    a = np.clip(np.asarray(im, dtype=np.float32), 0.0, 1.0)
    return np.ascontiguousarray((a * _F32(255)).astype(np.uint8).transpose(1, 2, 0))
