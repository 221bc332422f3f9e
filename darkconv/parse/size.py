"""Run a network at another input size: ``size=(w, h)`` is ``[net] width=w height=h`` edited in
the cfg text.

Darknet users run the same weights at 320, 416 or 608 by editing ``width``/``height``; the
``.weights`` file does not change because no convolution's parameters depend on the input size.
:func:`with_size` does exactly that edit (cfg text -> ``[net]`` replaced -> parsed again), so
every shape, ``outputs`` and BFLOPs value is what Darknet computes for the edited cfg, then
checks Darknet's rules (:data:`SIZE_MULTIPLE`) and that every layer keeps its parameter shapes.
No torch.
"""

from __future__ import annotations

import dataclasses
import os
import re

from darkconv.errors import DarkconvError, GraphError
from darkconv.parse.graph import Network, load_network, parse_network, write_network

__all__ = ["SIZE_MULTIPLE", "Size", "parse_size", "as_size", "size_rule", "with_size"]

Size = tuple[int, int]

#: Last layer type -> the multiple width and height must be.  AlexeyAB's
#: ``parse_network_cfg_custom`` checks it for networks ending in one of these heads ("width=%d and
#: height=%d in cfg-file must be divisible by 32"); pjreddie's parser does not check, but its
#: YOLO routes then join maps of different sizes (Darknet reports dims 0) and the boxes are wrong.
SIZE_MULTIPLE: dict[str, int] = {"yolo": 32, "region": 32, "detection": 32}

_SIZE_RE = re.compile(r"^\s*(\d+)\s*(?:[xX*,]\s*(\d+))?\s*$")


def parse_size(text: str) -> Size:
    """``"416x416"``, ``"608x352"`` (width first) or ``"416"`` (square) -> ``(w, h)``."""
    match = _SIZE_RE.match(text)
    if match is None:
        raise DarkconvError(f"size {text!r}: expected WxH (e.g. 416x416 or 608x352) or N")
    w = int(match.group(1))
    h = int(match.group(2)) if match.group(2) is not None else w
    return as_size((w, h))


def as_size(size: int | Size | tuple[int, ...] | list[int]) -> Size:
    """An int ``n`` -> ``(n, n)``; a pair ``(w, h)`` checked positive."""
    if isinstance(size, int):
        size = (size, size)
    if len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
        raise DarkconvError(f"size must be (width, height) in positive pixels, got {size!r}")
    return (int(size[0]), int(size[1]))


def size_rule(network: Network) -> int:
    """The multiple width and height must be for this network (1: no rule)."""
    if not network.layers:
        return 1
    return SIZE_MULTIPLE.get(network.layers[-1].type, 1)


def _label(network: Network) -> str:
    return network.path or "the network"


def with_size(cfg: Network | str | os.PathLike[str], size: int | Size | None) -> Network:
    """The network of ``cfg`` with ``[net] width, height`` = ``size`` (``(w, h)``; None: as is).

    Raises :class:`GraphError` (one line) when ``size`` breaks Darknet's rule for the network
    (:data:`SIZE_MULTIPLE`), makes a layer's output empty, or changes a layer's parameter shapes
    (a ``[connected]``/``[local]`` layer after the convolutions fixes the input size).
    """
    network = cfg if isinstance(cfg, Network) else load_network(os.fspath(cfg))
    if size is None:
        return network
    w, h = as_size(size)
    c, h0, w0 = network.input
    label = _label(network)
    if not (h0 and w0):
        raise GraphError(f"{label}: size {w}x{h}: the network takes a flat [net] inputs= vector")
    if (w, h) == (w0, h0):
        return network
    multiple = size_rule(network)
    if w % multiple or h % multiple:
        last = network.layers[-1].type
        raise GraphError(
            f"{label}: size {w}x{h}: width and height must be multiples of {multiple} for a "
            f"network ending in [{last}] (Darknet's rule); nearest: "
            f"{_round(w, multiple)}x{_round(h, multiple)}"
        )
    keep = [(k, v) for k, v in network.net_cfg if k not in ("width", "height")]
    edited = dataclasses.replace(network, net_cfg=(*keep, ("width", str(w)), ("height", str(h))))
    try:
        resized = parse_network(
            write_network(edited), path=network.path or "<string>", dialect=network.dialect
        )
    except DarkconvError as exc:
        raise GraphError(f"{label}: size {w}x{h}: {exc.message}") from None
    for old, new in zip(network.layers, resized.layers, strict=True):
        if [(r.key, r.shape) for r in old.records] != [(r.key, r.shape) for r in new.records]:
            raise GraphError(
                f"{label}: size {w}x{h}: layer {old.index} [{old.type}] would change its "
                f"parameters (input {_dims(old.input)} -> {_dims(new.input)}); this network "
                f"only runs at its cfg size {w0}x{h0}"
            )
        if new.outputs <= 0 and old.outputs > 0:
            raise GraphError(
                f"{label}: size {w}x{h}: layer {old.index} [{old.type}] has an empty output"
            )
    return resized


def _round(v: int, multiple: int) -> int:
    return max(multiple, multiple * round(v / multiple))


def _dims(chw: tuple[int, int, int]) -> str:
    return "x".join(map(str, chw))
