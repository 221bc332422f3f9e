"""AlexeyAB's Darknet (github.com/AlexeyAB/darknet, commit 59596d7) as a dialect: every section its
``parse_network_cfg_custom`` knows (``string_to_layer_type`` in parser.c), with every option its
``parse_*`` functions read and their defaults, classed as in ``kinds.py``.  Pure data.
"""

from __future__ import annotations

from types import MappingProxyType

from darkconv.parse.kinds import TRAIN, UNBUILT, UNSUPPORTED, Dialect, Kind, Opt
from darkconv.parse.kinds import opt as _o
from darkconv.parse.kinds import train as _train

__all__ = ["ALEXEYAB", "ACTIVATIONS"]

# get_activation() (activations.c:48-75): pjreddie's names plus AlexeyAB's.  Unknown -> relu.
ACTIVATIONS = (
    "logistic", "swish", "mish", "hard_mish", "normalize_channels", "normalize_channels_softmax",
    "normalize_channels_softmax_maxval", "loggy", "relu", "relu6", "elu", "selu", "gelu", "relie",
    "plse", "hardtan", "lhtan", "linear", "ramp", "revleaky", "leaky", "tanh", "stair",
)  # fmt: skip

# activate() (activations.c:77-113) has no case for these and returns 0.
_CPU_ZERO = frozenset(
    ("relu6", "swish", "mish", "hard_mish", "normalize_channels", "normalize_channels_softmax",
     "normalize_channels_softmax_maxval")
)  # fmt: skip
# forward_convolutional_layer (:1398-1404) and forward_shortcut_layer (:171-172) compute these
# themselves; conv_lstm's gates are convolutional layers.
_CONV_SELF = frozenset(_CPU_ZERO - {"relu6"})
_SELF = MappingProxyType(
    {
        "convolutional": _CONV_SELF,
        "conv_lstm": _CONV_SELF,
        "crnn": _CONV_SELF,
        "shortcut": frozenset(("swish", "mish")),
    }
)

_BN = _o("batch_normalize", "int", 0)
_FILTERS = _o("filters", "int", 1, positive=True)
_STRIDE = _o("stride", "int", 1, positive=True)
_ACT_LINEAR = _o("activation", "act", "linear")
#: the convolution of a recurrent cell, as conv_lstm and crnn read it (parse_conv_lstm, parse_crnn)
_CELL_CONV = (
    _o("size", "int", 3, positive=True),
    _STRIDE,
    _o("dilation", "int", 1, positive=True),
    _o("pad", "int", 0),
    _o("padding", "int", 0),
    _o("output", "int", 1, positive=True),
)
# Read for every section in parse_network_cfg_custom's loop (parser.c:1636-1645).
_COMMON = (
    *_train("clip", "onlyforward", "dont_update", "burnin_update", "stopbackward",
            "train_only_bn", "learning_rate"),
    # load_weights_upto skips a dontload layer; dontloadscales skips BN arrays: both change which
    # bytes the file holds, which darkconv's reader and writer do not model.
    Opt("dontload", "int", 0, UNSUPPORTED),
    Opt("dontloadscales", "int", 0, UNSUPPORTED),
)  # fmt: skip

_NET = Kind(
    "net",
    (
        _o("width", "int", 0),
        _o("height", "int", 0),
        _o("channels", "int", 0),
        _o("inputs", "int", None),
        _o("batch", "int", 1, TRAIN),
        _o("subdivisions", "int", 1, TRAIN),
        _o("time_steps", "int", 1),
        _o("letter_box", "int", 0),  # detector test: letterbox instead of resize
        *_train(
            "max_batches", "learning_rate", "learning_rate_min", "sgdr_cycle", "sgdr_mult",
            "momentum", "decay", "track", "augment_speed", "sequential_subdivisions",
            "try_fix_nan", "weights_reject_freq", "equidistant_point",
            "badlabels_rejection_percentage", "num_sigmas_reject_badlabels", "ema_alpha",
            "use_cuda_graph", "loss_scale", "dynamic_minibatch", "optimized_memory",
            "workspace_size_limit_MB", "adam", "B1", "B2", "eps", "max_crop", "min_crop", "flip",
            "blur", "gaussian_noise", "mixup", "cutmix", "mosaic", "mosaic_bound", "contrastive",
            "contrastive_jit_flip", "contrastive_color", "unsupervised", "label_smooth_eps",
            "resize_step", "attention", "adversarial_lr", "max_chart_loss", "angle", "aspect",
            "saturation", "exposure", "hue", "power", "policy", "burn_in", "step", "scale",
            "steps", "scales", "seq_scales", "gamma", "show_receptive_field",
        ),
    ),
    aliases=("network",),
)  # fmt: skip

_CONV = Kind(
    "convolutional",
    (
        _FILTERS,
        _o("groups", "int", 1, positive=True),
        _o("size", "int", 1, positive=True),
        _o("stride", "int", 1, positive=True),
        _o("stride_x", "int", -1),  # < 1: take stride (parse_convolutional)
        _o("stride_y", "int", -1),
        _o("dilation", "int", 1, positive=True),
        _o("antialiasing", "int", 0),
        _o("pad", "int", 0),
        _o("padding", "int", 0),
        _o("activation", "act", "logistic"),
        _o("share_index", "int", None),
        _BN,
        _o("cbn", "int", 0),  # cbn=1 sets batch_normalize=2: BN arrays stored
        _o("binary", "int", 0),  # the CPU forward does not binarize (plain float conv)
        _o("flipped", "int", 0),
        # xnor: bit-packed inference paths (gemm_nn_custom_bin_mean_transposed ...).
        Opt("xnor", "int", 0, UNBUILT),
        *_train("bin_output", "dot", "angle", "grad_centr", "reverse", "stream", "wait_stream",
                "assisted_excitation", "coordconv"),
        # deform: no effect on the CPU forward (fixtures conv_noop_options), training only.
        *_train("sway", "rotate", "stretch", "stretch_sway", type_="int"),
        *_COMMON,
    ),
    aliases=("conv",),
)  # fmt: skip

_POOL = (
    _STRIDE,
    _o("stride_x", "int", None),  # default: stride
    _o("stride_y", "int", None),
    _o("size", "int", None, positive=True),  # default: stride
    _o("padding", "int", None),  # total; default size-1
)

# Read by parse_yolo / parse_gaussian_yolo, training only.
_HEAD_TRAIN = (
    "max",
    "max_delta",
    "counters_per_class",
    "label_smooth_eps",
    "objectness_smooth",
    "iou_normalizer",
    "obj_normalizer",
    "cls_normalizer",
    "delta_normalizer",
    "iou_loss",
    "iou_thresh_kind",
    "jitter",
    "resize",
    "ignore_thresh",
    "truth_thresh",
    "iou_thresh",
    "random",
    "map",
)
_YOLO_TRAIN = _train(
    *_HEAD_TRAIN,
    "show_details",
    "focal_loss",
    "track_history_size",
    "sim_thresh",
    "dets_for_track",
    "dets_for_show",
    "track_ciou_norm",
    "embedding_layer",
)
_GAUSSIAN_TRAIN = _train(*_HEAD_TRAIN, "uc_normalizer")

_HEAD = (
    _o("classes", "int", 20, positive=True),
    _o("num", "int", 1, positive=True),
    _o("mask", "ints", None),
    _o("anchors", "floats", None),
    _o("scale_x_y", "float", 1.0),
    _o("nms_kind", "str", "default"),  # for detector test (the last head decides)
    _o("beta_nms", "float", 0.6),
)

_KIND_LIST: tuple[Kind, ...] = (
    _NET,
    _CONV,
    Kind(
        "local",
        (
            _FILTERS,
            _o("size", "int", 1, positive=True),
            _STRIDE,
            _o("pad", "int", 0),
            _o("activation", "act", "logistic"),
            *_COMMON,
        ),
    ),  # fmt: skip
    Kind("activation", (_ACT_LINEAR, *_COMMON)),
    Kind(
        "rnn",
        (
            _o("output", "int", 1, positive=True),
            _o("hidden", "int", 1, positive=True),
            _o("activation", "act", "logistic"),
            _BN,
            _o("logistic", "int", 0),
            *_train("shortcut", type_="int"),
            *_COMMON,
        ),
        impl="rnn_ab",  # input -> hidden -> output (pjreddie: output everywhere)
    ),  # fmt: skip
    Kind("gru", (_o("output", "int", 1, positive=True), _BN, *_COMMON)),
    Kind("lstm", (_o("output", "int", 1, positive=True), _BN, *_COMMON)),
    Kind(
        "conv_lstm",
        (
            *_CELL_CONV,
            _o("groups", "int", 1, positive=True),
            _ACT_LINEAR,
            _BN,
            _o("peephole", "int", 0),
            # bottleneck=1: forward_conv_lstm_layer (CPU) does not implement it.
            Opt("bottleneck", "int", 0, UNBUILT),
            Opt("xnor", "int", 0, UNBUILT),
            # GPU-only (forward_conv_lstm_layer_gpu) or training only.
            *_train("state_constrain", "shortcut", "lstm_activation", "time_normalizer"),
            *_COMMON,
        ),
    ),
    Kind(
        "history",
        (_o("history_size", "int", 4, positive=True), *_COMMON),
        unsupported_reason="its forward keeps a history across calls (training/video only)",
    ),
    Kind(
        "crnn",
        (
            *_CELL_CONV,
            _o("hidden", "int", 1, positive=True),
            _o("groups", "int", 1, positive=True),
            _o("activation", "act", "logistic"),
            _BN,
            Opt("xnor", "int", 0, UNBUILT),
            *_train("shortcut", type_="int"),
            *_COMMON,
        ),
        impl="crnn_ab",  # output/hidden + conv geometry options (pjreddie: *_filters, 3x3)
    ),
    Kind(
        "connected",
        (_o("output", "int", 1, positive=True), _o("activation", "act", "logistic"), _BN, *_COMMON),
        aliases=("conn",),
    ),  # fmt: skip
    Kind(
        "maxpool",
        (
            *_POOL,
            _o("maxpool_depth", "int", 0),
            _o("out_channels", "int", 1, positive=True),
            _o("antialiasing", "int", 0),
            *_train("maxpool_zero_nonmax", type_="int"),
            *_COMMON,
        ),
        aliases=("max",),
    ),  # fmt: skip
    Kind("local_avgpool", (*_POOL, *_COMMON), aliases=("local_avg",)),
    # [reorg3d] is REORG (reorg_layer.c, true space-to-depth); [reorg] is REORG_OLD, pjreddie's
    # permutation without flatten/extra (reorg_old_layer.c).
    Kind("reorg3d", (_STRIDE, _o("reverse", "int", 0), *_COMMON)),
    Kind("reorg", (_STRIDE, _o("reverse", "int", 0), *_COMMON)),
    Kind("avgpool", (*_COMMON,), aliases=("avg",)),
    Kind(
        "dropout",
        (*_train("probability", "dropblock", "dropblock_size_rel", "dropblock_size_abs"), *_COMMON),
    ),  # fmt: skip
    Kind(
        "normalization",
        (
            _o("size", "int", 5, positive=True),
            _o("alpha", "float", 0.0001),
            _o("beta", "float", 0.75),
            _o("kappa", "float", 1.0),
            *_COMMON,
        ),
        aliases=("lrn",),
    ),  # fmt: skip
    Kind("batchnorm", (*_COMMON,)),
    Kind(
        "softmax",
        (
            _o("groups", "int", 1, positive=True),
            _o("temperature", "float", 1.0),
            _o("tree", "str", None),
            *_train("spatial", "noloss"),
            *_COMMON,
        ),
        aliases=("soft",),
    ),  # fmt: skip
    Kind(
        "contrastive",
        (
            *_train(
                "classes",
                "yolo_layer",
                "temperature",
                "cls_normalizer",
                "max_delta",
                "contrastive_neg_max",
            ),
            *_COMMON,
        ),
        # forward_contrastive_layer returns at once at inference: the output stays calloc'd 0.
        impl="contrastive",
    ),  # fmt: skip
    Kind(
        "route",
        (
            _o("layers", "ints", None),
            _o("groups", "int", 1, positive=True),
            _o("group_id", "int", 0),
            *_train("stream", "wait_stream"),
            *_COMMON,
        ),
    ),  # fmt: skip
    Kind("upsample", (_o("stride", "int", 2), _o("scale", "float", 1.0), *_COMMON)),
    Kind(
        "shortcut",
        (
            _o("from", "ints", None),
            _ACT_LINEAR,
            _o("weights_type", "str", "none"),
            _o("weights_normalization", "str", "none"),
            *_COMMON,
        ),
        impl="shortcut_ab",
    ),
    Kind(
        "scale_channels",
        (_o("from", "int", None), _o("scale_wh", "int", 0), _ACT_LINEAR, *_COMMON),
    ),
    Kind("sam", (_o("from", "int", None), _ACT_LINEAR, *_COMMON)),
    Kind(
        "implicit",
        (
            _o("filters", "int", 128, positive=True),
            _o("atoms", "int", 1, positive=True),
            *_train("mean", "std"),
            *_COMMON,
        ),
    ),  # fmt: skip
    Kind(
        "crop",
        (
            _o("crop_height", "int", 1, positive=True),
            _o("crop_width", "int", 1, positive=True),
            _o("noadjust", "int", 0),
            *_train("flip", "angle", "saturation", "exposure", "shift"),
            *_COMMON,
        ),
    ),  # fmt: skip
    Kind("cost", (_o("type", "str", "sse", TRAIN), *_train("scale", "ratio"), *_COMMON)),
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
                "resize",
                "random",
                "reorg",
            ),
            *_COMMON,
        ),
    ),  # fmt: skip
    Kind(
        "region",
        (
            _o("classes", "int", 20, positive=True),
            _o("coords", "int", 4),
            _o("num", "int", 1, positive=True),
            _o("softmax", "int", 0),
            _o("anchors", "floats", None),
            _o("tree", "str", None),
            _o("map", "str", None),
            _o("log", "int", 0),
            _o("sqrt", "int", 0),
            *_train(
                "max",
                "focal_loss",
                "jitter",
                "resize",
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
            *_COMMON,
        ),
        impl="region_ab",
    ),  # fmt: skip
    Kind("yolo", (*_HEAD, _o("new_coords", "int", 0), *_YOLO_TRAIN, *_COMMON)),
    Kind(
        "Gaussian_yolo",
        (*_HEAD, _o("yolo_point", "str", "center"), *_GAUSSIAN_TRAIN, *_COMMON),
    ),
    Kind("empty", (*_COMMON,), aliases=("silence",)),
)

ALEXEYAB = Dialect(
    name="alexeyab",
    kinds=_KIND_LIST,
    activations=ACTIVATIONS,
    bn_formula="sqrt_var_plus_eps",  # normalize_cpu and fuse_conv_batchnorm: sqrt(var + .00001f)
    bn_eps=1e-5,
    fuse_at_load=True,  # detector test, classifier predict, demo: fuse_conv_batchnorm at load
    activation_math="float",
    cpu_zero_activations=_CPU_ZERO,
    self_activations=_SELF,
    header=(0, 2, 5),
    seen64_needs_below_1000=False,  # load_weights_upto: (major*10 + minor) >= 2 only
    seen32_signed=False,  # uint32_t iseen
    batchnorm_bias_stored=True,
    conv_raw_1x1="size1_stride_x1_dilation1",
    letterbox_default=False,
    needs_2d_layer=True,
    shortcut_same_hw=True,
    extra_anchors_ignored=frozenset(("yolo", "region")),  # parse_yolo/parse_region: i < num*2
    bflops_total="float32",
    source="AlexeyAB/darknet 59596d7880f6504768df41d6daa586f5cb2b932f",
)
