"""Torch modules for Darknet's pooling layers: ``[maxpool]`` (with AlexeyAB's ``maxpool_depth``,
``stride_x``/``stride_y`` and antialiasing), ``[local_avgpool]`` and the global ``[avgpool]``.

Like :mod:`darkconv.nn.modules`, each module takes plain Python values and reshapes its input from
Darknet's flat buffer order to the dims it was built for.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from darkconv.nn.modules import Blur, as_chw, conv_out, shape3

__all__ = ["MaxPool", "LocalAvgPool", "AvgPool", "FLT_MAX"]

Shape3 = tuple[int, int, int]
FLT_MAX = 3.4028234663852886e38


def _representable(x: Tensor, value: float) -> float:
    """``value`` clamped to ``x``'s dtype: float16/bfloat16 cannot hold -FLT_MAX, and their
    lowest finite value plays its role (F.pad refuses a value that overflows)."""
    info = torch.finfo(x.dtype)
    return min(max(value, info.min), info.max)


def _window_pad(
    x: Tensor, in_hw: tuple[int, int], out_hw: tuple[int, int], size: int,
    strides: tuple[int, int], padding: int, value: float,
) -> Tensor:  # fmt: skip
    """Pad for Darknet's pooling windows: they start at ``-padding/2`` and the last one may run
    past the bottom/right edge; ``value`` fills what lies outside the image."""
    (h, w), (oh, ow), (sy, sx) = in_hw, out_hw, strides
    value = _representable(x, value)
    off = padding // 2
    right = max(0, (ow - 1) * sx + size - w - off)
    bottom = max(0, (oh - 1) * sy + size - h - off)
    if off or right or bottom:
        x = F.pad(x, (off, right, off, bottom), value=value)
    return x


#: window size from which :class:`MaxPool` takes the max in two 1-D passes at inference:
#: measured on 512 x 13 x 13 maps, 2 threads, channels_last: 3x3 is as fast in one 2-D pass,
#: 5x5 1.4x and 13x13 4.7x faster in two.
_SEPARABLE_FROM = 5


class _Windows(nn.Module):
    """Darknet's pooling windows (maxpool_layer.c; AlexeyAB's local_avgpool copies them):
    ``size``, ``stride`` (horizontal), ``stride_y`` (default ``stride``) and the TOTAL
    ``padding``; ``windows_hw`` is how many fit down and across."""

    def __init__(
        self, in_shape: Shape3, size: int, stride: int, padding: int, stride_y: int | None
    ) -> None:
        super().__init__()
        c, h, w = in_shape
        sy = stride if stride_y is None else stride_y
        self.in_shape = (c, h, w)
        self.size, self.stride, self.stride_y, self.padding = size, stride, sy, padding
        self.windows_hw = ((h + padding - size) // sy + 1, (w + padding - size) // stride + 1)

    def _pad(self, x: Tensor, value: float) -> Tensor:
        """``x`` padded with ``value`` so that every window lies inside it."""
        strides = (self.stride_y, self.stride)
        return _window_pad(
            x, self.in_shape[1:], self.windows_hw, self.size, strides, self.padding, value
        )


class MaxPool(_Windows):
    """``[maxpool]`` (maxpool_layer.c).  ``padding`` is the TOTAL padding; output
    ``(w + padding - size)/stride_x + 1``; windows start at ``-padding/2``; cells outside the
    image count as ``-FLT_MAX`` (so an all-padding window outputs -3.4028235e38).  ``stride`` is
    the horizontal stride, ``stride_y`` the vertical one (AlexeyAB; default ``stride``).
    ``out_channels`` (AlexeyAB ``maxpool_depth=1``): size and stride are ignored and output plane
    ``g`` is the max over input channels ``g, g+out_channels, ...``.  ``antialias``: max at
    stride 1, then the fixed blur (:class:`~darkconv.nn.modules.Blur`)."""

    def __init__(
        self,
        in_shape: Shape3,
        size: int,
        stride: int,
        padding: int,
        *,
        stride_y: int | None = None,
        out_channels: int | None = None,
        antialias: tuple[int, int, int, int] | None = None,
    ) -> None:
        super().__init__(in_shape, size, stride, padding, stride_y)
        c, h, w = in_shape
        self.depth = out_channels
        self.out_shape: Shape3 = (out_channels, h, w) if out_channels else (c, *self.windows_hw)
        self.pool_shape = self.out_shape
        self.blur = Blur(c, antialias) if antialias else None
        if antialias:
            bs, bsx, bsy, bp = antialias
            _, oh, ow = self.out_shape
            self.out_shape = (c, conv_out(oh, bs, bsy, bp), conv_out(ow, bs, bsx, bp))

    def forward(self, x: Tensor) -> Tensor:
        x = as_chw(x, self.in_shape)
        if self.depth:
            # forward_maxpool_layer, maxpool_depth: channels k = g, g+out_channels, ... per plane
            b, c, h, w = x.shape
            groups = -(-c // self.depth)
            x = F.pad(
                x, (0, 0, 0, 0, 0, groups * self.depth - c), value=_representable(x, -FLT_MAX)
            )
            return x.reshape(b, groups, self.depth, h, w).amax(dim=1)
        _, oh, ow = self.pool_shape
        k, strides = self.size, (self.stride_y, self.stride)
        x = self._pad(x, -FLT_MAX)
        if k >= _SEPARABLE_FROM and not (torch.is_grad_enabled() and x.requires_grad):
            # the max of a k x k window is the max over its columns' maxima: 2k comparisons
            # instead of k^2, the same values (yolov4's SPP, 13x13 at 13x13: 2.1 -> 0.45 ms);
            # not under autograd, where a tie could send the gradient to another cell than
            # Darknet's first-in-row-order maximum
            y = F.max_pool2d(F.max_pool2d(x, (k, 1), (strides[0], 1)), (1, k), (1, strides[1]))
        else:
            y = F.max_pool2d(x, k, strides)
        y = y[:, :, :oh, :ow]
        return self.blur(y) if self.blur is not None else y


class LocalAvgPool(_Windows):
    """``[local_avgpool]`` (AlexeyAB, forward_local_avgpool_layer): maxpool's windows, strides
    and defaults, each output the float average of the window's cells inside the image."""

    def __init__(
        self, in_shape: Shape3, size: int, stride: int, padding: int, stride_y: int | None = None
    ) -> None:
        super().__init__(in_shape, size, stride, padding, stride_y)
        self.out_shape = (in_shape[0], *self.windows_hw)

    def forward(self, x: Tensor) -> Tensor:
        x = as_chw(x, self.in_shape)
        _, oh, ow = self.out_shape
        strides = (self.stride_y, self.stride)
        ones = torch.ones_like(x[:1, :1])
        sums, counts = (
            F.avg_pool2d(self._pad(t, 0.0), self.size, strides, divisor_override=1)[:, :, :oh, :ow]
            for t in (x, ones)
        )
        return sums / counts


class AvgPool(nn.Module):
    """``[avgpool]`` (avgpool_layer.c): always global; float sum over h*w divided by h*w."""

    def __init__(self, in_shape: Shape3) -> None:
        super().__init__()
        self.in_shape = shape3(in_shape)
        self.out_shape = (in_shape[0], 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = as_chw(x, self.in_shape)
        _, h, w = self.in_shape
        return x.sum(dim=(2, 3), keepdim=True) / (h * w)
