"""``darknet classifier predict`` and ``darknet detector test`` on a built darkconv model.

Both follow the C programs step by step: ``load_image_color`` -> ``letterbox_image`` ->
``network_predict`` (batch 1) -> ``top_k`` (classifier) or ``get_network_boxes`` ->
``do_nms_sort`` -> ``draw_detections`` (detector).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from darkconv.apps.classifier import Prediction, top_predictions
from darkconv.apps.decode import Head, get_network_boxes
from darkconv.apps.draw import DetectResult, draw_detections
from darkconv.apps.image import (
    MAX_IMAGE_PIXELS,
    FloatImage,
    ImageLike,
    as_image,
    letterbox_image,
)
from darkconv.apps.nms import do_nms_sort
from darkconv.errors import ImageError, UnsupportedError
from darkconv.parse.budget import activation_cost, check_fits

__all__ = ["detect", "forward_layers", "model_network", "network_input", "predict"]

HEAD_TYPES = ("yolo", "region", "detection")


def model_network(model: Any) -> Any:
    """The :class:`darkconv.graph.Network` a model was built from."""
    for attr in ("network", "net", "graph"):
        net = getattr(model, attr, None)
        if net is not None and hasattr(net, "layers") and hasattr(net, "input"):
            return net
    raise TypeError(f"{type(model).__name__} does not carry its darkconv Network")


def network_input(
    image: ImageLike, network: Any, max_pixels: int = MAX_IMAGE_PIXELS
) -> tuple[FloatImage, FloatImage]:
    """``load_image_color`` + ``letterbox_image(im, net.w, net.h)``: (decoded image, input).

    Refuses (:class:`~darkconv.errors.ResourceError`) a network whose forward pass or an image
    whose decoded pixels would not fit in memory, before allocating them."""
    c, h, w = network.input
    if c != 3:
        raise ImageError(f"the network takes {c} channels; Darknet's images have 3")
    # The forward pass at batch 1; letterboxing holds about two more input-sized buffers.
    check_fits(activation_cost(network, 1), margin=2.0)
    im = as_image(image, max_pixels=max_pixels)
    return im, letterbox_image(im, w, h)


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
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> list[Prediction]:
    """``darknet classifier predict``: the ``top`` classes of the network output.

    ``image`` is a path or an array (see :func:`darkconv.image.as_image`).  Darknet's default
    ``top`` is 1 (``-t``, then the ``.data`` file's ``top=``).  Without ``names`` each class
    is named by its index.  An image file of more than ``max_pixels`` pixels is refused.
    """
    network = model_network(model)
    out = network.layers[network.output_index]
    if out.type == "softmax" and out.options.get("tree"):
        raise UnsupportedError(
            f"layer {out.index}: a softmax tree needs hierarchy_predictions, not supported"
        )
    _, x = network_input(image, network, max_pixels)
    values = forward_layers(model, x, [network.output_index])[network.output_index]
    return top_predictions(values, top, names)


def network_heads(network: Any) -> list[Head]:
    """Every yolo/region/detection layer of the network, in layer order."""
    return [Head.from_layer(layer) for layer in network.layers if layer.type in HEAD_TYPES]


def prob_classes(network: Any, heads: Sequence[Head]) -> int:
    """Darknet sizes every prob array by ``net->layers[net->n-1].classes``."""
    last = network.layers[-1]
    if "classes" in last.options and last.options["classes"] is not None:
        return int(last.options["classes"])
    return heads[-1].classes


def detect(
    model: Any,
    image: ImageLike,
    thresh: float = 0.5,
    hier: float = 0.5,
    nms: float = 0.45,
    names: Sequence[str] | None = None,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> DetectResult:
    """``darknet detector test``: boxes, printed lines and drawn corners for one image.

    ``hier`` (``hier_thresh``) only matters for ``tree=`` regions, which are not supported; it is
    accepted for parity with Darknet.  ``nms=0`` skips NMS as Darknet does.  An image file of more
    than ``max_pixels`` pixels is refused.
    """
    network = model_network(model)
    heads = network_heads(network)
    if not heads:
        raise UnsupportedError("the network has no [yolo], [region] or [detection] layer")
    im, x = network_input(image, network, max_pixels)
    outputs = forward_layers(model, x, [h.index for h in heads])
    _, net_h, net_w = network.input
    im_h, im_w = im.shape[1], im.shape[2]
    classes = prob_classes(network, heads)
    boxes = get_network_boxes(heads, outputs, im_w, im_h, net_w, net_h, thresh, classes)
    nboxes = len(boxes)
    if nms:
        boxes = do_nms_sort(boxes, classes, nms)
    dets = draw_detections(boxes, im_w, im_h, thresh, names, classes)
    lines = tuple(line for d in dets for line in d.lines)
    return DetectResult(im_w, im_h, thresh, hier, nms, tuple(dets), lines, nboxes)
