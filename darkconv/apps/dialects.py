"""What ``detector test`` and ``classifier predict`` do differently in each Darknet dialect.

One row per dialect (the same names as ``Network.dialect``); the apps look facts up here by name
instead of branching on the dialect.  Sources: pjreddie ``examples/detector.c test_detector``,
``examples/classifier.c predict_classifier``, ``src/image.c draw_detections``; AlexeyAB
``src/detector.c test_detector``, ``src/classifier.c predict_classifier``, ``src/image.c
draw_detections_v3``, ``src/network.c get_network_boxes``, ``src/box.c``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from darkconv.errors import UnsupportedError

__all__ = ["APP_DIALECTS", "AppDialect", "app_dialect", "network_dialect"]


@dataclass(frozen=True)
class AppDialect:
    """The apps' facts of one dialect (every field names a formula or holds a default)."""

    name: str
    detect_thresh: float  # detector test's -thresh default
    detector_input: str  # "letterbox" always | "resize" unless [net] letter_box=1 or -letter_box
    classifier_input: str  # "letterbox" | "resize_min_crop" (resize_min(net.w) + centre crop)
    decoder: str  # get_network_boxes flavour: "pjreddie" | "alexeyab" (see decode / decode_ab)
    prob_classes: str  # length of every prob array: "last_layer" | "first_head"
    nms: str  # "do_nms_sort" always | "from_last_head" (nms_kind/beta_nms of the last head)
    printer: str  # "draw_detections" (array order) | "draw_detections_v3" (left edge order)
    ext_output: bool  # whether -ext_output exists
    predict_line: str  # classifier predict line, a %-format of (prob*100 or prob, name)


APP_DIALECTS: dict[str, AppDialect] = {
    "pjreddie": AppDialect(
        name="pjreddie",
        detect_thresh=0.5,
        detector_input="letterbox",
        classifier_input="letterbox",
        decoder="pjreddie",
        prob_classes="last_layer",
        nms="do_nms_sort",
        printer="draw_detections",
        ext_output=False,
        predict_line="pjreddie",
    ),
    "alexeyab": AppDialect(
        name="alexeyab",
        detect_thresh=0.25,  # run_detector: find_float_arg(argc, argv, "-thresh", .25)
        detector_input="resize",
        classifier_input="resize_min_crop",
        decoder="alexeyab",
        prob_classes="first_head",  # make_network_boxes sizes prob by the first head
        nms="from_last_head",
        printer="draw_detections_v3",
        ext_output=True,
        predict_line="alexeyab",
    ),
}


def app_dialect(name: str) -> AppDialect:
    """The row of ``name``; an unknown name is an error listing the known ones."""
    try:
        return APP_DIALECTS[name]
    except KeyError:
        known = ", ".join(sorted(APP_DIALECTS))
        raise UnsupportedError(f"unknown dialect {name!r} (known: {known})") from None


def network_dialect(network: Any, override: str | None = None) -> AppDialect:
    """``override`` if given, else the network's own ``dialect`` (pjreddie when it has none)."""
    return app_dialect(override or str(getattr(network, "dialect", None) or "pjreddie"))
