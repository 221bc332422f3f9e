"""What ``darknet detector test`` prints and draws: Darknet's ``draw_detections``.

For each detection in array order (the order ``do_nms_sort`` left), for each class whose float32
probability is ``> thresh``, Darknet prints ``"%s: %.0f%%"`` of the float32 product ``prob*100``
(glibc rounds the exact binary value half-to-even, as Python's ``%`` formatting does).  A detection
with at least one such class is drawn, labelled with the names joined by ``", "`` and coloured from
its first class.  Corners are computed in double and truncated toward zero, and only
``left<0``, ``right>w-1``, ``top<0``, ``bot>h-1`` are clamped, so ``right`` may be negative and
``bot < top`` is possible.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from darkconv.apps.decode import Boxes
from darkconv.apps.image import FloatImage
from darkconv.errors import ImageError
from darkconv.weights.atomic import atomic_writer

__all__ = [
    "Detection",
    "DetectResult",
    "c_int",
    "class_name",
    "draw_detections",
    "get_color",
    "render_boxes",
    "save_image",
]

_F32 = np.float32
_INT_MIN = -(2**31)


def class_name(names: Sequence[str] | None, j: int) -> str:
    """The label of class ``j``; the class number when no (or too short a) names list is given."""
    if names is not None and 0 <= j < len(names):
        return names[j]
    return str(j)


def c_int(v: float) -> int:
    """C's ``(int)`` of a double on x86: truncation; NaN and out-of-range give INT_MIN."""
    if not math.isfinite(v) or not (-(2.0**31) < v < 2.0**31):
        return _INT_MIN
    return int(v)


def percent(prob: float) -> float:
    """``prob*100`` as Darknet computes it: a float32 product, then promoted for printf."""
    return float(_F32(prob) * _F32(100))


@dataclass(frozen=True)
class Detection:
    """One detection that Darknet prints and draws (a box with at least one class > thresh).

    ``bbox`` is Darknet's box ``(x, y, w, h)``: centre and size as fractions of the image
    (for a yolov1 ``[detection]`` head: pixels, as Darknet's ``detector test`` gets them).
    ``prob`` has every class (0 where ``<= thresh`` or suppressed by NMS); ``classes`` lists the
    classes with ``prob > thresh`` in class order.  ``left, right, top, bot`` are Darknet's integer
    corners (truncated, partly clamped); ``lines`` are the lines Darknet prints for it.
    """

    bbox: tuple[float, float, float, float]
    objectness: float
    prob: tuple[float, ...]
    classes: tuple[int, ...]
    names: tuple[str, ...]
    label: str
    left: int
    right: int
    top: int
    bot: int
    line_width: int
    lines: tuple[str, ...]
    position: int  # index in the array after do_nms_sort
    index: int  # index in get_network_boxes' array
    layer: int
    row: int
    col: int
    anchor: int

    def box_pixels(self, width: int, height: int) -> tuple[float, float, float, float]:
        """``(x, y, w, h)`` scaled to pixels of a ``width x height`` image (centre and size)."""
        x, y, w, h = self.bbox
        return (x * width, y * height, w * width, h * height)


@dataclass(frozen=True)
class DetectResult:
    """Everything ``darknet detector test`` computes for one image."""

    width: int
    height: int
    thresh: float
    hier_thresh: float
    nms: float
    detections: tuple[Detection, ...]  # shown detections, in Darknet's printing order
    lines: tuple[str, ...]  # the printed lines, in Darknet's order
    nboxes: int  # boxes returned by get_network_boxes
    dialect: str = "pjreddie"
    # indices into ``detections`` in the order Darknet draws them (empty: printing order)
    draw_order: tuple[int, ...] = ()

    def drawn(self) -> tuple[Detection, ...]:
        """The detections in Darknet's drawing order (later boxes paint over earlier ones)."""
        if not self.draw_order:
            return self.detections
        return tuple(self.detections[i] for i in self.draw_order)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict: boxes in pixels of the original image, with class probabilities."""
        dets = []
        for d in self.detections:
            x, y, w, h = d.box_pixels(self.width, self.height)
            dets.append(
                {
                    "label": d.label,
                    "classes": [
                        {"id": j, "name": n, "prob": d.prob[j]}
                        for j, n in zip(d.classes, d.names, strict=True)
                    ],
                    "objectness": d.objectness,
                    "bbox": {"x": x, "y": y, "w": w, "h": h},
                    "corners": {"left": d.left, "top": d.top, "right": d.right, "bot": d.bot},
                    "prob": list(d.prob),
                }
            )
        return {
            "dialect": self.dialect,
            "image": {"width": self.width, "height": self.height},
            "thresh": self.thresh,
            "hier_thresh": self.hier_thresh,
            "nms": self.nms,
            "nboxes": self.nboxes,
            "lines": list(self.lines),
            "detections": dets,
        }


def draw_detections(
    boxes: Boxes,
    im_w: int,
    im_h: int,
    thresh: float,
    names: Sequence[str] | None,
    classes: int,
) -> list[Detection]:
    """Darknet's ``draw_detections`` without the pixels: which boxes, which lines, which corners."""
    t = _F32(thresh)
    out: list[Detection] = []
    prob = boxes.prob[:, :classes]
    hits = prob > t
    for i in np.nonzero(hits.any(axis=1))[0].tolist():
        cls = tuple(int(j) for j in np.nonzero(hits[i])[0])
        nm = tuple(class_name(names, j) for j in cls)
        lines = tuple(
            f"{n}: {percent(float(prob[i, j])):.0f}%" for j, n in zip(cls, nm, strict=True)
        )
        x, y, w, h = (float(v) for v in boxes.bbox[i])
        left = c_int((x - w / 2.0) * im_w)
        right = c_int((x + w / 2.0) * im_w)
        top = c_int((y - h / 2.0) * im_h)
        bot = c_int((y + h / 2.0) * im_h)
        left = max(left, 0)
        right = min(right, im_w - 1)
        top = max(top, 0)
        bot = min(bot, im_h - 1)
        o = boxes.origin[i]
        out.append(
            Detection(
                bbox=(x, y, w, h),
                objectness=float(boxes.objectness[i]),
                prob=tuple(float(v) for v in boxes.prob[i]),
                classes=cls,
                names=nm,
                label=", ".join(nm),
                left=left,
                right=right,
                top=top,
                bot=bot,
                line_width=int(im_h * 0.006),
                lines=lines,
                position=i,
                index=int(o[0]),
                layer=int(o[1]),
                row=int(o[2]),
                col=int(o[3]),
                anchor=int(o[4]),
            )
        )
    return out


_COLORS = (
    (1.0, 0.0, 1.0),
    (0.0, 0.0, 1.0),
    (0.0, 1.0, 1.0),
    (0.0, 1.0, 0.0),
    (1.0, 1.0, 0.0),
    (1.0, 0.0, 0.0),
)


def get_color(c: int, x: int, maximum: int) -> float:
    """Darknet's ``get_color``: channel ``c`` (2=red, 1=green, 0=blue) of colour ``x`` of ``maximum``."""
    ratio = float(_F32(_F32(x) / _F32(maximum)) * _F32(5))
    i, j = math.floor(ratio), math.ceil(ratio)
    ratio -= i
    return (1 - ratio) * _COLORS[i][c] + ratio * _COLORS[j][c]


def _rgb(first_class: int, classes: int) -> tuple[int, int, int]:
    offset = (first_class * 123457) % max(classes, 1)
    r, g, b = (get_color(k, offset, max(classes, 1)) for k in (2, 1, 0))
    return (round(r * 255), round(g * 255), round(b * 255))


def render_boxes(image: FloatImage, detections: Sequence[Detection], classes: int) -> Any:
    """Draw the boxes like ``draw_box_width`` (nested 1-px rectangles, clamped) plus a label.

    Returns a Pillow RGB image.  Darknet's width is ``(int)(h*.006)``, i.e. 0 below 167 pixels
    of height; darkconv draws at least one pixel so that small images show their boxes.
    The label is drawn with Pillow's default font (Darknet uses its own glyph images).
    """
    from PIL import Image, ImageDraw, ImageFont

    # the decoded bytes back exactly (Darknet's save_image would truncate 255*v instead)
    pixels = np.ascontiguousarray(
        np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)
    )
    pil = Image.fromarray(pixels, "RGB")
    h, w = pixels.shape[:2]
    draw = ImageDraw.Draw(pil)
    try:
        font: Any = ImageFont.load_default(size=max(10, int(h * 0.03)))
    except TypeError:  # Pillow < 10.1: no size argument
        font = ImageFont.load_default()
    for d in detections:
        color = _rgb(d.classes[0], classes)
        for k in range(max(d.line_width, 1)):
            # draw_box clamps each corner into the image and draws the four edges
            x1 = min(max(d.left + k, 0), w - 1)
            x2 = min(max(d.right - k, 0), w - 1)
            y1 = min(max(d.top + k, 0), h - 1)
            y2 = min(max(d.bot - k, 0), h - 1)
            if x1 <= x2:
                draw.line([(x1, y1), (x2, y1)], fill=color)
                draw.line([(x1, y2), (x2, y2)], fill=color)
            if y1 <= y2:
                draw.line([(x1, y1), (x1, y2)], fill=color)
                draw.line([(x2, y1), (x2, y2)], fill=color)
        tl, tt, tr, tb = draw.textbbox((0, 0), d.label, font=font)
        th, tw = tb - tt + 4, tr - tl + 4
        row: float = d.top + d.line_width
        row = row - th if row - th >= 0 else row  # draw_label: above the box when it fits
        col = min(max(d.left, 0), w - 1)
        draw.rectangle([col, row, col + tw, row + th], fill=color)
        draw.text((col + 2 - tl, row + 2 - tt), d.label, fill=(0, 0, 0), font=font)
    return pil


def save_image(pil: Any, path: str | os.PathLike[str]) -> None:
    """Write a Pillow image atomically: a temporary file in the same folder, then a rename."""
    target = os.fspath(path)
    ext = os.path.splitext(target)[1].lower() or ".png"
    from PIL import Image

    fmt = Image.registered_extensions().get(ext)
    if fmt is None:
        raise ImageError(f"{target}: unknown image extension {ext!r}")
    with atomic_writer(target, ImageError) as fh:
        pil.save(fh, format=fmt)
