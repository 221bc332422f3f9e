"""``detector test`` after the forward pass, per dialect: boxes -> NMS -> printed lines.

The dialect row (:mod:`darkconv.apps.dialects`) names each step; the tables here map the names to
the functions, so no step branches on the dialect.  Pure NumPy: the head outputs come in as
Darknet's flat ``l.output`` buffers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from darkconv.apps.decode import Boxes, Head, get_network_boxes
from darkconv.apps.decode_ab import detection_classes, get_network_boxes_ab
from darkconv.apps.dialects import AppDialect, network_dialect
from darkconv.apps.draw import Detection, DetectResult, draw_detections
from darkconv.apps.draw_ab import draw_detections_v3
from darkconv.apps.nms import do_nms_sort
from darkconv.apps.nms_ab import nms_ab
from darkconv.errors import UnsupportedError

__all__ = [
    "HEAD_TYPES",
    "DetectorSetup",
    "detect_from_outputs",
    "detector_setup",
    "net_letter_box",
    "setup_for_heads",
]

#: every layer type that ``get_network_boxes`` decodes (either dialect)
HEAD_TYPES = ("yolo", "Gaussian_yolo", "gaussian_yolo", "region", "detection")
#: the heads AlexeyAB's ``test_detector`` takes ``l`` (nms_kind, classes) from: the last of these
_AB_NMS_HEADS = ("yolo", "Gaussian_yolo", "region")


@dataclass(frozen=True)
class DetectorSetup:
    """What ``test_detector`` fixes before the image: heads, class counts, NMS kind, letterbox."""

    dialect: AppDialect
    heads: tuple[Head, ...]
    prob_classes: int  # length of every prob array
    classes: int  # classes NMS and printing walk (``l.classes``)
    nms_kind: str  # "default" | "greedynms" | "diounms" | "cornersnms"
    beta_nms: float
    letter_box: bool  # only read where the dialect resizes by default


def net_letter_box(network: Any) -> bool:
    """``[net] letter_box`` (AlexeyAB): parsed (``network.net``), else the raw text."""
    value = getattr(network, "net", {}).get("letter_box")
    if value is None:
        value = dict(getattr(network, "net_cfg", ())).get("letter_box")
    try:
        return int(value or 0) != 0
    except ValueError:
        return False


def _last_layer_classes(network: Any, heads: Sequence[Head]) -> int:
    """pjreddie sizes prob arrays and walks ``net->layers[net->n-1].classes``."""
    last = network.layers[-1]
    value = last.options.get("classes")
    return int(value) if value is not None else heads[-1].classes


def detector_setup(
    network: Any, dialect: str | None = None, letter_box: bool = False
) -> DetectorSetup:
    """``test_detector``'s choices for ``network`` in ``dialect`` (default: the network's)."""
    heads = tuple(Head.from_layer(la) for la in network.layers if la.type in HEAD_TYPES)
    if not heads:
        raise UnsupportedError("the network has no [yolo], [region] or [detection] layer")
    letter = bool(letter_box) or net_letter_box(network)
    return setup_for_heads(
        heads, network_dialect(network, dialect), letter, _last_layer_classes(network, heads)
    )


def setup_for_heads(
    heads: Sequence[Head], d: AppDialect, letter_box: bool, last_classes: int
) -> DetectorSetup:
    """The setup from the heads (layer order) and the last layer's ``classes``."""
    heads = tuple(sorted(heads, key=lambda h: h.index))
    classes, kind, beta = last_classes, "default", 0.6
    if d.nms == "from_last_head":
        # test_detector: l = the last yolo/Gaussian_yolo/region layer, else the last layer
        picked = [h for h in heads if h.type in _AB_NMS_HEADS]
        if picked:
            classes, kind, beta = picked[-1].classes, picked[-1].nms_kind, picked[-1].beta_nms
    prob = heads[0].classes if d.prob_classes == "first_head" else last_classes
    return DetectorSetup(d, heads, prob, classes, kind, beta, letter_box)


#: image and network sizes as ``get_network_boxes`` takes them
Size = tuple[int, int, int, int]  # im_w, im_h, net_w, net_h
Names = Sequence[str] | None
Printed = tuple[list[Detection], list[int]]  # detections in printing order, drawing order


def _boxes_pjreddie(s: DetectorSetup, out: Mapping[int, np.ndarray], size: Size, t: float) -> Boxes:
    return get_network_boxes(s.heads, out, *size, t, s.prob_classes)


def _boxes_alexeyab(s: DetectorSetup, out: Mapping[int, np.ndarray], size: Size, t: float) -> Boxes:
    return get_network_boxes_ab(s.heads, out, *size, t, s.letter_box, s.prob_classes)


#: ``AppDialect.decoder`` -> ``get_network_boxes``
BOXES: dict[str, Callable[[DetectorSetup, Mapping[int, np.ndarray], Size, float], Boxes]] = {
    "pjreddie": _boxes_pjreddie,
    "alexeyab": _boxes_alexeyab,
}

#: ``AppDialect.nms`` -> the NMS ``test_detector`` runs
NMS: dict[str, Callable[[DetectorSetup, Boxes, float], Boxes]] = {
    "do_nms_sort": lambda s, b, nms: do_nms_sort(b, s.classes, nms),
    "from_last_head": lambda s, b, nms: nms_ab(b, s.classes, nms, s.nms_kind, s.beta_nms),
}


def _print_pjreddie(
    s: DetectorSetup, b: Boxes, size: Size, t: float, names: Names, ext: bool
) -> Printed:
    dets = draw_detections(b, size[0], size[1], t, names, s.classes)
    return dets, list(range(len(dets)))


def _print_v3(s: DetectorSetup, b: Boxes, size: Size, t: float, names: Names, ext: bool) -> Printed:
    own = detection_classes(b, s.heads)
    return draw_detections_v3(b, size[0], size[1], t, names, s.classes, ext, own)


#: ``AppDialect.printer`` -> what ``detector test`` prints and draws
PRINTERS: dict[str, Callable[[DetectorSetup, Boxes, Size, float, Names, bool], Printed]] = {
    "draw_detections": _print_pjreddie,
    "draw_detections_v3": _print_v3,
}


def detect_from_outputs(
    setup: DetectorSetup,
    outputs: Mapping[int, np.ndarray],
    im_w: int,
    im_h: int,
    net_w: int,
    net_h: int,
    thresh: float | None = None,
    hier: float = 0.5,
    nms: float = 0.45,
    names: Sequence[str] | None = None,
    ext_output: bool = False,
) -> DetectResult:
    """Boxes, NMS (skipped when ``nms`` is 0, as Darknet does) and the printed lines.

    ``thresh`` defaults to the dialect's (pjreddie .5, AlexeyAB .25).  ``ext_output`` adds
    AlexeyAB's box to each line; the pjreddie dialect has no such option.
    """
    d = setup.dialect
    if ext_output and not d.ext_output:
        raise UnsupportedError(f"-ext_output does not exist in {d.name}'s darknet")
    t = d.detect_thresh if thresh is None else thresh
    size = (im_w, im_h, net_w, net_h)
    boxes = BOXES[d.decoder](setup, outputs, size, t)
    nboxes = len(boxes)
    if nms:
        boxes = NMS[d.nms](setup, boxes, nms)
    dets, order = PRINTERS[d.printer](setup, boxes, size, t, names, ext_output)
    lines = tuple(line for det in dets for line in det.lines)
    return DetectResult(im_w, im_h, t, hier, nms, tuple(dets), lines, nboxes, d.name, tuple(order))
