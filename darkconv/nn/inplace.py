"""Activations for fused inference (:mod:`darkconv.nn.fuse`, :mod:`darkconv.nn.winograd`): in
place, mish in cache-sized chunks, and the plain formulas whenever a graph is being captured.

The same functions as :mod:`darkconv.nn.activations` (Darknet's formulas), within float32
rounding; only the way they run differs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from darkconv.nn.activations import activate

__all__ = [
    "MISH_CHUNK",
    "MISH_EXP_RANGE",
    "act_inplace",
    "act_into",
    "chunk_floats",
    "is_capturing",
    "is_compiling",
    "mish_inplace",
    "mish_into",
]


def is_compiling() -> bool:
    """torch.compile or torch.export is tracing the caller."""
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and compiler.is_compiling())


def is_capturing() -> bool:
    """A graph is being captured (torch.compile, torch.export, ONNX export, jit tracing): the
    eager-only chunked loops, whose Python ``range`` depends on the tensor's size, would bake
    the example's batch into the graph."""
    return bool(
        is_compiling()
        or torch.jit.is_tracing()
        or torch.jit.is_scripting()
        or torch.onnx.is_in_onnx_export()
    )


def act_inplace(y: Tensor, name: str, math: str = "double") -> Tensor:
    """Darknet activation ``name`` of ``y``, in place where it can be (linear, leaky, relu,
    mish); otherwise the formula table's result (:func:`~darkconv.nn.activations.activate`)."""
    if name == "linear":
        return y
    if name == "leaky":
        return F.leaky_relu(y, 0.1, inplace=True)
    if name == "relu":
        return F.relu(y, inplace=True)
    if name == "mish" and not is_capturing():  # AlexeyAB's mish_activate, within float rounding
        return mish_inplace(y)
    return activate(y, name, math)


def act_into(src: Tensor, out: Tensor, name: str, math: str = "double") -> Tensor:
    """An elementwise activation of ``src`` (a view of any strides) written into ``out`` (of
    ``src``'s shape): one pass for leaky and relu, mish's five passes reading ``src`` instead of
    a copy of it; any other activation on a copy."""
    if name == "leaky":
        return torch.ops.aten.leaky_relu.out(src, 0.1, out=out)
    if name == "relu":
        return torch.clamp(src, min=0.0, out=out)
    if name == "mish" and not is_capturing():
        return mish_into(src, out, torch.empty_like(out))
    out.copy_(src)
    done = act_inplace(out, name, math)
    return out if done is out else out.copy_(done)


#: Where mish's exponent is clamped.  Above 20, ``e^y`` makes the divisor ``1 + e + e^2/2``
#: ~1e17 and the result is ``y``, as in AlexeyAB's ``softplus_activate`` (``x > 20``: ``x``).
#: Below -20, ``1 + e^y`` is 1 in float32, so the result is exactly 0.  The clamp also keeps
#: ATen's vectorized ``exp`` on its fast path: it takes a scalar path, 14x slower, for a whole
#: vector when one lane is out of its range (``|y| > ~88``).
MISH_EXP_RANGE = 20.0
#: floats per thread in a chunk of mish's passes, measured on yolov4's 72 mish maps (1 and 2
#: threads): the passes over a chunk stay in the cache.
MISH_CHUNK = 1 << 17


def chunk_floats() -> int:
    """Floats in one cache-sized chunk of an elementwise pass: :data:`MISH_CHUNK` per thread."""
    return MISH_CHUNK * max(1, torch.get_num_threads())


def mish_inplace(y: Tensor, chunk: int | None = None) -> Tensor:
    """``y * tanh(softplus(y))`` in place, computed as ``y - y / (1 + h)`` with
    ``h = e + e^2/2``, ``e = e^clamp(y, -20, 20)``.  It is the same function:
    ``tanh(log(1 + e)) = ((1+e)^2 - 1) / ((1+e)^2 + 1) = h / (1 + h)``.

    Five passes, one division, a chunk at a time through one preallocated buffer so that the
    passes stay in the cache: 5x faster than ``F.mish`` on values of a few units, 28x on
    random-weight activations (where its ``exp`` leaves the vectorized path).  Error: within
    1.2e-7 |y| of the exact value, as AlexeyAB's float32 ``mish_activate`` is (1.5e-7 |y|; both
    lose the low bits of small results for ``-17 < y < -1`` to ``1 + e`` rounding).

    Below ``y = -16.6``, where ``1 + e`` rounds to 1, the result is exactly 0.  Darknet's
    ``-Ofast`` build (flush-to-zero) gives 0 below ``ln(FLT_MIN)`` and a value below 1e-6 in
    between; so does OpenCV DNN.  A plain ``y e^y`` would emit denormals near ``y = -90``, which
    are common with random weights and slow the next convolution several times: yolov4 at 416
    took 744 ms instead of 524 ms on one core.  ``+inf`` gives NaN, where Darknet gives inf."""
    if not (y.is_contiguous() or y.is_contiguous(memory_format=torch.channels_last)):
        return y.copy_(mish_inplace(y.contiguous(memory_format=torch.channels_last), chunk))
    if chunk is None:
        chunk = chunk_floats()
    flat = y.permute(0, 2, 3, 1).reshape(-1) if not y.is_contiguous() else y.view(-1)
    h = torch.empty(min(chunk, flat.numel()), dtype=y.dtype, device=y.device)
    for v in flat.split(chunk):
        mish_into(v, v, h if v.numel() == h.numel() else h[: v.numel()])
    return y


def mish_into(src: Tensor, out: Tensor, h: Tensor) -> Tensor:
    """:func:`mish_inplace`'s formula on one chunk: ``mish(src)`` into ``out`` (``src``'s shape,
    may be ``src``), with ``h`` a scratch tensor of that shape."""
    torch.clamp(src, -MISH_EXP_RANGE, MISH_EXP_RANGE, out=h).exp_()
    torch.addcmul(h, h, h, value=0.5, out=h)  # h = e + e^2 / 2
    return torch.addcdiv(src, src, h.add_(1.0), value=-1.0, out=out)  # y - y / (1 + h)
