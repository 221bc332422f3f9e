"""What AlexeyAB's ``detector test`` prints and draws: ``draw_detections_v3`` (``src/image.c``).

* ``get_actual_detections``: a detection is shown when some class has ``prob > thresh``; its best
  class is the first with the largest such prob (names starting with ``dont_show`` are skipped).
* The shown detections are sorted (stable: glibc's merge sort) by their left edge ``x - w/2``
  (float), then each prints ``"%s: %.0f%%"`` of ``prob*100`` for the best class, then for every
  other class ``> thresh`` in index order.  With ``-ext_output`` each line ends with
  ``"\\t(left_x: %4.0f   top_y: %4.0f   width: %4.0f   height: %4.0f)"`` of ``round()`` of the
  float products ``(x-w/2)*im.w``, ``(y-h/2)*im.h``, ``w*im.w``, ``h*im.h`` (``-0`` stays ``-0``).
* Boxes are drawn after a second stable sort, ascending by the best class's prob; corners are
  ``(int)((x - w/2.)*im.w)`` in double, clamped into the image; the line width is
  ``max(1, (int)(im.h*.002))``; the label is ``"name: %.2f"`` plus ``", other"`` per other class.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from darkconv.apps.decode import Boxes
from darkconv.apps.draw import Detection, c_int, class_name, percent

__all__ = ["draw_detections_v3", "ext_output_box", "v3_line_width"]

_F32 = np.float32


def v3_line_width(im_h: int) -> int:
    """``int width = im.h * .002; if (width < 1) width = 1;``"""
    return max(1, int(im_h * 0.002))


def _c_round(v: float) -> float:
    """C's ``round``: halves away from zero; the sign of a zero result is kept (``-0``)."""
    if not math.isfinite(v):
        return v
    r = float(math.trunc(v))
    if abs(v - r) >= 0.5:
        r += math.copysign(1.0, v)
    return math.copysign(r, v)


def ext_output_box(bbox: Sequence[float], im_w: int, im_h: int) -> str:
    """The ``-ext_output`` suffix of one line (float products, C ``round``, ``%4.0f``)."""
    x, y, w, h = (_F32(v) for v in bbox)
    fw, fh = _F32(im_w), _F32(im_h)
    two = _F32(2)
    left = _c_round(float((x - w / two) * fw))
    top = _c_round(float((y - h / two) * fh))
    width = _c_round(float(w * fw))
    height = _c_round(float(h * fh))
    return (
        f"\t(left_x: {left:4.0f}   top_y: {top:4.0f}   width: {width:4.0f}   height: {height:4.0f})"
    )


def _best_class(prob: np.ndarray, thresh: np.float32, names: Sequence[str] | None) -> int:
    best, best_prob = -1, thresh
    for j, p in enumerate(prob.tolist()):
        if p > best_prob and not class_name(names, j).startswith("dont_show"):
            best, best_prob = j, _F32(p)
    return best


def draw_detections_v3(
    boxes: Boxes,
    im_w: int,
    im_h: int,
    thresh: float,
    names: Sequence[str] | None,
    classes: int,
    ext_output: bool = False,
    det_classes: Sequence[int] | None = None,
) -> tuple[list[Detection], list[int]]:
    """The shown detections in printed order, and the drawing order (indices into that list).

    ``Detection.classes`` lists the best class first, then the other classes ``> thresh`` in
    index order, as the lines print them; ``Detection.lines`` are its printed lines.
    ``det_classes[i]`` is box ``i``'s own ``dets[i].classes``, the classes the best-class search
    walks (default: every prob slot).
    """
    t = _F32(thresh)
    chosen: list[tuple[int, int]] = []  # (array position, best class)
    for i in range(len(boxes)):
        own = len(boxes.prob[i]) if det_classes is None else det_classes[i]
        best = _best_class(boxes.prob[i][:own], t, names)
        if best >= 0:
            chosen.append((i, best))
    bbox = boxes.bbox
    lefts = [float(bbox[i, 0] - bbox[i, 2] / _F32(2)) for i, _ in chosen]
    # compare_by_lefts: sign of a float difference; a NaN compares equal to everything
    order = sorted(range(len(chosen)), key=lambda n: _nan_last(lefts[n]))
    width = v3_line_width(im_h)
    dets: list[Detection] = []
    for n in order:
        i, best = chosen[n]
        prob = boxes.prob[i]
        others = [j for j in range(min(classes, len(prob))) if prob[j] > t and j != best]
        cls = (best, *others)
        nm = tuple(class_name(names, j) for j in cls)
        suffix = ext_output_box(bbox[i], im_w, im_h) if ext_output else ""
        lines = tuple(
            f"{m}: {percent(float(prob[j])):.0f}%{suffix}" for j, m in zip(cls, nm, strict=True)
        )
        label = f"{nm[0]}: {float(prob[best]):.2f}" + "".join(f", {m}" for m in nm[1:])
        x, y, w, h = (float(v) for v in bbox[i])
        o = boxes.origin[i]
        dets.append(
            Detection(
                bbox=(x, y, w, h),
                objectness=float(boxes.objectness[i]),
                prob=tuple(float(v) for v in prob),
                classes=cls,
                names=nm,
                label=label,
                left=max(c_int((x - w / 2.0) * im_w), 0),
                right=min(c_int((x + w / 2.0) * im_w), im_w - 1),
                top=max(c_int((y - h / 2.0) * im_h), 0),
                bot=min(c_int((y + h / 2.0) * im_h), im_h - 1),
                line_width=width,
                lines=lines,
                position=i,
                index=int(o[0]),
                layer=int(o[1]),
                row=int(o[2]),
                col=int(o[3]),
                anchor=int(o[4]),
            )
        )
    # compare_by_probs: ascending by the best class's prob, stable on the printed order
    draw = sorted(range(len(dets)), key=lambda n: _nan_last(dets[n].prob[dets[n].classes[0]]))
    return dets, draw


def _nan_last(v: float) -> float:
    return v if not math.isnan(v) else math.inf
