"""What the torch modules do in ``model.train()``: Darknet's training forward and, through small
autograd Functions, the backward Darknet runs (which is not always the gradient of the forward).

Two semantics, chosen per model with :meth:`DarknetModel.set_semantics` (data, not ``if`` chains):

* ``cpu``: stock CPU Darknet (``forward_batchnorm_layer``/``backward_batchnorm_layer``,
  ``backward_convolutional_layer``, the commented-out ``backward_region_layer``);
* ``gpu`` (default): the CUDA/cuDNN build (``cudnnBatchNormalizationForwardTraining``/``Backward``,
  ``cudnnConvolutionBackwardData`` with beta = 1, ``backward_region_layer_gpu``).

``model.eval()`` never reads any of this.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from darkconv.nn.activations import activate

__all__ = [
    "Semantics",
    "SEMANTICS",
    "semantics_named",
    "MECHANISMS",
    "batch_norm_train",
    "activate_train",
    "passthrough",
    "scaled_passthrough",
    "region_backward",
    "Dropout",
    "overwritten_sources",
    "WRITER_OPTION",
    "train_forward",
]


@dataclass(frozen=True)
class Semantics:
    """One training semantics: the mechanisms in which Darknet's CPU and GPU builds differ."""

    name: str
    bn: str  # "darknet_cpu": sqrt(var_unbiased)+1e-6 forward, sqrt(var+1e-5) backward; "cudnn"
    conv1x1_overwrites: bool  # a 1x1 conv's backward overwrites the previous layer's delta
    region_trains: bool  # [region] passes its delta back (x, y, objectness times y(1-y))


SEMANTICS: dict[str, Semantics] = {
    "cpu": Semantics("cpu", bn="darknet_cpu", conv1x1_overwrites=True, region_trains=False),
    "gpu": Semantics("gpu", bn="cudnn", conv1x1_overwrites=False, region_trains=True),
}
DEFAULT_SEMANTICS = SEMANTICS["gpu"]
BN_MOMENTUM = 0.01  # rolling = .99*rolling + .01*batch (scal_cpu/axpy_cpu; cuDNN factor .01)
CUDNN_EPS = 1e-5


# The mechanisms by which the semantics differ: name -> Semantics field.
MECHANISMS = {"bn": "bn", "conv1x1": "conv1x1_overwrites", "region": "region_trains"}


def semantics_named(name: str) -> Semantics:
    """``cpu``, ``gpu``, or a base plus the other build's mechanisms: ``cpu+region`` is stock CPU
    Darknet with the GPU build's region backward (the ``region_loss_gpu_backward`` fixture)."""
    base, *extra = name.split("+")
    if base not in SEMANTICS or any(m not in MECHANISMS for m in extra):
        raise ValueError(
            f"semantics must be one of {tuple(SEMANTICS)}, optionally +"
            f"{'/+'.join(MECHANISMS)} from the other one; got {name!r}"
        )
    sem = SEMANTICS[base]
    if extra:
        other = SEMANTICS["gpu" if base == "cpu" else "cpu"]
        fields = {MECHANISMS[m]: getattr(other, MECHANISMS[m]) for m in extra}
        sem = dataclasses.replace(sem, name=name, **fields)
    return sem


# --- batch norm ----------------------------------------------------------------------------------


def _dims(x: Tensor) -> list[int]:
    return [0] + list(range(2, x.dim()))


def _view(t: Tensor, x: Tensor) -> Tensor:
    return t.reshape((1, -1) + (1,) * (x.dim() - 2))


class _DarknetCpuBN(torch.autograd.Function):
    """forward_batchnorm_layer / backward_batchnorm_layer (batchnorm_layer.c, blas.c).

    Forward: ``normalize_cpu`` with the unbiased (N-1) batch variance: pjreddie's
    ``(x - mean) / (sqrt(var) + 1e-6)`` (AlexeyAB's ``sqrt(var + 1e-5)``: ``eps``).  Backward:
    ``bias += sum(d)``, ``scale += sum(d * x_norm)``, then mean_delta/variance_delta/normalize_delta
    with ``sqrt(var + 1e-5)`` and divisor N: that is exactly aten's batch-norm input gradient with
    ``invstd = 1/sqrt(var + 1e-5)``, so it is computed by ``native_batch_norm_backward``."""

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        mean: Tensor,
        var: Tensor,
        eps: tuple[float, bool],
    ) -> Tensor:
        value, inside = eps
        denom = torch.sqrt(var + value) if inside else torch.sqrt(var) + value
        y = F.batch_norm(x, mean, denom * denom, weight, bias, False, 0.0, 0.0)
        ctx.save_for_backward(x, weight, mean, var, denom)
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, weight, mean, var, denom = ctx.saved_tensors
        invstd = torch.rsqrt(var + CUDNN_EPS)
        gx, gw, gb = torch.ops.aten.native_batch_norm_backward(
            grad.contiguous(), x, weight, None, None, mean, invstd, True, CUDNN_EPS,
            [True, True, ctx.has_bias],
        )  # fmt: skip
        # aten's weight gradient is sum(grad*(x-mean))*invstd; Darknet uses the forward's x_norm.
        gw = gw / (invstd * denom)
        return gx, gw, gb if ctx.has_bias else None, None, None, None


def batch_norm_train(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    running_mean: Tensor,
    running_var: Tensor,
    semantics: Semantics,
    eps: tuple[float, bool] = (1e-6, False),
) -> Tensor:
    """Batch norm with this batch's statistics; updates the rolling statistics in place.
    ``eps`` (value, inside the square root) is the forward's epsilon in the CPU semantics: the
    module's inference formula, as Darknet's training forward calls the same ``normalize_cpu``."""
    if semantics.bn == "cudnn":
        return F.batch_norm(
            x, running_mean, running_var, weight, bias, True, BN_MOMENTUM, CUDNN_EPS
        )
    dims = _dims(x)
    with torch.no_grad():
        var, mean = torch.var_mean(x, dim=dims, correction=1)
        running_mean.mul_(1 - BN_MOMENTUM).add_(mean * BN_MOMENTUM)
        running_var.mul_(1 - BN_MOMENTUM).add_(var * BN_MOMENTUM)
    return _DarknetCpuBN.apply(x, weight, bias, mean, var, eps)


# --- activations ---------------------------------------------------------------------------------

# In training these run in place on the fresh BN/bias output: autograd then keeps only the output
# and takes the gradient from it, which is what Darknet's gradient_array does (y > 0 ? 1 : .1).
INPLACE_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "leaky": lambda y: F.leaky_relu_(y, 0.1),
    "relu": F.relu_,
    "linear": lambda y: y,
}


def activate_train(y: Tensor, name: str, math: str = "double") -> Tensor:
    """The layer activation in ``train()``: in place where :data:`INPLACE_ACTIVATIONS` allows
    (one feature map less kept per layer; both formula tables agree on these), else
    :func:`darkconv.nn.activations.activate`."""
    fn = INPLACE_ACTIVATIONS.get(name)
    return fn(y) if fn is not None else activate(y, name, math)


# --- heads: Darknet's backward is not the forward's Jacobian ------------------------------------


class _Passthrough(torch.autograd.Function):
    """Value ``y``, gradient handed to ``x`` unchanged (times ``factor`` when given): Darknet's
    softmax/yolo/detection backward (``axpy_cpu(..., 1, l.delta, 1, net.delta, 1)``)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, y: Tensor, factor: Tensor | None) -> Tensor:
        ctx.save_for_backward(factor)
        ctx.shape = x.shape
        return y.detach().clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        (factor,) = ctx.saved_tensors
        g = grad if factor is None else grad * factor
        return g.reshape(ctx.shape), None, None


def passthrough(x: Tensor, y: Tensor) -> Tensor:
    """``y`` whose backward passes the incoming delta straight to ``x`` (same number of values)."""
    return _Passthrough.apply(x, y, None)


def scaled_passthrough(x: Tensor, y: Tensor, factor: Tensor) -> Tensor:
    """``y`` whose backward hands ``delta * factor`` to ``x`` (a diagonal "Jacobian")."""
    return _Passthrough.apply(x, y, factor.detach())


def region_backward(x: Tensor, y: Tensor, logistic: Tensor, semantics: Semantics) -> Tensor:
    """``[region]`` in training.  CPU ``backward_region_layer`` is commented out: no delta reaches
    the network.  ``backward_region_layer_gpu`` multiplies the x, y and objectness deltas (the
    ``logistic`` mask) by ``y(1-y)`` and adds the delta to the previous layer."""
    if not semantics.region_trains:
        return y.detach()
    y = y.detach()
    factor = torch.where(logistic, (1 - y) * y, torch.ones_like(y))
    return _Passthrough.apply(x, y, factor)


# --- dropout -------------------------------------------------------------------------------------

RandSource = Callable[[int, torch.device], Tensor]


class Dropout(nn.Module):
    """``[dropout]`` (dropout_layer.c).  Inference: the previous output unchanged.  Training: one
    uniform number per element (``rand_uniform(0, 1)``, torch.rand unless ``rand`` is set, e.g.
    a glibc ``rand()`` replay); ``r < p`` -> 0, else times ``1/(1-p)`` (float).  Darknet writes
    the result into the previous layer's buffer; the model's training forward rewires that."""

    def __init__(self, probability: float = 0.5) -> None:
        super().__init__()
        self.probability = float(probability)
        self.scale = float(np.float32(1.0) / (np.float32(1.0) - np.float32(self.probability)))
        self.rand: RandSource | None = None
        self.last_rand: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        n = x.numel()
        r = self.rand(n, x.device) if self.rand is not None else torch.rand(n, device=x.device)
        r = r.reshape(x.shape).to(x.dtype)
        self.last_rand = r
        return torch.where(r < self.probability, torch.zeros_like(x), x * self.scale)

    def extra_repr(self) -> str:
        return f"probability={self.probability}"


# --- the graph: which deltas a CPU 1x1 convolution erases ---------------------------------------


# Backward functions that WRITE the previous layer's delta instead of adding to it, erasing what
# later readers of that layer (a shortcut, a route) had added: type -> (conv size, semantics'
# conv1x1_overwrites) -> whether it writes.
DELTA_WRITERS: dict[str, Callable[[int | None, bool], bool]] = {
    # backward_convolutional_layer, size 1: gemm into net.delta with beta 0 (cuDNN: beta 1)
    "convolutional": lambda size, conv1x1: conv1x1 and size == 1,
    # backward_reorg_layer: reorg_cpu / flatten assign (both builds)
    "reorg": lambda size, conv1x1: True,
    # backward_batchnorm_layer of a [batchnorm] layer: copy_cpu(l.delta -> net.delta)
    "batchnorm": lambda size, conv1x1: True,
    # backward_activation_layer: copy_cpu(l.delta -> net.delta) (copy_gpu on the GPU)
    "activation": lambda size, conv1x1: True,
    # backward_normalization_layer: pow_cpu(norms -> net.delta), then mul_cpu (both builds)
    "normalization": lambda size, conv1x1: True,
    # backward_upsample_layer with a negative stride (reverse): upsample_cpu(..., forward=1, ...)
    # assigns the previous delta
    "upsample": lambda stride, conv1x1: stride is not None and stride < 0,
}
# The layer option handed to a DELTA_WRITERS rule as its first argument.
WRITER_OPTION: dict[str, str] = {"convolutional": "size", "upsample": "stride"}


def overwritten_sources(
    types: Sequence[str],
    sources: Sequence[Sequence[int]],
    sizes: Sequence[int | None],
    conv1x1: bool = True,
) -> dict[int, frozenset[int]]:
    """Per consumer layer, the sources whose gradient Darknet drops because a layer in
    :data:`DELTA_WRITERS` later (in backward order: earlier in the net) writes that source's delta
    instead of adding to it (the training forward detaches them for that consumer).  A
    ``[dropout]`` shares its buffer with the layer before it: the chain counts as one buffer."""

    def root(k: int) -> int:
        while k > 0 and types[k] == "dropout":
            k -= 1
        return k

    plan: dict[int, set[int]] = {}
    for i, kind in enumerate(types):
        writes = DELTA_WRITERS.get(kind)
        if writes is None or i == 0 or not writes(sizes[i], conv1x1):
            continue
        group = root(i - 1)
        for j in range(i + 1, len(types)):
            hit = {s for s in sources[j] if s >= 0 and root(s) == group}
            if types[j] == "dropout" or not hit:
                continue
            plan.setdefault(j, set()).update(hit)
    return {j: frozenset(s) for j, s in plan.items()}


def train_forward(model: Any, x: Tensor) -> list[Tensor | None]:
    """forward_network with ``net.train = 1``: every layer's output (a list like ``model.layers``).

    A ``[dropout]`` rewrites its input layer's buffer, so later readers of that layer see the
    dropped values.  The sources in ``model.overwrites[semantics.conv1x1_overwrites]`` are
    detached for their later readers (:func:`overwritten_sources`)."""
    cut = model.overwrites[model.semantics.conv1x1_overwrites]
    outs: list[Tensor | None] = [None] * len(model.layers)  # as each layer produced it
    buf: list[Tensor | None] = [None] * len(model.layers)  # Darknet's buffers (after dropout)
    for i, layer in enumerate(model.layers):
        drop = cut.get(i, ())
        args = []
        for s in model.sources[i]:
            t = x if s < 0 else buf[s]
            args.append(t.detach() if s in drop else t)
        y = layer(*args)
        if any(y is a for a in args):  # a pass-through layer (1-input route): its own node
            y = y.view_as(y)
        outs[i] = buf[i] = y
        k = i
        while model.types[k] == "dropout" and k > 0:  # dropout_layer.c: in place
            k -= 1
            buf[k] = y
    return outs
