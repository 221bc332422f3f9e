"""Winograd's minimal filtering for the 3x3 stride-1 convolutions of a fused model (opt-in).

``F(m x m, 3 x 3)`` computes an ``m x m`` output tile of a 3x3 convolution from an
``(m+2) x (m+2)`` input tile with ``(m+2)^2`` multiplies per (input, output) channel pair
instead of ``9 m^2``: 2.25x fewer for ``m=2``, 4x fewer for ``m=4``.  Per tile::

    Y = A^T [ (G g G^T) (.) (B^T d B) ] A

summed over input channels, so the ``(m+2)^2`` element-wise products over channels are
``(m+2)^2`` matrix products (one ``bmm``).  ``U = G g G^T`` depends on the weights only and is
computed once.  This is a different summation order from Darknet's ``im2col`` + ``gemm``
(``forward_convolutional_layer``): outputs agree within float32 rounding, not bit for bit
(``tests/test_winograd.py`` bounds both).

The transform matrices come from exact arithmetic (:func:`transform_matrices`): ``F(m, r)`` is
the transpose of the Toom-Cook algorithm that multiplies a degree ``r-1`` polynomial by a degree
``m-1`` one by evaluating both at ``m+r-2`` points plus infinity and interpolating.

:func:`winograd_model` swaps each eligible :class:`~darkconv.fuse.FusedConvolutional` (3x3,
stride 1, padding 1, one group, float) for a :class:`WinogradConvolutional`.  The state dict is
unchanged (``conv.weight``, ``conv.bias``).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, TypeGuard

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from darkconv.nn.activations import ACROSS_CHANNELS, activate
from darkconv.nn.fuse import FusedConvolutional
from darkconv.nn.inplace import act_inplace, act_into, chunk_floats, is_capturing, is_compiling

__all__ = [
    "POINTS",
    "transform_matrices",
    "choose_tile",
    "eligible",
    "WinogradConvolutional",
    "winograd_model",
]

#: Interpolation points (besides infinity) of ``F(m, 3)``: the small, symmetric ones, which keep
#: the transforms' coefficients (and float32 error) small.
POINTS: dict[int, tuple[Fraction, ...]] = {
    2: tuple(Fraction(p) for p in (0, 1, -1)),
    4: tuple(Fraction(p) for p in (0, 1, -1, 2, -2)),
}


def _powers(point: Fraction | None, k: int) -> list[Fraction]:
    """A Vandermonde row: ``point**0 .. point**(k-1)``; ``None`` (infinity) picks the top term."""
    if point is None:
        return [Fraction(int(j == k - 1)) for j in range(k)]
    return [point**j for j in range(k)]


def _inverse(rows: list[list[Fraction]]) -> list[list[Fraction]]:
    """Exact inverse of a square matrix (Gauss-Jordan on fractions)."""
    n = len(rows)
    aug = [row[:] + [Fraction(int(i == j)) for j in range(n)] for i, row in enumerate(rows)]
    for col in range(n):
        pivot = next(i for i in range(col, n) if aug[i][col] != 0)
        aug[col], aug[pivot] = aug[pivot], aug[col]
        lead = aug[col][col]
        aug[col] = [v / lead for v in aug[col]]
        for i in range(n):
            if i != col and aug[i][col] != 0:
                f = aug[i][col]
                aug[i] = [a - f * b for a, b in zip(aug[i], aug[col], strict=True)]
    return [row[n:] for row in aug]


def transform_matrices(m: int, r: int = 3) -> tuple[Tensor, Tensor, Tensor]:
    """``(A^T, G, B^T)`` of ``F(m, r)`` as float64 tensors (``m x n``, ``n x r``, ``n x n``,
    ``n = m + r - 1``), from the points in :data:`POINTS` and infinity.

    With ``V_k`` the ``n x k`` Vandermonde matrix of the points, multiplying polynomials is
    ``s = V_n^-1 [(V_r g) (.) (V_m h)]``; correlation (what a convolution layer computes) is the
    transpose of that map, ``y = V_m^T [(V_r g) (.) (V_n^-T d)]``: ``A = V_m``, ``G = V_r``,
    ``B^T = V_n^-T``.  Each row ``i`` of ``B^T`` is then scaled by the lowest common multiple of
    its denominators and row ``i`` of ``G`` divided by it (the product is unchanged), so the
    transform applied to the data has integer coefficients.
    """
    points = POINTS.get(m)
    n = m + r - 1
    if points is None or len(points) != n - 1:
        raise ValueError(f"no interpolation points for F({m}, {r})")
    pts: list[Fraction | None] = [*points, None]
    a = [_powers(p, m) for p in pts]
    g = [_powers(p, r) for p in pts]
    v_inv = _inverse([_powers(p, n) for p in pts])
    bt = [[v_inv[j][i] for j in range(n)] for i in range(n)]
    for i in range(n):
        scale = math.lcm(*(v.denominator for v in bt[i]))
        bt[i] = [v * scale for v in bt[i]]
        g[i] = [v / scale for v in g[i]]

    def tensor(rows: list[list[Fraction]]) -> Tensor:
        return torch.tensor([[float(v) for v in row] for row in rows], dtype=torch.float64)

    return tensor(a).T.contiguous(), tensor(g), tensor(bt)


#: ``F(2x2, 3x3)`` on fewer than 64 tiles uses each transformed weight only that often; above
#: this many transformed weights (16 MiB in float32) reading them, cold, costs more than its
#: 2.25x fewer multiplies save.  Measured in whole forwards at 416 interleaved with OpenCV DNN
#: (2 threads): yolov4 0.97x, yolov3 0.93x, darknet53 0.96x with its 512 -> 1024 layers at 13x13
#: direct; a layer timed alone, its weights in the cache, favours F(2x2) instead.
_F2_FEW_TILES_MAX_U = 4 << 20


def choose_tile(
    channels: int, height: int, width: int, batch: int = 1, filters: int | None = None
) -> int | None:
    """The output tile ``m`` for a 3x3 stride-1 layer, or None for the direct convolution.

    Measured layer by layer on darknet53's shapes (2 AVX2 cores, torch 2.14, compiled and eager,
    against oneDNN's direct convolution with prepacked weights): Winograd wins when the
    matrix products are big enough to run at full speed, i.e. at least 64 input channels and at
    least ~48 tiles per product; below that (the 32-channel 112x112 layer, the 7x7 layers) the
    transforms or the ``(m+2)^2``-times larger transformed weights cost more than they save.
    ``F(4, 3)`` is taken when it leaves enough tiles, else ``F(2, 3)``, except on fewer than 64
    tiles with more than :data:`_F2_FEW_TILES_MAX_U` transformed weights (``16 * channels *
    filters``; yolov3's and yolov4's 512 -> 1024 layers at 13x13), measured in whole forwards.
    ``scripts/winograd_tiles.py`` re-measures both on another machine.
    """
    if channels < 64:
        return None
    for m in (4, 2):
        tiles = batch * -(-height // m) * -(-width // m)
        if tiles < 48:
            continue
        if m == 2 and tiles < 64 and filters is not None:
            return None if 16 * channels * filters > _F2_FEW_TILES_MAX_U else 2
        return m
    return None


class WinogradConvolutional(FusedConvolutional):
    """A fused 3x3 stride-1 convolution computed with ``F(m x m, 3 x 3)``.

    The input and output transforms of every tile and channel at once are two matrix products
    with ``kron(B^T, B^T)`` and ``kron(A^T, A^T)``; the channel sums are one ``bmm`` of the
    ``(m+2)^2`` tile positions.  (Written instead as sums of strided slices with the matrices'
    coefficients, inductor fused the transforms into tighter loops, but one layer took ~40 s to
    compile, darknet53 several minutes, for no faster network.)  ``U`` is cached eagerly
    (recomputed when the weight changes); compiled with frozen weights (``darkconv bench
    --compile``) it is constant-folded.  Other dtypes than float32/float64, and calls that
    autograd records (training), run the direct convolution.
    """

    def __init__(self, fused: FusedConvolutional, tile: int) -> None:
        nn.Module.__init__(self)
        if not eligible(fused):
            raise ValueError(
                "Winograd F(m, 3) needs a fused float 3x3, stride 1, padding 1, one-group layer"
            )
        for attr in (
            "in_shape", "out_shape", "conv_shape", "size", "stride", "stride_y", "padding",
            "dilation", "groups", "activation", "math", "blur",
        ):  # fmt: skip
            setattr(self, attr, getattr(fused, attr))
        self.bn = None
        self.conv = fused.conv
        self.prepack = fused.prepack  # the direct path, for dtypes other than float32/64
        self._packed: Tensor | None = None
        self._pack_key: tuple[int, int] | None = None
        self.tile = tile
        # float64 constants kept off the module's buffers so that ``model.to(dtype)`` leaves them
        at, g, bt = transform_matrices(tile)
        self._coef_at, self._coef_g, self._coef_bt = at.tolist(), g.tolist(), bt.tolist()
        # the point 1 makes a column of A^T all ones: a value added to the product at (1, 1)
        # reaches every output of the tile, so the bias rides along the output transform
        one = next(j for j in range(tile + 2) if bool((at[:, j] == 1).all()))
        self._bias_at = one * (tile + 2) + one
        self._kron: dict[tuple[torch.device, torch.dtype], tuple[Tensor, Tensor]] = {}
        self._u: Tensor | None = None
        self._u_key: tuple[Any, ...] | None = None

    def _transformed_weight(self, dtype: torch.dtype) -> Tensor:
        """``U = G w G^T`` as ``((m+2)^2, c_in, c_out)``, computed in float64."""
        w = self.conv.weight
        n = self.tile + 2
        g = torch.tensor(self._coef_g, dtype=torch.float64, device=w.device)
        u = torch.einsum("ik,ockl,jl->ijco", g, w.detach().double(), g)
        return u.reshape(n * n, w.shape[1], w.shape[0]).to(dtype).contiguous()

    def _weight(self, dtype: torch.dtype, compiling: bool = False) -> Tensor:
        """``U``: cached eagerly; computed in the graph when compiling (frozen weights fold it)."""
        if compiling:
            return self._transformed_weight(dtype)
        w = self.conv.weight
        key = (w.data_ptr(), w._version, w.device, dtype)
        if self._u_key != key:
            self._u = self._transformed_weight(dtype)
            self._u_key = key
        assert self._u is not None
        return self._u

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1:] != self.in_shape:
            c, h, w = self.in_shape
            x = x.reshape(x.shape[0], c, h, w)
        if x.dtype not in (torch.float32, torch.float64) or (
            torch.is_grad_enabled() and (x.requires_grad or self.conv.weight.requires_grad)
        ):
            return super().forward(x)  # an inference path: autograd gets the direct convolution
        compiling = is_compiling()
        u = self._weight(x.dtype, compiling)
        # any graph capture (also jit tracing, ONNX export) takes the plain ops: the eager band
        # loop's Python range would bake the example's batch into the graph
        return self._winograd(x, u, compiling, plain=is_capturing())

    def _kron_matrices(self, x: Tensor, cached: bool) -> tuple[Tensor, Tensor]:
        """``kron(B^T, B^T)`` and ``kron(A^T, A^T)``: both transforms of a flattened tile (cached
        per device and dtype eagerly; constants of the graph when compiling)."""
        key = (x.device, x.dtype)
        if cached and key in self._kron:
            return self._kron[key]
        bt, at = (torch.tensor(c, dtype=torch.float64) for c in (self._coef_bt, self._coef_at))
        pair = (torch.kron(bt, bt).to(x), torch.kron(at, at).to(x))
        if cached:
            self._kron[key] = pair
        return pair

    def _winograd(self, x: Tensor, u: Tensor, compiling: bool, plain: bool | None = None) -> Tensor:
        """The layer's output, channels_last.  The transforms of all tiles and channels are two
        matrix products with the Kronecker-product matrices, the channel sums one ``bmm``.
        Eagerly the bias is added to the products before the output transform, and the
        activation writes the tiles into a preallocated channels_last buffer (no separate copy);
        ``plain`` (default: ``compiling``): plain ops, which inductor fuses into one loop.
        ``compiling``: the Kronecker matrices are constants of the graph, not cached."""
        m, n = self.tile, self.tile + 2
        b, c, h, w = x.shape
        th, tw = -(-h // m), -(-w // m)
        tiles = b * th * tw
        plain = compiling if plain is None else plain
        kb, ka = self._kron_matrices(x, cached=not compiling)
        xp = F.pad(x, (1, tw * m + 1 - w, 1, th * m + 1 - h))
        d = xp.unfold(2, n, m).unfold(3, n, m).permute(4, 5, 0, 2, 3, 1)  # n n b th tw c
        v = (kb @ d.reshape(n * n, tiles * c)).view(n * n, tiles, c)
        prod = torch.bmm(v, u)  # (n*n, tiles, c_out)
        co = prod.shape[-1]
        bias = self.conv.bias
        assert bias is not None  # a fused convolution always carries the folded bias
        if not plain:
            prod[self._bias_at].add_(bias)
        y = (ka @ prod.view(n * n, tiles * co)).view(m, m, b, th, tw, co)
        y = y.permute(2, 3, 0, 4, 1, 5)  # b th m tw m co
        if plain:
            y = (y.reshape(b, th * m, tw * m, co)[:, :h, :w] + bias).permute(0, 3, 1, 2)
            return activate(y, self.activation, self.math)  # channels on dim 1, as it expects
        out = x.new_empty(b * th, m, tw, m, co)
        rows = y.reshape(b * th, m, tw, m, co)  # a view: b and th merge
        full = out.view(b, th * m, tw * m, co).permute(0, 3, 1, 2)
        if self.activation in ACROSS_CHANNELS:
            out.copy_(rows)
            full = act_inplace(full, self.activation, self.math)
        else:  # elementwise: a band of tile rows (chunk_floats()) at a time, read from the
            # transform's output while it is in the cache, and mish's five passes over it too
            # (the tiles past the edge as well: Darknet's activations are per pixel)
            step = max(1, chunk_floats() // rows[0].numel()) if x.is_cpu else b * th
            for i in range(0, b * th, step):
                act_into(rows[i : i + step], out[i : i + step], self.activation, self.math)
        # one copy makes the crop channels_last-contiguous, so that the next layer's oneDNN
        # reorder does not work on a strided view
        if (th * m, tw * m) != (h, w):
            full = full[:, :, :h, :w].contiguous(memory_format=torch.channels_last)
        return full

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_u"], state["_u_key"], state["_kron"] = None, None, {}
        return state

    def extra_repr(self) -> str:
        return f"activation={self.activation}, winograd=F({self.tile}x{self.tile}, 3x3)"


def eligible(module: nn.Module) -> TypeGuard[FusedConvolutional]:
    """A fused float 3x3, stride 1, padding 1, undilated one-group convolution without an
    antialiasing blur (not yet Winograd)."""
    return (
        type(module) is FusedConvolutional
        and (module.size, module.stride, module.stride_y, module.padding) == (3, 1, 1, 1)
        and (module.groups, module.dilation) == (1, 1)
        and module.blur is None
        and module.conv.weight.is_floating_point()
    )


@torch.no_grad()
def winograd_model(model: nn.Module, batch: int = 1, tile: int | None = None) -> nn.Module:
    """Replace, in place, each :func:`eligible` layer of ``model`` (fuse it first:
    :func:`~darkconv.fuse.fuse_model`) with a :class:`WinogradConvolutional`; returns ``model``.

    ``tile=None`` lets :func:`choose_tile` pick per layer for inputs of ``batch`` images (and
    leave some layers direct); ``tile=2`` or ``4`` forces that tile on every eligible layer.
    """
    if tile is not None and tile not in POINTS:
        raise ValueError(f"tile must be one of {sorted(POINTS)} or None, got {tile!r}")
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if not eligible(child):
                continue
            c, h, w = child.in_shape
            m = tile or choose_tile(c, h, w, batch, child.out_shape[0])
            if m is not None:
                new = WinogradConvolutional(child, m)
                new.train(child.training)
                setattr(parent, name, new)
    return model
