"""The network input of ``detector test`` and ``classifier predict``, per dialect.

* ``letterbox``: ``letterbox_image(im, net.w, net.h)`` (pjreddie always; AlexeyAB with
  ``[net] letter_box=1`` or ``-letter_box``).
* ``resize``: ``resize_image(im, net.w, net.h)``, the aspect ratio not kept (AlexeyAB's default).
* ``resize_min_crop``: AlexeyAB's ``predict_classifier``: ``resize_min(im, net.w)`` (the shorter
  side becomes ``net.w``, C integer division for the other), then ``crop_image`` of ``net.w x net.h``
  at the centre offsets ``(resized - net)/2`` (C division, toward zero), edge pixels repeated
  where the crop leaves the image (``constrain_int``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from darkconv.apps.dialects import AppDialect
from darkconv.apps.image import FloatImage, letterbox_image, resize_image

__all__ = ["INPUTS", "classifier_input", "crop_image", "detector_input", "resize_min"]


def _c_div(a: int, b: int) -> int:
    """C integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def resize_min(im: FloatImage, size: int) -> FloatImage:
    """``resize_min``: scale so the shorter side is ``size`` (unchanged image if it already is)."""
    _, h, w = im.shape
    if w < h:
        new_w, new_h = size, (h * size) // w
    else:
        new_w, new_h = (w * size) // h, size
    if (new_w, new_h) == (w, h):
        return im
    return resize_image(im, new_w, new_h)


def crop_image(im: FloatImage, dx: int, dy: int, w: int, h: int) -> FloatImage:
    """``crop_image``: rows/columns outside the image clamp to its edge (``constrain_int``)."""
    _, ih, iw = im.shape
    rows = np.clip(np.arange(h) + dy, 0, ih - 1)
    cols = np.clip(np.arange(w) + dx, 0, iw - 1)
    return np.ascontiguousarray(im[:, rows][:, :, cols], dtype=np.float32)


def _resize_min_crop(im: FloatImage, w: int, h: int) -> FloatImage:
    resized = resize_min(im, w)
    _, rh, rw = resized.shape
    return crop_image(resized, _c_div(rw - w, 2), _c_div(rh - h, 2), w, h)


INPUTS: dict[str, Callable[[FloatImage, int, int], FloatImage]] = {
    "letterbox": letterbox_image,
    "resize": resize_image,
    "resize_min_crop": _resize_min_crop,
}


def detector_input(
    im: FloatImage, w: int, h: int, dialect: AppDialect, letter_box: bool = False
) -> FloatImage:
    """``detector test``'s input: the dialect's, or the letterbox when ``letter_box`` is set."""
    kind = "letterbox" if letter_box else dialect.detector_input
    return INPUTS[kind](im, w, h)


def classifier_input(im: FloatImage, w: int, h: int, dialect: AppDialect) -> FloatImage:
    """``classifier predict``'s input in the dialect."""
    return INPUTS[dialect.classifier_input](im, w, h)
