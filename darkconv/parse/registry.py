"""Darknet's layer kinds declared as data: names, aliases, options and their defaults.

One :class:`~darkconv.parse.kinds.Dialect` per Darknet: ``PJREDDIE`` (this module: every section
type pjreddie's ``parse_network_cfg`` knows) and ``ALEXEYAB`` (``registry_alexeyab``).  Each option
is in one of four classes (``kinds.py``): ``USED``, ``TRAIN`` (reported as unused, like Darknet's
"Unused field"), ``UNSUPPORTED`` (a positioned error) and ``UNBUILT`` (sized exactly, no forward).

``dialect.py`` picks the dialect of a cfg from the sections, options and activations only
AlexeyAB's parser knows.  Shape, FLOP and weight-record rules live in ``shapes.py`` and
``shapes_alexeyab.py``; this module is pure data.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from darkconv.parse.kinds import (
    TRAIN,
    UNBUILT,
    UNSUPPORTED,
    USED,
    Dialect,
    Kind,
    Opt,
)
from darkconv.parse.kinds import opt as _o
from darkconv.parse.kinds import train as _train

__all__ = [
    "USED",
    "TRAIN",
    "UNSUPPORTED",
    "UNBUILT",
    "Opt",
    "Kind",
    "Dialect",
    "KINDS",
    "ALIASES",
    "ACTIVATIONS",
    "NET",
    "PJREDDIE",
    "ALEXEYAB",
    "DIALECTS",
    "DEFAULT_DIALECT",
    "kind_for",
]

# get_activation() in activations.c; an unknown name falls back to relu with a warning.
ACTIVATIONS = (
    "logistic", "loggy", "relu", "elu", "selu", "relie", "plse", "hardtan", "lhtan",
    "linear", "ramp", "leaky", "tanh", "stair",
)  # fmt: skip


_BN = _o("batch_normalize", "int", 0)
_FILTERS = _o("filters", "int", 1, positive=True)
_SIZE = _o("size", "int", 1, positive=True)
_STRIDE = _o("stride", "int", 1, positive=True)

# Options AlexeyAB's fork added that change results: refused rather than silently ignored.
_ALEXEY_CONV = tuple(
    Opt(n, "str", None, UNSUPPORTED)
    for n in ("stride_x", "stride_y", "dilation", "antialiasing", "share_index", "sway",
              "rotate", "stretch", "stretch_sway", "cbn", "bin_output", "assisted_excitation")
)  # fmt: skip
# Per-layer weight-file switches of load_weights_upto()/save_weights_upto(): they change which
# bytes a file holds, and darkconv's reader and writer do not model them.
_WEIGHT_SWITCHES = tuple(
    Opt(n, "str", None, UNSUPPORTED) for n in ("dontload", "dontloadscales", "dontsave", "numload")
)

NET = Kind(
    "net",
    (
        _o("width", "int", 0),
        _o("height", "int", 0),
        _o("channels", "int", 0),
        _o("inputs", "int", None),
        _o("batch", "int", 1, TRAIN),
        _o("subdivisions", "int", 1, TRAIN),
        _o("time_steps", "int", 1),
        *_train(
            "learning_rate",
            "momentum",
            "decay",
            "angle",
            "saturation",
            "exposure",
            "hue",
            "burn_in",
            "max_batches",
            "policy",
            "steps",
            "scales",
            "max_crop",
            "min_crop",
            "power",
            "aspect",
            "adam",
            "B1",
            "B2",
            "eps",
            "seen",
            "step",
            "gamma",
            "scale",
            "center",
            "notruth",
            "random",
            "clip",
            "label_smooth_eps",
            "flip",
        ),
    ),
    aliases=("network",),
)

_KIND_LIST: tuple[Kind, ...] = (
    NET,
    Kind(
        "convolutional",
        (
            _FILTERS,
            _SIZE,
            _STRIDE,
            _o("pad", "int", 0),
            _o("padding", "int", 0),
            _o("groups", "int", 1, positive=True),
            _o("activation", "act", "logistic"),
            _BN,
            _o("binary", "int", 0),
            _o("xnor", "int", 0),
            _o("flipped", "int", 0),
            _o("dot", "float", 0.0, TRAIN),
            *_ALEXEY_CONV,
            *_WEIGHT_SWITCHES,
        ),
        aliases=("conv",),
    ),  # fmt: skip
    Kind(
        "deconvolutional",
        (
            _FILTERS,
            _SIZE,
            _STRIDE,
            _o("pad", "int", 0),
            _o("padding", "int", 0),
            _o("activation", "act", "logistic"),
            _BN,
            *_WEIGHT_SWITCHES,
        ),
        aliases=("deconv",),
    ),  # fmt: skip
    Kind(
        "local",
        (
            _FILTERS,
            _SIZE,
            _STRIDE,
            _o("pad", "int", 0),
            _o("activation", "act", "logistic"),
            *_WEIGHT_SWITCHES,
        ),
    ),  # fmt: skip
    Kind("activation", (_o("activation", "act", "linear"),)),
    Kind("logistic", ()),
    Kind("l2norm", ()),
    Kind(
        "rnn",
        (
            _o("output", "int", 1, positive=True),
            _o("activation", "act", "logistic"),
            _BN,
            _o("shortcut", "int", 0),
            *_WEIGHT_SWITCHES,
        ),
    ),  # fmt: skip
    Kind(
        "gru", (_o("output", "int", 1, positive=True), _BN, _o("tanh", "int", 0), *_WEIGHT_SWITCHES)
    ),
    Kind("lstm", (_o("output", "int", 1, positive=True), _BN, *_WEIGHT_SWITCHES)),
    Kind(
        "crnn",
        (
            _o("output_filters", "int", 1, positive=True),
            _o("hidden_filters", "int", 1, positive=True),
            _o("activation", "act", "logistic"),
            _BN,
            _o("shortcut", "int", 0),
            *_WEIGHT_SWITCHES,
        ),
    ),  # fmt: skip
    Kind(
        "connected",
        (
            _o("output", "int", 1, positive=True),
            _o("activation", "act", "logistic"),
            _BN,
            *_WEIGHT_SWITCHES,
        ),
        aliases=("conn",),
    ),  # fmt: skip
    Kind(
        "maxpool",
        # size defaults to stride and padding to size-1: resolved in shapes.py (parse_maxpool).
        (_STRIDE, _o("size", "int", None, positive=True), _o("padding", "int", None)),
        aliases=("max",),
    ),
    Kind(
        "reorg",
        (_STRIDE, _o("reverse", "int", 0), _o("flatten", "int", 0), _o("extra", "int", 0)),
    ),
    Kind("avgpool", (), aliases=("avg",)),
    Kind("dropout", (_o("probability", "float", 0.5, TRAIN),)),
    Kind(
        "normalization",
        (
            _o("size", "int", 5, positive=True),
            _o("alpha", "float", 0.0001),
            _o("beta", "float", 0.75),
            _o("kappa", "float", 1.0),
        ),
        aliases=("lrn",),
    ),  # fmt: skip
    Kind("batchnorm", (*_WEIGHT_SWITCHES,)),
    Kind(
        "softmax",
        (
            _o("groups", "int", 1, positive=True),
            _o("temperature", "float", 1.0),
            _o("tree", "str", None),
            *_train("spatial", "noloss"),
        ),
        aliases=("soft",),
    ),  # fmt: skip
    Kind("route", (_o("layers", "ints", None),)),
    Kind("upsample", (_o("stride", "int", 2), _o("scale", "float", 1.0))),
    Kind(
        "shortcut",
        (
            _o("from", "int", None),
            _o("activation", "act", "linear"),
            _o("alpha", "float", 1.0),
            _o("beta", "float", 1.0),
        ),
    ),  # fmt: skip
    Kind(
        "crop",
        (
            _o("crop_height", "int", 1, positive=True),
            _o("crop_width", "int", 1, positive=True),
            _o("noadjust", "int", 0),
            *_train("flip", "angle", "saturation", "exposure", "shift"),
        ),
    ),  # fmt: skip
    Kind(
        "cost",
        (_o("type", "str", "sse", TRAIN), *_train("scale", "ratio", "noobject_scale", "thresh")),
    ),
    Kind(
        "detection",
        (
            _o("classes", "int", 1, positive=True),
            _o("coords", "int", 1),
            _o("rescore", "int", 0),
            _o("num", "int", 1, positive=True),
            _o("side", "int", 7, positive=True),
            _o("softmax", "int", 0),
            _o("sqrt", "int", 0),
            *_train(
                "max",
                "coord_scale",
                "forced",
                "object_scale",
                "noobject_scale",
                "class_scale",
                "jitter",
                "random",
                "reorg",
            ),
        ),
    ),  # fmt: skip
    Kind(
        "region",
        (
            _o("classes", "int", 20, positive=True),
            _o("coords", "int", 4),
            _o("num", "int", 1, positive=True),
            _o("softmax", "int", 0),
            _o("background", "int", 0),
            _o("anchors", "floats", None),
            _o("tree", "str", None),
            _o("map", "str", None),
            _o("log", "int", 0),
            _o("sqrt", "int", 0),
            *_train(
                "max",
                "jitter",
                "rescore",
                "thresh",
                "classfix",
                "absolute",
                "random",
                "coord_scale",
                "object_scale",
                "noobject_scale",
                "mask_scale",
                "class_scale",
                "bias_match",
            ),
        ),
    ),  # fmt: skip
    Kind(
        "yolo",
        (
            _o("classes", "int", 20, positive=True),
            _o("num", "int", 1, positive=True),
            _o("mask", "ints", None),
            _o("anchors", "floats", None),
            *_train("max", "jitter", "ignore_thresh", "truth_thresh", "random", "map"),
            *(Opt(n, "str", None, UNSUPPORTED) for n in ("scale_x_y", "new_coords")),
        ),
    ),  # fmt: skip
    Kind(
        "iseg",
        (),
        unsupported_reason="its forward pass reads training truth (Darknet crashes at inference)",
    ),
)

KINDS: MappingProxyType[str, Kind] = MappingProxyType({k.name: k for k in _KIND_LIST})
ALIASES: MappingProxyType[str, str] = MappingProxyType(
    {alias: k.name for k in _KIND_LIST for alias in (k.name, *k.aliases)}
)


def kind_for(section_name: str) -> Kind | None:
    """The pjreddie kind for a section name as written (``conv`` -> convolutional), or None."""
    return PJREDDIE.kind_for(section_name)


PJREDDIE = Dialect(
    name="pjreddie",
    kinds=_KIND_LIST,
    activations=ACTIVATIONS,
    bn_formula="sqrt_var_then_eps",  # normalize_cpu: (x - mean)/(sqrt(var) + .000001f)
    bn_eps=1e-6,
    fuse_at_load=False,
    activation_math="double",
    cpu_zero_activations=frozenset(),
    self_activations=MappingProxyType({}),
    header=(0, 2, 0),
    seen64_needs_below_1000=True,
    seen32_signed=True,
    batchnorm_bias_stored=False,
    conv_raw_1x1="size1",
    letterbox_default=True,
    needs_2d_layer=False,
    shortcut_same_hw=False,
    extra_anchors_ignored=frozenset(),
    bflops_total="double",
    source="pjreddie/darknet f6afaabcdf85f77e7aff2ec55c020c0e297c77f9",
)

from darkconv.parse.registry_alexeyab import ALEXEYAB  # noqa: E402  (needs the names above)

DIALECTS: Mapping[str, Dialect] = MappingProxyType({d.name: d for d in (PJREDDIE, ALEXEYAB)})
DEFAULT_DIALECT = "pjreddie"
