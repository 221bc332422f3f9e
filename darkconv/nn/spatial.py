"""Torch modules for Darknet's parameterless layers that move or combine values: route,
shortcut, upsample, reorg, crop, l2norm and LRN (``[normalization]``); the pools are in
:mod:`darkconv.nn.pool`.

Like :mod:`darkconv.nn.modules`, each module takes plain Python values and reshapes its input from
Darknet's flat buffer order to the dims it was built for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from darkconv.nn.modules import activate, as_chw, shape3
from darkconv.nn.train_mode import passthrough, scaled_passthrough

__all__ = [
    "Reorg3d",
    "Route",
    "Shortcut",
    "Upsample",
    "Reorg",
    "Crop",
    "L2Norm",
    "Normalization",
]

Shape3 = tuple[int, int, int]


class Route(nn.Module):
    """``[route]`` (route_layer.c): concatenates the sources' flat buffers in the listed order.
    When every source has the first one's h and w this is a channel concat; otherwise Darknet
    reports dims 0 and the output is the flat ``(B, outputs)`` vector.  AlexeyAB's ``groups``:
    each source's flat buffer is cut into ``groups`` equal parts and part ``group_id`` is taken
    (a channel split when the channels divide)."""

    def __init__(self, out_shape: Shape3, groups: int = 1, group_id: int = 0) -> None:
        super().__init__()
        self.out_shape = tuple(out_shape)
        self.groups, self.group_id = groups, group_id

    def _part(self, x: Tensor) -> Tensor:
        if self.groups == 1:
            return x
        b, g, k = x.shape[0], self.groups, self.group_id
        if x.dim() == 4 and x.shape[1] % g == 0:
            n = x.shape[1] // g
            return x[:, k * n : (k + 1) * n]
        flat = x.reshape(b, -1)
        n = flat.shape[1] // g
        return flat[:, k * n : (k + 1) * n]

    def forward(self, *xs: Tensor) -> Tensor:
        xs = tuple(self._part(x) for x in xs)
        b = xs[0].shape[0]
        c, h, w = self.out_shape
        if c and h and w and all(x.dim() == 4 and x.shape[2:] == (h, w) for x in xs):
            return xs[0] if len(xs) == 1 else torch.cat(xs, dim=1)
        flat = torch.cat([x.reshape(b, -1) for x in xs], dim=1)
        return flat.reshape(b, c, h, w) if c * h * w == flat.shape[1] else flat


class Shortcut(nn.Module):
    """``[shortcut]`` (shortcut_layer.c, blas.c shortcut_cpu).  ``out = copy(prev)``, then for
    ``c < min(c)``, ``y < min(h)``, ``x < min(w)``:
    ``out[c][y*sample][x*sample] = alpha*out[...] + beta*from[c][y*stride][x*stride]`` with
    ``stride = max(1, w_from/w_prev)``, ``sample = max(1, w_prev/w_from)``; then the activation
    over everything.  Channels and pixels outside that range are copied unchanged."""

    def __init__(
        self,
        in_shape: Shape3,
        from_shape: Shape3,
        activation: str = "linear",
        alpha: float = 1.0,
        beta: float = 1.0,
        math: str = "double",
    ) -> None:
        super().__init__()
        self.math = math
        self.in_shape = shape3(in_shape)
        self.from_shape = shape3(from_shape)
        self.out_shape = self.in_shape
        self.activation = activation
        self.alpha, self.beta = float(alpha), float(beta)
        c2, h2, w2 = self.in_shape
        c1, h1, w1 = self.from_shape
        self.stride = max(1, w1 // w2)
        self.sample = max(1, w2 // w1)
        self.minc, self.minh, self.minw = min(c1, c2), min(h1, h2), min(w1, w2)
        self.plain = self.in_shape == self.from_shape

    def forward(self, x: Tensor, src: Tensor) -> Tensor:
        x = as_chw(x, self.in_shape)
        src = as_chw(src, self.from_shape)
        if self.plain:
            y = self._combine(x, src)
        else:
            st, sa = self.stride, self.sample
            add = src[:, : self.minc, : self.minh * st : st, : self.minw * st : st]
            y = x.clone()
            part = y[:, : self.minc, : self.minh * sa : sa, : self.minw * sa : sa]
            y[:, : self.minc, : self.minh * sa : sa, : self.minw * sa : sa] = self._combine(
                part, add
            )
            if self.training and self.alpha != 1.0:
                # backward_shortcut_layer scales the WHOLE previous delta by alpha, also where
                # the forward copied x unchanged: add (alpha - 1) * x there with value 0.
                outside = torch.ones_like(x)
                outside[:, : self.minc, : self.minh * sa : sa, : self.minw * sa : sa] = 0
                y = y + (self.alpha - 1.0) * (x - x.detach()) * outside
        return activate(y, self.activation, self.math)

    def _combine(self, out: Tensor, add: Tensor) -> Tensor:
        if self.alpha == 1.0 and self.beta == 1.0:
            return out + add
        return self.alpha * out + self.beta * add


class Upsample(nn.Module):
    """``[upsample]`` (upsample_layer.c).  Positive ``stride``: nearest neighbour times
    ``scale``.  Negative stride ``-s``: each output is ``scale * sum`` of an s x s block, where
    Darknet indexes the input with row width ``out_w*s`` (only meaningful when h and w are
    divisible by s; we read the flat buffer the same way)."""

    def __init__(self, in_shape: Shape3, stride: int = 2, scale: float = 1.0) -> None:
        super().__init__()
        c, h, w = in_shape
        self.in_shape = (c, h, w)
        self.reverse = stride < 0
        self.s = abs(stride)
        self.scale = float(scale)
        if self.reverse:
            self.out_shape = (c, h // self.s, w // self.s)
        else:
            self.out_shape = (c, h * self.s, w * self.s)

    def forward(self, x: Tensor) -> Tensor:
        b, s = x.shape[0], self.s
        c, oh, ow = self.out_shape
        if self.reverse:
            flat = x.reshape(b, -1)[:, : c * oh * s * ow * s]
            y = flat.reshape(b, c, oh, s, ow, s).sum(dim=(3, 5))
        else:
            _, h, w = self.in_shape
            x = as_chw(x, self.in_shape)
            if x.is_contiguous() or not x.is_contiguous(memory_format=torch.channels_last):
                y = x[:, :, :, None, :, None].expand(b, c, h, s, w, s).reshape(b, c, oh, ow)
            else:  # channels_last in, channels_last out (for the next layer's oneDNN kernel)
                hwc = x.permute(0, 2, 3, 1)[:, :, None, :, None, :].expand(b, h, s, w, s, c)
                y = hwc.reshape(b, oh, ow, c).permute(0, 3, 1, 2)
        return y * self.scale if self.scale != 1.0 else y


class Reorg(nn.Module):
    """``[reorg]`` (reorg_layer.c, blas.c reorg_cpu / flatten).  Darknet's order is not
    ``pixel_unshuffle``: the input is read as ``(C/s^2, H, s, W, s)`` and permuted
    ``(2, 4, 0, 1, 3)``; ``reverse`` is the inverse, ``flatten`` turns CHW into HWC (HWC into CHW
    with ``reverse``), ``extra=k`` appends k zeros (dims 0)."""

    def __init__(
        self,
        in_shape: Shape3,
        stride: int = 1,
        reverse: bool = False,
        flatten: bool = False,
        extra: int = 0,
    ) -> None:
        super().__init__()
        c, h, w = in_shape
        self.in_shape = (c, h, w)
        self.s, self.reverse, self.flatten, self.extra = stride, bool(reverse), bool(flatten), extra
        s = stride
        if reverse:
            self.out_shape: Shape3 = (c // (s * s), h * s, w * s)
        else:
            self.out_shape = (c * s * s, h // s, w // s)
        if extra:
            self.out_shape = (0, 0, 0)

    def forward(self, x: Tensor) -> Tensor:
        b, s = x.shape[0], self.s
        c, h, w = self.in_shape
        if self.flatten:
            x = as_chw(x, self.in_shape)
            # flatten(..., forward=1): CHW -> HWC; with reverse (forward=0): HWC -> CHW
            y = x.reshape(b, h * w, c).transpose(1, 2) if self.reverse else x.permute(0, 2, 3, 1)
            return y.reshape((b,) + self.out_shape)
        if self.extra:
            flat = x.reshape(b, -1)
            return torch.cat([flat, flat.new_zeros(b, self.extra)], dim=1)
        if self.reverse:
            y = x.reshape(b, s, s, c // (s * s), h, w).permute(0, 3, 4, 1, 5, 2)
        else:
            y = x.reshape(b, c // (s * s), h, s, w, s).permute(0, 3, 5, 1, 2, 4)
        return y.reshape((b,) + self.out_shape)


class Reorg3d(nn.Module):
    """``[reorg3d]`` (AlexeyAB reorg_layer.c, blas.c reorg_cpu).  Forward: true space-to-depth,
    ``out[(dy*s+dx)*C + c, j, i] = x[c, j*s+dy, i*s+dx]``.  ``reverse``: ``reorg_cpu`` runs
    with the layer's (larger) output dims, so it reads ``in_c = c/s^4`` channels and the result is
    the permutation ``out[c2, j*s+o/s, i*s+o%s] = x[o*in_c + c2, j, i]`` over the flat
    buffers, with ``(out_c, H, W)`` the output dims viewed as ``(s*s, in_c, H, W)``."""

    def __init__(self, in_shape: Shape3, stride: int = 2, reverse: bool = False) -> None:
        super().__init__()
        c, h, w = in_shape
        s = stride
        self.in_shape, self.s, self.reverse = (c, h, w), s, bool(reverse)
        if reverse:
            self.out_shape: Shape3 = (c // (s * s), h * s, w * s)
            if self.out_shape[0] < s * s:  # in_c = 0: Darknet divides by zero (SIGFPE)
                raise ValueError(f"reorg3d reverse: {c} channels is not divisible by {s}^4")
        else:
            self.out_shape = (c * s * s, h // s, w // s)

    def forward(self, x: Tensor) -> Tensor:
        b, s = x.shape[0], self.s
        oc, oh, ow = self.out_shape
        if self.reverse:
            in_c = oc // (s * s)
            flat = x.reshape(b, -1)[:, : s * s * in_c * oh * ow]
            y = flat.reshape(b, s, s, in_c, oh, ow).permute(0, 3, 4, 1, 5, 2)
        else:
            c, h, w = self.in_shape
            y = as_chw(x, self.in_shape)[:, :, : oh * s, : ow * s]
            y = y.reshape(b, c, oh, s, ow, s).permute(0, 3, 5, 1, 2, 4)
        return y.reshape(b, oc, oh, ow)


class Crop(nn.Module):
    """``[crop]`` (crop_layer.c forward_crop_layer) of ``value*2-1`` (plain value with
    ``noadjust``).  Inference: centre crop ``dh=(h-ch)/2, dw=(w-cw)/2``, no flip.  Training: one
    draw per forward for the whole batch, in Darknet's order: ``flip = flip && rand()%2`` (no draw
    without ``flip``), ``dh = rand()%(h-ch+1)``, ``dw = rand()%(w-cw+1)``; a flip mirrors the window
    (column ``w-dw-1-j``).  ``rand_ints(n)`` gives glibc ``rand()`` values (a replay), else torch
    draws.  Angle and colour jitter are not applied by this CPU forward."""

    def __init__(
        self,
        in_shape: Shape3,
        crop_height: int,
        crop_width: int,
        noadjust: bool = False,
        flip: bool = False,
    ) -> None:
        super().__init__()
        c, h, w = in_shape
        self.in_shape = (c, h, w)
        self.out_shape = (c, crop_height, crop_width)
        self.dh, self.dw = (h - crop_height) // 2, (w - crop_width) // 2
        self.noadjust = bool(noadjust)
        self.flip = bool(flip)
        self.rand_ints: Callable[[int], Sequence[int]] | None = None

    def _draw(self, n: int) -> list[int]:
        if self.rand_ints is not None:
            return [int(v) for v in self.rand_ints(n)]
        return [int(v) for v in torch.randint(0, 2**31 - 1, (n,))]

    def forward(self, x: Tensor) -> Tensor:
        x = as_chw(x, self.in_shape)
        _, ch, cw = self.out_shape
        _, h, w = self.in_shape
        dh, dw, flip = self.dh, self.dw, False
        if self.training:
            if self.flip:
                flip = self._draw(1)[0] % 2 == 1
            r = self._draw(2)
            dh, dw = r[0] % (h - ch + 1), r[1] % (w - cw + 1)
        if flip:
            y = x[:, :, dh : dh + ch, w - dw - cw : w - dw].flip(-1)
        else:
            y = x[:, :, dh : dh + ch, dw : dw + cw]
        return y if self.noadjust else y * 2 - 1


class L2Norm(nn.Module):
    """``[l2norm]`` (blas.c l2normalize_cpu): ``x / sqrt(sum_c x^2)`` per pixel, no epsilon."""

    def __init__(self, in_shape: Shape3) -> None:
        super().__init__()
        self.in_shape = self.out_shape = shape3(in_shape)

    def forward(self, x: Tensor) -> Tensor:
        flat = x
        x = as_chw(x, self.in_shape)
        y = x / torch.sqrt((x * x).sum(dim=1, keepdim=True))
        # backward_l2norm_layer adds l.delta to the input's delta unchanged (the l.scales
        # Jacobian line is commented out): the gradient passes straight through.
        return passthrough(flat, y) if self.training else y


class Normalization(nn.Module):
    """``[normalization]``/``[lrn]`` (normalization_layer.c).  Darknet's running sum starts with
    channels ``0 .. size/2 - 1`` and then slides, so channel ``size/2`` is missing from every
    window: ``out_k = x_k * (kappa + alpha*(sum_{j=k-(size-1)/2}^{k+size/2} x_j^2 - x_{size/2}^2))^-beta``
    with j clipped to the channels.  alpha is not divided by size."""

    def __init__(
        self,
        in_shape: Shape3,
        size: int = 5,
        alpha: float = 1e-4,
        beta: float = 0.75,
        kappa: float = 1.0,
    ) -> None:
        super().__init__()
        self.in_shape = self.out_shape = shape3(in_shape)
        self.size, self.alpha, self.beta, self.kappa = size, alpha, beta, kappa

    def forward(self, x: Tensor) -> Tensor:
        flat = x
        x = as_chw(x, self.in_shape)
        c = self.in_shape[0]
        sq = x * x
        lo, hi = (self.size - 1) // 2, self.size // 2
        padded = F.pad(sq, (0, 0, 0, 0, lo, hi))
        window = cast(Tensor, sum(padded[:, d : d + c] for d in range(lo + hi + 1)))
        if hi < c:
            window = window - sq[:, hi : hi + 1]
        norms = self.kappa + self.alpha * window
        scale = torch.pow(norms, -self.beta)
        if self.training:
            # backward_normalization_layer ("approximate"): net.delta = norms^-beta * l.delta,
            # written, not added (train_mode.DELTA_WRITERS), no derivative through the norms.
            return scaled_passthrough(flat, x * scale, scale)
        return x * scale
