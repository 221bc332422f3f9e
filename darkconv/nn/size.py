"""Input size of a built model: the one-line error for a wrong input, and the same model (same
parameters) at another ``[net]`` size.

A Darknet network is built for one input size (``[net] width/height``; every layer's buffers
are sized from it in ``parse_network_cfg``).  darkconv's modules likewise keep the dims they
were built for, so an input of another size must be caught before the first layer, with the fix
in the message, not left to a reshape deep inside torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from darkconv.errors import DarkconvError
from darkconv.parse.size import Size, as_size, with_size

if TYPE_CHECKING:
    from darkconv.nn.builder import DarknetModel

__all__ = ["check_input", "resized_model"]


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(str(int(v)) for v in shape)


def check_input(x: Tensor, chw: tuple[int, int, int], inputs: int) -> None:
    """Raise a one-line :class:`DarkconvError` unless ``x`` is ``(B, c, h, w)`` of the built
    size (or a flat ``(B, inputs)`` batch, Darknet's own buffer)."""
    shape = tuple(x.shape)
    if len(shape) == 4 and shape[1:] == chw:
        return
    if len(shape) == 2 and shape[1] == inputs:
        return
    c, h, w = chw
    if not (c and h and w):  # a [net] inputs= network takes (B, inputs)
        raise DarkconvError(
            f"input is {_dims(shape)} but the network takes (batch, {inputs}) vectors"
        )
    if len(shape) == 3 and shape == chw:
        raise DarkconvError(
            f"input is {_dims(shape)}: add the batch dimension (x[None], shape 1x{_dims(chw)})"
        )
    if len(shape) == 4 and shape[1] == c:
        got_w, got_h = shape[3], shape[2]
        raise DarkconvError(
            f"input is {_dims(shape[1:])} (c x h x w) but the network was built for "
            f"{_dims(chw)}: resize the input to {w}x{h}, or build the network at its size with "
            f"size=({got_w}, {got_h}) / --size {got_w}x{got_h}"
        )
    raise DarkconvError(
        f"input is {_dims(shape)} but the network takes (batch, {c}, {h}, {w}) tensors "
        f"({c} channels, {w}x{h} pixels)"
    )


@torch.no_grad()
def resized_model(model: DarknetModel, size: int | Size | None) -> DarknetModel:
    """``model`` at input ``size`` ``(w, h)``: the network re-parsed with ``[net] width/height``
    edited (:func:`darkconv.parse.size.with_size`) and built again around the SAME parameter
    tensors (no copy); a fused model comes back fused, a Winograd one with Winograd layers
    (tiles chosen for the new size).  ``size`` None or equal to the model's size: ``model``."""
    from darkconv.nn.builder import build
    from darkconv.nn.fuse import FusedConvolutional, fuse_model
    from darkconv.nn.winograd import WinogradConvolutional, winograd_model

    if model.network is None:
        raise DarkconvError("this model lost its graph (unpickled): build it again to resize it")
    if size is None:
        return model
    w, h = as_size(size)
    if model.input_shape[1:] == (h, w):
        return model
    network = with_size(model.network, (w, h))
    found = {type(m) for m in model.modules()}
    options: dict[str, Any] = dict(getattr(model, "build_options", {}))
    new = build(network, device="meta", **options)  # allocates nothing
    if any(issubclass(t, FusedConvolutional) for t in found):
        fuse_model(new)
    if WinogradConvolutional in found:
        winograd_model(new)
    state = model.state_dict()
    device = model.header.device
    new.to_empty(device=device)
    new.load_state_dict(state, strict=True, assign=True)
    old_buffers = dict(model.named_buffers())
    for name, buf in new.named_buffers():  # non-persistent buffers (constant masks): copied
        if name not in state:
            src: Any = old_buffers.get(name)
            if src is None or src.shape != buf.shape:
                raise DarkconvError(f"cannot resize: buffer {name} depends on the input size")
            buf.copy_(src)
    old_modules = dict(model.named_modules())
    for name, module in new.named_modules():  # batch-norm formulas switched by set_bn_mode()
        old = old_modules.get(name)
        if old is not None and hasattr(module, "mode") and hasattr(old, "mode"):
            module.mode = old.mode
    new.batch_invariant = model.batch_invariant
    return new.train(model.training)
