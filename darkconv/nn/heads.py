"""Torch modules for Darknet's output layers: softmax (groups, temperature, tree), yolo,
region, detection and cost.  All run their activations in the layer itself, as Darknet does
at inference (no truth, ``train=0``)."""

from __future__ import annotations

import struct
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from darkconv.nn.modules import activate, as_chw
from darkconv.nn.train_mode import DEFAULT_SEMANTICS, passthrough, region_backward

__all__ = [
    "darknet_softmax",
    "read_tree_groups",
    "Softmax",
    "Yolo",
    "Region",
    "RegionAB",
    "GaussianYolo",
    "Detection",
    "Cost",
]


def darknet_softmax(x: Tensor, dim: int, temperature: float = 1.0) -> Tensor:
    """blas.c ``softmax``: ``exp(x/t - max/t)`` divided by the float sum of the exps."""
    if temperature == 1.0:
        return torch.softmax(x, dim=dim)
    return torch.softmax(x / temperature, dim=dim)


def read_tree_groups(path: str) -> list[int]:
    """tree.c ``read_tree``: the sizes of the runs of consecutive lines with the same parent id
    (``name parent`` per line; the parent defaults to -1).  A run before the first parent change
    starts from parent -1, so a file whose first parent is not -1 begins with an empty group."""
    sizes: list[int] = []
    last_parent, run = -1, 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            fields = line.split()
            parent = -1
            if len(fields) > 1:
                try:
                    parent = int(fields[1])
                except ValueError:
                    parent = -1
            if parent != last_parent:
                sizes.append(run)
                run, last_parent = 0, parent
            run += 1
    sizes.append(run)
    return sizes


class LogisticHead(nn.Module):
    """``[logistic]`` (logistic_layer.c): ``y = logistic(x)``.  In training it is a cost layer
    (``logistic_x_ent_cpu``, loss in darkconv.train) and ``backward_logistic_layer`` adds its
    delta to the input's delta unchanged: no ``y(1-y)`` factor."""

    def __init__(self, math: str = "double") -> None:
        super().__init__()
        self.math = math

    def forward(self, x: Tensor) -> Tensor:
        y = activate(x, "logistic", self.math)
        return passthrough(x, y) if self.training else y


class Softmax(nn.Module):
    """``[softmax]`` (softmax_layer.c).  The flat input is split into ``groups`` contiguous chunks
    of ``inputs/groups`` values (not per pixel), each softmaxed with ``temperature``.  With a tree
    (``tree_groups`` = run lengths from :func:`read_tree_groups`) one softmax per run.  Values no
    group covers keep Darknet's initial 0.  A given ``error`` is raised by the forward."""

    def __init__(
        self,
        inputs: int,
        groups: int = 1,
        temperature: float = 1.0,
        tree_groups: Sequence[int] | None = None,
        error: Exception | None = None,
    ) -> None:
        super().__init__()
        self.inputs = inputs
        self.error = error
        self.temperature = float(temperature)
        if tree_groups is not None:
            self.sizes = [int(s) for s in tree_groups]
            self.uniform = 0
        else:
            n = inputs // groups
            self.sizes = [n] * groups
            self.uniform = n
        self.covered = sum(self.sizes)
        self.out_shape = (0, 0, 0)

    def forward(self, x: Tensor) -> Tensor:
        if self.error is not None:  # e.g. the tree file was missing when the model was built
            raise self.error
        b = x.shape[0]
        flat = x.reshape(b, self.inputs)
        if self.uniform:
            g = len(self.sizes)
            parts = [
                darknet_softmax(
                    flat[:, : self.covered].reshape(b, g, self.uniform), 2, self.temperature
                ).reshape(b, -1)
            ]
        else:
            parts, start = [], 0
            for size in self.sizes:
                if size:
                    parts.append(
                        darknet_softmax(flat[:, start : start + size], 1, self.temperature)
                    )
                start += size
        if self.covered < self.inputs:
            parts.append(flat.new_zeros(b, self.inputs - self.covered))
        y = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        # backward_softmax_layer adds l.delta (t - p) to the input's delta: no softmax Jacobian.
        return passthrough(flat, y) if self.training else y


class Yolo(nn.Module):
    act: Tensor  # which channels get the logistic (a buffer)
    scaled: Tensor  # which channels scale_x_y moves (a buffer)

    """``[yolo]`` (yolo_layer.c forward): a copy of the input with logistic on planes 0, 1 (x, y)
    and 4 .. 4+classes (objectness, classes) of each anchor's ``4+1+classes`` planes; w, h stay
    raw.  AlexeyAB: ``new_coords=1`` applies no logistic at all (the conv before it has
    ``activation=logistic``); then planes 0, 1 become ``x*scale_x_y - 0.5*(scale_x_y - 1)``
    (``scal_add_cpu``, identity for the default 1).  ``mask`` and ``anchors`` are kept for
    decoding; they do not affect the output.  ``math``: the logistic's formula table."""

    # per-anchor plane layout: (planes with logistic unless new_coords, planes scaled by scale_x_y)
    ENTRIES = 4 + 1
    LOGISTIC: tuple[int, ...] = (0, 1)  # plus every plane from 4 on
    SCALED: tuple[int, ...] = (0, 1)

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        classes: int,
        mask: Sequence[int],
        anchors: Sequence[float] = (),
        scale_x_y: float = 1.0,
        new_coords: bool = False,
        math: str = "double",
    ) -> None:
        super().__init__()
        c, h, w = in_shape
        self.in_shape = self.out_shape = (c, h, w)
        self.classes, self.n = classes, len(mask)
        self.mask = tuple(int(m) for m in mask)
        self.anchors = tuple(float(a) for a in anchors)
        self.scale_x_y, self.new_coords, self.math = float(scale_x_y), bool(new_coords), math
        entries = self.ENTRIES + classes
        if self.n * entries != c:
            raise ValueError(
                f"{type(self).__name__.lower()}: {c} channels != {self.n} anchors x "
                f"({self.ENTRIES} + {classes} classes)"
            )
        act = torch.zeros(entries, dtype=torch.bool)
        if not self.new_coords:
            act[list(self.LOGISTIC)] = True
            act[self.ENTRIES - 1 :] = True
        scaled = torch.zeros(entries, dtype=torch.bool)
        scaled[list(self.SCALED)] = True
        self.register_buffer("act", act.repeat(self.n).reshape(1, c, 1, 1), persistent=False)
        self.register_buffer("scaled", scaled.repeat(self.n).reshape(1, c, 1, 1), persistent=False)
        # scal_add_cpu(..., l.scale_x_y, -0.5*(l.scale_x_y - 1), ...): the float arguments
        self._beta = struct.unpack("f", struct.pack("f", -0.5 * (self.scale_x_y - 1.0)))[0]

    def forward(self, x: Tensor) -> Tensor:
        x = as_chw(x, self.in_shape)
        y = torch.where(self.act, activate(x, "logistic", self.math), x)
        if self.scale_x_y != 1.0:
            y = torch.where(self.scaled, y * self.scale_x_y + self._beta, y)
        # backward_yolo_layer adds l.delta to the input's delta with no logistic gradient.
        return passthrough(x, y) if self.training else y


class GaussianYolo(Yolo):
    """``[Gaussian_yolo]`` (gaussian_yolo_layer.c forward): ``8+1+classes`` planes per anchor
    (x mu, x sigma, y mu, y sigma, w mu, w sigma, h mu, h sigma, objectness, classes): logistic
    on all but the w and h means (planes 4 and 6); ``scale_x_y`` on the x and y means (0, 2)."""

    ENTRIES = 8 + 1
    LOGISTIC = (0, 1, 2, 3, 5, 7)
    SCALED = (0, 2)


class Region(nn.Module):
    act: Tensor  # which channels get the logistic (a buffer)
    trained: Tensor  # which channels backward_region_layer_gpu multiplies by y(1-y) (a buffer)

    """``[region]`` (region_layer.c, yolov2).  Per anchor block of ``coords+classes+1`` planes:
    logistic on planes 0, 1 and on objectness (plane ``coords``) unless ``background``; with
    ``softmax`` a softmax over the classes per cell (entries ``coords+1 ..``, or
    ``classes+1`` entries from ``coords`` with ``background``) read from the raw input, else
    logistic on the classes.  ``tree=`` regions are not supported (Darknet's CPU output is not
    usable there; the builder passes an ``error`` that the forward raises)."""

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        classes: int,
        coords: int = 4,
        num: int = 1,
        softmax: bool = False,
        background: bool = False,
        anchors: Sequence[float] = (),
        error: Exception | None = None,
    ) -> None:
        super().__init__()
        c, h, w = in_shape
        self.in_shape = self.out_shape = (c, h, w)
        self.error = error
        self.classes, self.coords, self.n = classes, coords, num
        self.softmax, self.background = bool(softmax), bool(background)
        self.anchors = tuple(float(a) for a in anchors)
        self.entries = coords + classes + 1
        if num * self.entries != c:
            raise ValueError(f"region: {c} channels != {num} x ({coords} + {classes} + 1)")
        act = torch.zeros(self.entries, dtype=torch.bool)
        act[0:2] = True
        if not self.background:
            act[coords] = True
        if not self.softmax:
            act[coords + 1 :] = True
        self.register_buffer("act", act.reshape(1, 1, -1, 1, 1), persistent=False)
        first = coords + (0 if self.background else 1)
        self.soft = (first, first + classes + int(self.background)) if self.softmax else None
        trained = torch.zeros(self.entries, dtype=torch.bool)  # backward_region_layer_gpu
        trained[0:2] = True
        trained[coords] = not self.background
        self.register_buffer("trained", trained.reshape(1, 1, -1, 1, 1), persistent=False)
        self.semantics = DEFAULT_SEMANTICS

    def forward(self, x: Tensor) -> Tensor:
        if self.error is not None:
            raise self.error
        b = x.shape[0]
        _, h, w = self.in_shape
        y = x.reshape(b, self.n, self.entries, h, w)
        out = torch.where(self.act, activate(y, "logistic"), y)
        if self.soft is not None:
            lo, hi = self.soft
            out = torch.cat(
                [out[:, :, :lo], darknet_softmax(y[:, :, lo:hi], 2), out[:, :, hi:]], dim=2
            )
        if self.training:
            out = region_backward(y, out, self.trained.expand_as(out), self.semantics)
        return out.reshape((b,) + self.in_shape)


class RegionAB(nn.Module):
    """AlexeyAB's ``[region]`` (region_layer.c forward_region_layer): the input is first
    transposed to cell-major order (``flatten``: ``[h*w][n*(coords+classes+1)]``), then the
    logistic is applied to entry 4 of each (cell, anchor) only and, with ``softmax``, a softmax
    over the ``classes`` entries from 5 on; x and y stay raw.  The output keeps the layer's
    ``(c, h, w)`` shape but holds that cell-major data, as Darknet's buffer does.  ``tree=`` is
    not supported (the builder passes an ``error``)."""

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        classes: int,
        coords: int = 4,
        num: int = 1,
        softmax: bool = False,
        anchors: Sequence[float] = (),
        error: Exception | None = None,
        math: str = "float",
    ) -> None:
        super().__init__()
        c, h, w = in_shape
        self.in_shape = self.out_shape = (c, h, w)
        self.error, self.math = error, math
        self.classes, self.coords, self.n = classes, coords, num
        self.softmax = bool(softmax)
        self.anchors = tuple(float(a) for a in anchors)
        self.entries = coords + classes + 1
        if num * self.entries != c:
            raise ValueError(f"region: {c} channels != {num} x ({coords} + {classes} + 1)")

    def forward(self, x: Tensor) -> Tensor:
        if self.error is not None:
            raise self.error
        b = x.shape[0]
        c, h, w = self.in_shape
        y = x.reshape(b, c, h * w).transpose(1, 2).reshape(b, h * w * self.n, self.entries)
        parts = [y[..., :4], activate(y[..., 4:5], "logistic", self.math)]
        if self.softmax:
            parts += [darknet_softmax(y[..., 5 : 5 + self.classes], 2), y[..., 5 + self.classes :]]
        else:
            parts.append(y[..., 5:])
        return torch.cat(parts, dim=2).reshape(b, c, h, w)


class Detection(nn.Module):
    """``[detection]`` (detection_layer.c, yolov1): a copy of the input; with ``softmax`` each of
    the first ``side*side`` chunks of ``classes`` values is softmaxed.  Dims are reported 0."""

    def __init__(self, inputs: int, classes: int, side: int, softmax: bool = False) -> None:
        super().__init__()
        self.inputs, self.classes, self.side = inputs, classes, side
        self.softmax = bool(softmax)
        self.out_shape = (0, 0, 0)

    def forward(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        flat = x.reshape(b, self.inputs)
        if not self.softmax:
            return flat
        n = self.side * self.side * self.classes
        probs = darknet_softmax(flat[:, :n].reshape(b, self.side * self.side, self.classes), 2)
        y = torch.cat([probs.reshape(b, n), flat[:, n:]], dim=1)
        # backward_detection_layer: the delta goes to the input as is (no softmax Jacobian).
        return passthrough(flat, y) if self.training else y


class Cost(nn.Module):
    """``[cost]`` at inference: there is no truth, so Darknet leaves its output buffer all zeros."""

    def __init__(self, inputs: int) -> None:
        super().__init__()
        self.inputs = inputs
        self.out_shape = (0, 0, 0)

    def forward(self, x: Tensor) -> Tensor:
        return x.new_zeros(x.shape[0], self.inputs)
