"""``darknet classifier predict`` and ``darknet detector test`` on a built darkconv model.

Both follow the C programs of the network's dialect step by step: ``load_image_color`` ->
the dialect's input (:mod:`darkconv.apps.preprocess`) -> ``network_predict`` (batch 1) ->
``top_k`` (classifier) or ``get_network_boxes`` -> NMS -> the printed lines
(:mod:`darkconv.apps.steps`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from darkconv.apps.classifier import Prediction, top_predictions
from darkconv.apps.dialects import network_dialect
from darkconv.apps.draw import DetectResult
from darkconv.apps.image import MAX_IMAGE_PIXELS, FloatImage, ImageLike, as_image
from darkconv.apps.preprocess import classifier_input, detector_input
from darkconv.apps.steps import (
    DetectorSetup,
    detect_from_outputs,
    detector_setup,
    net_letter_box,
)
from darkconv.errors import ImageError, UnsupportedError
from darkconv.parse.budget import activation_cost, check_fits

__all__ = [
    "DetectorSetup",
    "at_size",
    "detect",
    "detector_setup",
    "forward_layers",
    "model_network",
    "network_input",
    "predict",
]


def model_network(model: Any) -> Any:
    """The :class:`darkconv.graph.Network` a model was built from."""
    for attr in ("network", "net", "graph"):
        net = getattr(model, attr, None)
        if net is not None and hasattr(net, "layers") and hasattr(net, "input"):
            return net
    raise TypeError(f"{type(model).__name__} does not carry its darkconv Network")


def at_size(model: Any, size: int | tuple[int, int] | None) -> Any:
    """``model`` at network size ``(w, h)`` (same parameters; ``DarknetModel.at_size``)."""
    if size is None:
        return model
    from darkconv.nn.size import resized_model

    return resized_model(model, size)


def network_input(
    image: ImageLike,
    network: Any,
    dialect: str | None = None,
    letter_box: bool = False,
    app: str = "detector",
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> tuple[FloatImage, FloatImage]:
    """``load_image_color`` + the dialect's input of ``app`` ("detector" | "classifier"):
    (decoded image, network input).  ``letter_box`` (or ``[net] letter_box=1``) makes the
    detector letterbox.

    Refuses (:class:`~darkconv.errors.ResourceError`) a network whose forward pass or an image
    whose decoded pixels would not fit in memory, before allocating them."""
    c, h, w = network.input
    if c != 3:
        raise ImageError(f"the network takes {c} channels; Darknet's images have 3")
    d = network_dialect(network, dialect)
    # The forward pass at batch 1; letterboxing holds about two more input-sized buffers.
    check_fits(activation_cost(network, 1), margin=2.0)
    im = as_image(image, max_pixels=max_pixels)
    if app == "classifier":
        return im, classifier_input(im, w, h, d)
    return im, detector_input(im, w, h, d, letter_box or net_letter_box(network))


def forward_layers(model: Any, x: FloatImage, indices: Iterable[int]) -> dict[int, np.ndarray]:
    """Run the model on one ``(3, h, w)`` input and return the outputs of ``indices``.

    Each output is Darknet's flat ``l.output`` buffer (float32, C order), captured with forward
    hooks on ``model.layers[i]``.
    """
    import torch

    wanted = sorted(set(indices))
    layers = model.layers
    got: dict[int, np.ndarray] = {}
    handles = []

    def hook_for(i: int) -> Any:
        def hook(_mod: Any, _inp: Any, out: Any) -> None:
            t = out[0] if isinstance(out, (tuple, list)) else out
            got[i] = t.detach().to("cpu", torch.float32).reshape(-1).numpy().copy()

        return hook

    for i in wanted:
        handles.append(layers[i].register_forward_hook(hook_for(i)))
    try:
        param = next(iter(model.parameters()), None)
        device = param.device if param is not None else torch.device("cpu")
        dtype = param.dtype if param is not None else torch.float32
        batch = torch.from_numpy(np.ascontiguousarray(x)).reshape(1, *x.shape)
        with torch.no_grad():
            model(batch.to(device=device, dtype=dtype))
    finally:
        for handle in handles:
            handle.remove()
    missing = [i for i in wanted if i not in got]
    if missing:
        raise RuntimeError(f"layers {missing} did not run")
    return got


def predict(
    model: Any,
    image: ImageLike,
    top: int = 1,
    names: Sequence[str] | None = None,
    dialect: str | None = None,
    max_pixels: int = MAX_IMAGE_PIXELS,
    size: int | tuple[int, int] | None = None,
) -> list[Prediction]:
    """``darknet classifier predict``: the ``top`` classes of the network output.

    ``image`` is a path or an array (see :func:`darkconv.apps.image.as_image`).  Darknet's default
    ``top`` is 1 (``-t``, then the ``.data`` file's ``top=``).  Without ``names`` each class
    is named by its index.  ``dialect`` (default: the network's) picks the input
    (pjreddie: letterbox; AlexeyAB: ``resize_min`` + centre crop) and ``Prediction.line``.
    An image file of more than ``max_pixels`` pixels is refused.
    ``size=(w, h)`` runs the model at that network size (:func:`at_size`, as if ``[net]
    width/height`` were edited).
    """
    model = at_size(model, size)
    network = model_network(model)
    d = network_dialect(network, dialect)
    out = network.layers[network.output_index]
    if out.type == "softmax" and out.options.get("tree"):
        raise UnsupportedError(
            f"layer {out.index}: a softmax tree needs hierarchy_predictions, not supported"
        )
    _, x = network_input(image, network, d.name, app="classifier", max_pixels=max_pixels)
    values = forward_layers(model, x, [network.output_index])[network.output_index]
    return top_predictions(values, top, names, d.predict_line)


def detect(
    model: Any,
    image: ImageLike,
    thresh: float | None = None,
    hier: float = 0.5,
    nms: float = 0.45,
    names: Sequence[str] | None = None,
    dialect: str | None = None,
    letter_box: bool = False,
    ext_output: bool = False,
    max_pixels: int = MAX_IMAGE_PIXELS,
    size: int | tuple[int, int] | None = None,
) -> DetectResult:
    """``darknet detector test``: boxes, printed lines and drawn corners for one image.

    ``dialect`` (default: the network's) picks every step: pjreddie letterboxes, decodes,
    runs ``do_nms_sort`` and prints ``draw_detections``' lines; AlexeyAB resizes (letterboxes with
    ``letter_box`` or ``[net] letter_box=1``), decodes ``new_coords`` / Gaussian_yolo, runs the last
    head's ``nms_kind`` and prints ``draw_detections_v3``' lines (``ext_output``: with the box).
    ``thresh`` defaults to the dialect's (.5 / .25).  ``hier`` (``hier_thresh``) only matters for
    ``tree=`` regions, which are not supported.  ``nms=0`` skips NMS as Darknet does.  An image
    file of more than ``max_pixels`` pixels is refused.
    ``size=(w, h)`` runs the model at that network size (:func:`at_size`).
    """
    model = at_size(model, size)
    network = model_network(model)
    setup = detector_setup(network, dialect, letter_box)
    im, x = network_input(
        image, network, setup.dialect.name, setup.letter_box, max_pixels=max_pixels
    )
    outputs = forward_layers(model, x, [h.index for h in setup.heads])
    _, net_h, net_w = network.input
    im_h, im_w = im.shape[1], im.shape[2]
    return detect_from_outputs(
        setup, outputs, im_w, im_h, net_w, net_h, thresh, hier, nms, names, ext_output
    )
