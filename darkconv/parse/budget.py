"""What a network costs in memory, known from the graph before anything is allocated, and what
this machine can give.

A cfg is small text that can ask for anything: ``filters=2000000000`` (56 G parameters) or a
``[net]`` of 200000x200000 (a 480 GB input).  Every command that allocates checks the cost here
first and refuses with one line naming the layer or the input, instead of letting the allocator
fail deep inside torch or the kernel kill the process.  No torch: plain arithmetic on the graph.

The estimates are float32 and deliberately simple:

* parameters: 4 bytes per stored value, which the model holds once (the largest layer is named);
* activations, for ``batch`` images: the largest ``inputs + outputs`` of any one layer (what a
  forward pass holds at that layer) plus every output a later route/shortcut keeps alive.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass

from darkconv.errors import ResourceError
from darkconv.parse.graph import Network

__all__ = [
    "MAX_IMAGE_PIXELS",
    "Cost",
    "activation_cost",
    "available_bytes",
    "check_fits",
    "human_bytes",
    "human_count",
    "outputs_cost",
    "parameter_cost",
    "proc_bytes",
]

_F32 = 4
# The default bound on an image's pixel count: Pillow's own hard limit (twice its
# DecompressionBombWarning bound), about 13400 x 13400.  --max-image-pixels raises it.
MAX_IMAGE_PIXELS = 178_956_970
# Below this an estimate is never checked against the machine: reading /proc on every forward
# pass of an ordinary network would cost time for nothing.
QUIET_BYTES = 1 << 30


@dataclass(frozen=True)
class Cost:
    """``nbytes`` needed, and ``what`` needs them (``layer 0 (convolutional): 56 G parameters``)."""

    nbytes: int
    what: str


def human_count(n: float) -> str:
    """``56 G``, ``1.5 M``, ``320``: a count the way Darknet users read parameter totals."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f}"


def human_bytes(n: float) -> str:
    """``224 GB``, ``1.2 MB`` (decimal units, as the refusal messages print them)."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} bytes"


def parameter_cost(network: Network) -> Cost:
    """All stored values as float32, naming the layer that holds the most."""
    total = sum(layer.params for layer in network.layers)
    if not network.layers:
        return Cost(0, "no layers")
    big = max(network.layers, key=lambda layer: layer.params)
    what = f"layer {big.index} ({big.type}): {human_count(big.params)} parameters"
    if big.params != total:
        what += f" ({human_count(total)} in all)"
    return Cost(total * _F32, what)


def activation_cost(network: Network, batch: int = 1) -> Cost:
    """A forward pass at ``batch``: the widest layer's input + output, plus the outputs that
    later routes/shortcuts keep alive; names the input when it is the widest."""
    c, h, w = network.input
    inputs = network.inputs
    kept = {s for layer in network.layers for s in layer.sources if 0 <= s < layer.index - 1}
    kept_floats = sum(max(network.layers[s].outputs, 1) for s in kept)
    widest, widest_floats = f"input {c}x{h}x{w}", inputs
    for layer in network.layers:
        # a layer Darknet reports no outputs for (softmax, cost...) writes as many as it reads
        floats = max(layer.inputs, 0) + (
            layer.outputs if layer.outputs > 0 else max(layer.inputs, 0)
        )
        if floats > widest_floats:
            widest, widest_floats = f"layer {layer.index} ({layer.type})", floats
    total = (widest_floats + kept_floats) * batch * _F32
    shape = f"{c}x{h}x{w}" if c and h and w else f"{inputs} values"
    return Cost(total, f"{widest} at batch {batch} of {shape}")


def outputs_cost(network: Network, batch: int = 1) -> Cost:
    """Every layer's output kept at once (``darkconv run``/``verify``, ``all_outputs=True``)."""
    floats = network.inputs + sum(max(layer.outputs, 0) for layer in network.layers)
    return Cost(floats * batch * _F32, f"every layer's output at batch {batch}")


def proc_bytes(path: str, key: str) -> int | None:
    """A ``key: N kB`` line of a Linux /proc file (``/proc/meminfo``, ``/proc/self/status``) in
    bytes; None where the file or the key is missing (other systems)."""
    try:
        with open(path, encoding="ascii") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def available_bytes() -> tuple[int | None, str]:
    """What this process can still allocate, and how to say so: the smaller of the machine's
    available memory (``MemAvailable``) and what the address-space limit (``ulimit -v``,
    RLIMIT_AS) leaves above the current mapping.  ``None`` where neither is known."""
    avail = proc_bytes("/proc/meminfo", "MemAvailable")
    where = "this machine has {} free"
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (OSError, ValueError):
        soft = resource.RLIM_INFINITY
    if soft != resource.RLIM_INFINITY:
        left = max(0, soft - (proc_bytes("/proc/self/status", "VmSize") or 0))
        if avail is None or left < avail:
            avail, where = left, "the address-space limit (ulimit -v) leaves {}"
    if avail is None:
        return None, ""
    return avail, where.format(human_bytes(avail))


def check_fits(cost: Cost, margin: float = 1.0, *, quiet_below: int = QUIET_BYTES) -> None:
    """Raise :class:`ResourceError` when ``cost`` (times ``margin``) exceeds what this process
    can allocate.  Costs under ``quiet_below`` bytes are never checked."""
    need = int(cost.nbytes * margin)
    if need < quiet_below or os.environ.get("DARKCONV_NO_MEMORY_CHECK"):
        return
    avail, where = available_bytes()
    if avail is not None and need > avail:
        raise ResourceError(f"{cost.what}: needs {human_bytes(need)}; {where}")
