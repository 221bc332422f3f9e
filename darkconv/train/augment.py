"""Darknet's training augmentation (pjreddie ``src/image.c``, ``src/data.c``) on CHW float32
images, vectorised with numpy.

Randomness: Darknet draws from glibc ``rand()`` seeded with ``time(0)``; darkconv draws the
same quantities, in the same order per image, from a ``numpy.random.Generator`` (seeded from
``--seed``, the epoch and the worker), so runs are reproducible but not Darknet's exact draws.

Classifier (``load_data_augment`` -> ``load_image_augment_paths``): ``random_augment_image``
(scale to a random shorter side in ``[min, max]`` = ``min_ratio*w .. max_ratio*w``, random
aspect ``rand_scale(aspect)``, rotation ``U(-angle, angle)`` degrees, random shift), or
``center_crop_image`` with ``center=1``; a random horizontal flip; ``random_distort_image``.

Detector (``load_data_detection``): the image is placed on a ``.5`` grey canvas with its aspect
ratio jittered by ``jitter`` (``new_ar = (w + U(-dw, dw)) / (h + U(-dh, dh))``), the longer
side filling the canvas, at a random offset; ``random_distort_image``; a random flip; the boxes
follow (``correct_boxes``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from darkconv.apps.image import FloatImage, resize_image

__all__ = [
    "Augment",
    "center_crop_image",
    "correct_boxes",
    "detection_sample",
    "distort_image",
    "flip_image",
    "place_image",
    "rand_scale",
    "random_augment_image",
    "random_distort_image",
    "rotate_crop_image",
]

F32 = np.float32


@dataclass(frozen=True)
class Augment:
    """The ``[net]`` (classifier) or ``[net]`` + last-layer (detector) augmentation options."""

    angle: float = 0.0
    aspect: float = 1.0
    saturation: float = 1.0
    exposure: float = 1.0
    hue: float = 0.0
    min_ratio: float = 1.0  # min_crop / w
    max_ratio: float = 2.0  # max_crop / w
    center: bool = False
    flip: bool = True  # AlexeyAB's [net] flip= (pjreddie always flips)
    jitter: float = 0.2

    @classmethod
    def from_net(cls, net: dict, jitter: float = 0.2) -> Augment:
        """Options as ``parse_net_options`` reads them (defaults included)."""
        w = int(net.get("width", 0) or 0)
        max_crop = float(net.get("max_crop", 2 * w) or 2 * w)
        min_crop = float(net.get("min_crop", w) or w)
        return cls(
            angle=float(net.get("angle", 0)),
            aspect=float(net.get("aspect", 1)),
            saturation=float(net.get("saturation", 1)),
            exposure=float(net.get("exposure", 1)),
            hue=float(net.get("hue", 0)),
            min_ratio=float(net.get("min_ratio", min_crop / w if w else 1.0)),
            max_ratio=float(net.get("max_ratio", max_crop / w if w else 2.0)),
            center=bool(int(net.get("center", 0))),
            flip=bool(int(net.get("flip", 1))),
            jitter=float(jitter),
        )


def rand_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    """``rand_uniform``: the bounds may come in either order."""
    if hi < lo:
        lo, hi = hi, lo
    return float(F32(rng.random()) * F32(hi - lo) + F32(lo))


def rand_scale(rng: np.random.Generator, s: float) -> float:
    """``rand_scale``: ``U(1, s)`` or its inverse, each with probability 1/2."""
    scale = rand_uniform(rng, 1.0, s)
    return scale if rng.integers(2) else 1.0 / scale


def _bilinear(im: FloatImage, rx: NDArray[np.float32], ry: NDArray[np.float32]) -> FloatImage:
    """``bilinear_interpolate`` with ``get_pixel_extend`` (0 outside the image), every channel."""
    c, h, w = im.shape
    ix = np.floor(rx).astype(np.int64)
    iy = np.floor(ry).astype(np.int64)
    dx = (rx - ix).astype(F32)
    dy = (ry - iy).astype(F32)
    padded = np.zeros((c, h + 2, w + 2), dtype=F32)
    padded[:, 1:-1, 1:-1] = im
    # clip to the zero border: anything outside reads 0 like get_pixel_extend
    x0 = np.clip(ix + 1, 0, w + 1)
    x1 = np.clip(ix + 2, 0, w + 1)
    y0 = np.clip(iy + 1, 0, h + 1)
    y1 = np.clip(iy + 2, 0, h + 1)
    return (
        (1 - dy) * (1 - dx) * padded[:, y0, x0]
        + dy * (1 - dx) * padded[:, y1, x0]
        + (1 - dy) * dx * padded[:, y0, x1]
        + dy * dx * padded[:, y1, x1]
    ).astype(F32)


def rotate_crop_image(
    im: FloatImage, rad: float, s: float, w: int, h: int, dx: float, dy: float, aspect: float
) -> FloatImage:
    """``rotate_crop_image``: a ``w x h`` window, rotated by ``rad`` and scaled by ``s``."""
    _, ih, iw = im.shape
    cx, cy = iw / 2.0, ih / 2.0
    x = np.arange(w, dtype=np.float64)[None, :]
    y = np.arange(h, dtype=np.float64)[:, None]
    u = (x - w / 2.0) / s * aspect + dx / s * aspect
    v = (y - h / 2.0) / s + dy / s
    rx = math.cos(rad) * u - math.sin(rad) * v + cx
    ry = math.sin(rad) * u + math.cos(rad) * v + cy
    return _bilinear(im, rx.astype(F32), ry.astype(F32))


def random_augment_image(
    rng: np.random.Generator, im: FloatImage, a: Augment, low: int, high: int, w: int, h: int
) -> FloatImage:
    """``random_augment_args`` + ``rotate_crop_image``."""
    aspect = rand_scale(rng, a.aspect)
    r = int(rng.integers(low, high + 1)) if high > low else low  # rand_int(low, high)
    _, ih, iw = im.shape
    shorter = ih if ih < iw * aspect else int(iw * aspect)
    scale = r / shorter
    rad = rand_uniform(rng, -a.angle, a.angle) * 2 * math.pi / 360.0
    dx = (iw * scale / aspect - w) / 2.0
    dy = (ih * scale - w) / 2.0  # Darknet subtracts w here too
    dx = rand_uniform(rng, -dx, dx)
    dy = rand_uniform(rng, -dy, dy)
    return rotate_crop_image(im, rad, scale, w, h, dx, dy, aspect)


def center_crop_image(im: FloatImage, w: int, h: int) -> FloatImage:
    """``center_crop_image``: the central square, resized."""
    _, ih, iw = im.shape
    m = min(iw, ih)
    x0, y0 = (iw - m) // 2, (ih - m) // 2
    return resize_image(np.ascontiguousarray(im[:, y0 : y0 + m, x0 : x0 + m]), w, h)


def flip_image(im: FloatImage) -> FloatImage:
    return np.ascontiguousarray(im[:, :, ::-1])


def _rgb_to_hsv(im: FloatImage) -> FloatImage:
    r, g, b = im[0], im[1], im[2]
    mx = np.maximum(np.maximum(r, g), b)
    mn = np.minimum(np.minimum(r, g), b)
    delta = mx - mn
    safe = np.where(delta > 0, delta, F32(1))
    h = np.where(r == mx, (g - b) / safe, np.where(g == mx, 2 + (b - r) / safe, 4 + (r - g) / safe))
    h = np.where(h < 0, h + 6, h) / F32(6)
    s = np.where(mx > 0, delta / np.where(mx > 0, mx, F32(1)), F32(0))
    h = np.where((mx > 0) & (delta > 0), h, F32(0))
    return np.stack([h, s, mx]).astype(F32)


# hsv_to_rgb: which of (v, q, p, t) each of r, g, b takes in sector floor(6h) = 0..5
_SECTOR = np.array(
    [[0, 3, 2], [1, 0, 2], [2, 0, 3], [2, 1, 0], [3, 2, 0], [0, 2, 1]], dtype=np.int64
)


def _hsv_to_rgb(im: FloatImage) -> FloatImage:
    h, s, v = F32(6) * im[0], im[1], im[2]
    index = np.floor(h)
    f = h - index
    cand = np.stack([v, v * (1 - s * f), v * (1 - s), v * (1 - s * (1 - f))])  # v, q, p, t
    idx = np.clip(index, 0, 5).astype(np.int64)  # index >= 5 is the `else` branch
    pick = _SECTOR[idx].transpose(2, 0, 1)  # (3, H, W)
    rgb = np.take_along_axis(cand, pick, axis=0)
    return np.where(s == 0, v, rgb).astype(F32)


def distort_image(im: FloatImage, hue: float, sat: float, val: float) -> FloatImage:
    """``distort_image``: HSV, scale S and V, shift H (wrapped once), back to RGB, clamp."""
    hsv = _rgb_to_hsv(im)
    hsv[1] *= F32(sat)
    hsv[2] *= F32(val)
    hh = hsv[0] + F32(hue)
    hh = np.where(hh > 1, hh - 1, hh)
    hsv[0] = np.where(hh < 0, hh + 1, hh)
    return np.clip(_hsv_to_rgb(hsv), 0, 1).astype(F32)


def random_distort_image(rng: np.random.Generator, im: FloatImage, a: Augment) -> FloatImage:
    """``random_distort_image``: hue ``U(-hue, hue)``, ``rand_scale`` saturation and exposure."""
    dhue = rand_uniform(rng, -a.hue, a.hue)
    dsat = rand_scale(rng, a.saturation)
    dexp = rand_scale(rng, a.exposure)
    if dhue == 0 and dsat == 1 and dexp == 1:
        return np.clip(im, 0, 1)  # the HSV round trip is the identity up to rounding
    return distort_image(im, dhue, dsat, dexp)


def classifier_sample(
    rng: np.random.Generator, im: FloatImage, a: Augment, w: int, h: int
) -> FloatImage:
    """One image of ``load_image_augment_paths``."""
    if a.center:
        crop = center_crop_image(im, w, h)
    else:
        low, high = int(a.min_ratio * w), int(a.max_ratio * w)
        crop = random_augment_image(rng, im, a, low, high, w, h)
    if a.flip and rng.integers(2):
        crop = flip_image(crop)
    return random_distort_image(rng, crop, a)


def place_image(im: FloatImage, w: int, h: int, dx: int, dy: int, canvas: FloatImage) -> None:
    """``place_image``: ``im`` resized bilinearly to ``w x h`` and written at ``(dx, dy)``.

    The sample grid is separable (``rx`` depends on x only, ``ry`` on y only), so the bilinear
    blend runs as two 1-D passes: the same weights as ``bilinear_interpolate``, summed in
    another order (float32 rounding apart)."""
    c, ih, iw = im.shape
    _, ch, cw = canvas.shape
    rx = (np.arange(w, dtype=F32) / F32(w)) * F32(iw)
    ry = (np.arange(h, dtype=F32) / F32(h)) * F32(ih)
    ix = np.floor(rx).astype(np.int64)
    iy = np.floor(ry).astype(np.int64)
    fx = (rx - ix).astype(F32)
    fy = (ry - iy).astype(F32)
    padded = np.zeros((c, ih + 1, iw + 1), dtype=F32)  # get_pixel_extend: 0 past the edge
    padded[:, :ih, :iw] = im
    cols = padded[:, :, ix] * (1 - fx) + padded[:, :, ix + 1] * fx
    vals = cols[:, iy, :] * (1 - fy)[:, None] + cols[:, iy + 1, :] * fy[:, None]
    xs0, ys0 = max(0, -dx), max(0, -dy)  # set_pixel ignores what falls outside the canvas
    xs1, ys1 = min(w, cw - dx), min(h, ch - dy)
    if xs1 > xs0 and ys1 > ys0:
        canvas[:, dy + ys0 : dy + ys1, dx + xs0 : dx + xs1] = vals[:, ys0:ys1, xs0:xs1]


def correct_boxes(
    boxes: NDArray[np.float32], dx: float, dy: float, sx: float, sy: float, flip: bool
) -> NDArray[np.float32]:
    """``correct_boxes``: rows ``class, x, y, w, h`` moved into the augmented frame, clipped.

    Darknet turns a box at exactly ``x == 0 and y == 0`` into a 999999 sentinel that then
    reaches the truth row; darkconv drops such a box instead.
    """
    b = np.asarray(boxes, dtype=F32).reshape(-1, 5).copy()
    keep = ~((b[:, 1] == 0) & (b[:, 2] == 0))
    b = b[keep]
    left = (b[:, 1] - b[:, 3] / 2) * F32(sx) - F32(dx)
    right = (b[:, 1] + b[:, 3] / 2) * F32(sx) - F32(dx)
    top = (b[:, 2] - b[:, 4] / 2) * F32(sy) - F32(dy)
    bottom = (b[:, 2] + b[:, 4] / 2) * F32(sy) - F32(dy)
    if flip:
        left, right = 1 - right, 1 - left
    left, right, top, bottom = (np.clip(v, 0, 1) for v in (left, right, top, bottom))
    b[:, 1] = (left + right) / 2
    b[:, 2] = (top + bottom) / 2
    b[:, 3] = np.clip(right - left, 0, 1)
    b[:, 4] = np.clip(bottom - top, 0, 1)
    return b


def detection_truth(boxes: NDArray[np.float32], num_boxes: int) -> NDArray[np.float32]:
    """``fill_truth_detection``'s row: up to ``num_boxes`` of ``x, y, w, h, class``; boxes under
    .001 wide or high are dropped."""
    row = np.zeros(num_boxes * 5, dtype=F32)
    b = boxes[: min(len(boxes), num_boxes)]  # count is capped before the small-box test
    b = b[(b[:, 3] >= F32(0.001)) & (b[:, 4] >= F32(0.001))]
    k = len(b)
    if k:
        row[: k * 5] = np.concatenate([b[:, 1:5], b[:, :1]], axis=1).reshape(-1)
    return row


def detection_sample(
    rng: np.random.Generator,
    im: FloatImage,
    boxes: NDArray[np.float32],
    a: Augment,
    w: int,
    h: int,
    num_boxes: int,
) -> tuple[FloatImage, NDArray[np.float32]]:
    """One image of ``load_data_detection``: (input ``(3, h, w)``, truth row)."""
    _, oh, ow = im.shape
    canvas = np.full((im.shape[0], h, w), 0.5, dtype=F32)
    dw, dh = a.jitter * ow, a.jitter * oh
    new_ar = (ow + rand_uniform(rng, -dw, dw)) / (oh + rand_uniform(rng, -dh, dh))
    if new_ar < 1:
        nh = float(h)
        nw = nh * new_ar
    else:
        nw = float(w)
        nh = nw / new_ar
    dx = rand_uniform(rng, 0, w - nw)
    dy = rand_uniform(rng, 0, h - nh)
    place_image(im, int(nw), int(nh), int(dx), int(dy), canvas)
    canvas = random_distort_image(rng, canvas, a)
    flip = bool(a.flip and rng.integers(2))
    if flip:
        canvas = flip_image(canvas)
    b = boxes[rng.permutation(len(boxes))] if len(boxes) else boxes  # randomize_boxes
    b = correct_boxes(b, -dx / w, -dy / h, nw / w, nh / h, flip)
    return canvas, detection_truth(b, num_boxes)
