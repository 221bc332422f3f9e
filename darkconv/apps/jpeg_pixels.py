"""stb_image's JPEG pixel arithmetic (v2.19, x86-64 SSE2 build), vectorised with NumPy.

From dequantised DCT blocks to RGB bytes, bit for bit as Darknet's ``load_image_stb`` gets them:

* ``idct_component``: ``stbi__idct_simd``, the SSE2 integer IDCT (a ``jidctint``-style 1-D pass
  over columns, a transpose, the same pass over rows; 12-bit fixed-point constants, 16-bit
  lanes), after the dequantisation truncated to 16 bits;
* ``upsample``: the chroma filters ``load_jpeg_image`` picks per component (``resample_row_1``,
  ``stbi__resample_row_v_2`` / ``_h_2`` / ``_hv_2``, nearest-neighbour ``_generic``) with its
  ``ystep``/``line0``/``line1`` row walk;
* ``ycbcr_to_rgb``: ``stbi__YCbCr_to_RGB_row`` (the SIMD variant only speeds up ``step == 4``;
  Darknet asks for 3 channels, so every pixel takes the scalar path), and ``blinn_8x8`` for CMYK.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "blinn_8x8",
    "idct_component",
    "idct_exact",
    "row_walk",
    "upsample",
    "upsample_rows",
    "ycbcr_to_rgb",
]

U8 = NDArray[np.uint8]
I16 = NDArray[np.int16]


def _f2f(x: float) -> int:
    """``stbi__f2f``: ``(int)(x * 4096 + 0.5)``; ``x`` is a float literal, the sum is in double."""
    return int(float(np.float32(x)) * 4096 + 0.5)


_C = {k: _f2f(v) for k, v in {
    "a": 0.5411961, "b": -1.847759065, "c": 0.765366865, "d": 1.175875602, "e": -0.899976223,
    "f": -2.562915447, "g": -1.961570560, "h": 0.298631336, "i": 3.072711026,
    "j": -0.390180644, "k": 2.053119869, "l": 1.501321110,
}.items()}  # fmt: skip
# the (x, y) pairs of stbi__idct_simd's dct_const rotations: out = x*first + y*second
_ROT = {
    "rot0_0": (_C["a"], _C["a"] + _C["b"]), "rot0_1": (_C["a"] + _C["c"], _C["a"]),
    "rot1_0": (_C["d"] + _C["e"], _C["d"]), "rot1_1": (_C["d"], _C["d"] + _C["f"]),
    "rot2_0": (_C["g"] + _C["h"], _C["g"]), "rot2_1": (_C["g"], _C["g"] + _C["i"]),
    "rot3_0": (_C["j"] + _C["k"], _C["j"]), "rot3_1": (_C["j"], _C["j"] + _C["l"]),
}  # fmt: skip
_BIAS_COL = 512  # column pass: round, keep 2 extra bits (shift 10)
_BIAS_ROW = 65536 + (128 << 17)  # row pass: round and add the +128 level shift (shift 17)


def _wrap16(x: NDArray[np.int64]) -> NDArray[np.int64]:
    """``_mm_add_epi16`` / ``_mm_sub_epi16``: 16-bit lanes wrap around."""
    return ((x + 32768) & 0xFFFF) - 32768


def _sums(r: list[NDArray[np.int64]], wrap: bool) -> list[NDArray[np.int64]]:
    """One ``dct_pass`` before bias and shift: the 8 butterfly sums, output row order.

    With ``wrap=False`` the 16-bit sums of the inputs do not wrap, which makes the pass a plain
    integer matrix (see ``_MATRIX``); ``wrap=True`` is the SIMD lane arithmetic exactly.
    """
    w = _wrap16 if wrap else (lambda x: x)

    def rot(
        x: NDArray[np.int64], y: NDArray[np.int64], c0: str, c1: str
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        return x * _ROT[c0][0] + y * _ROT[c0][1], x * _ROT[c1][0] + y * _ROT[c1][1]

    t2e, t3e = rot(r[2], r[6], "rot0_0", "rot0_1")
    t0e, t1e = w(r[0] + r[4]) << 12, w(r[0] - r[4]) << 12  # dct_widen: 16-bit value << 12
    x0, x3, x1, x2 = t0e + t3e, t0e - t3e, t1e + t2e, t1e - t2e
    y0o, y2o = rot(r[7], r[3], "rot2_0", "rot2_1")
    y1o, y3o = rot(r[5], r[1], "rot3_0", "rot3_1")
    y4o, y5o = rot(w(r[1] + r[7]), w(r[3] + r[5]), "rot1_0", "rot1_1")
    x4, x5, x6, x7 = y0o + y4o, y1o + y5o, y2o + y5o, y3o + y4o
    return [x0 + x7, x1 + x6, x2 + x5, x3 + x4, x3 - x4, x2 - x5, x1 - x6, x0 - x7]


# Without 16-bit wrap-around a pass is out[k] = sum_j M[k, j] * in[j] (+ bias, >> shift).
_MATRIX = np.array(
    [[int(s[j]) for j in range(8)] for s in _sums(list(np.eye(8, dtype=np.int64)), wrap=False)],
    dtype=np.float64,
)


def _pass_exact(r: list[NDArray[np.int64]], bias: int, shift: int) -> list[NDArray[np.int64]]:
    """``dct_pass`` + ``dct_bfly32o``: 32-bit sums, arithmetic shift, ``_mm_packs_epi32``."""
    return [np.clip((s + bias) >> shift, -32768, 32767) for s in _sums(r, wrap=True)]


def idct_exact(blocks: I16) -> U8:
    """``stbi__idct_simd`` lane by lane: ``(n, 8, 8)`` dequantised int16 -> ``(n, 8, 8)`` uint8.

    Slow but exact for any input, including coefficients large enough to wrap 16-bit lanes.
    """
    b = blocks.astype(np.int64)
    cols = _pass_exact([b[:, u, :] for u in range(8)], _BIAS_COL, 10)  # rows: y, lanes: v
    t = np.stack(cols, axis=1).transpose(0, 2, 1)  # 16-bit 8x8 transpose -> rows: v, lanes: y
    rows = _pass_exact([t[:, v, :] for v in range(8)], _BIAS_ROW, 17)  # rows: x, lanes: y
    out = np.clip(np.stack(rows, axis=1), 0, 255)  # _mm_packus_epi16
    pixels: U8 = out.transpose(0, 2, 1).astype(np.uint8)  # 8-bit transpose -> (y, x)
    return pixels


# the pass matrices with the rounding bias as a ninth column and the shift folded in as an exact
# power-of-two scale: floor(_AUG @ [in; 1]) == (M @ in + bias) >> shift for every integer input
_AUG_COL = np.hstack([_MATRIX, np.full((8, 1), _BIAS_COL, dtype=np.float64)]) / 1024
_AUG_ROW = np.hstack([_MATRIX, np.full((8, 1), _BIAS_ROW, dtype=np.float64)]) / 131072
_LIMIT = 16383  # no 16-bit lane can wrap while inputs and column-pass outputs stay within this

# Work on stripes of about this many blocks (or pixels) so the float64 temporaries stay in the
# CPU cache: three times faster than whole planes on a 768x576 photo.
CHUNK_BLOCKS = 384
CHUNK_PIXELS = CHUNK_BLOCKS * 64


def idct_component(coef: I16, table: NDArray[np.int64]) -> U8:
    """Dequantise and ``stbi__idct_simd`` a component: ``(by, bx, 8, 8)`` -> ``(by*8, bx*8)`` uint8.

    Fast path: each pass is an exact integer matrix product in float64 (every sum is below
    2**45), valid while no 16-bit lane wraps: dequantised inputs within +-16383 and column-pass
    outputs within +-16384.  Blocks outside that range are redone by :func:`idct_exact`.  The
    dequantisation ``(short)(coef * dequant[k])`` is folded into the column-pass matrices (one per
    horizontal frequency ``v``); products that would not fit in 16 bits are truncated first.
    """
    by, bx = coef.shape[:2]
    q = table.reshape(8, 8).astype(np.int64)
    flat = coef.reshape(-1, 64)
    peak = np.maximum(-flat.min(axis=0, initial=0).astype(np.int64), flat.max(axis=0, initial=0))
    deq = peak.reshape(8, 8) * q  # largest |dequantised value| per (u, v)
    if deq.max() > 32767:
        coef = (coef.astype(np.int64) * q).astype(np.int16)
        q = np.ones((8, 8), dtype=np.int64)
        deq = np.full((8, 8), 32768, dtype=np.int64)
    # per v: [y, u] = M[y, u] * q[u, v] / 1024, plus the bias column
    cols = np.empty((8, 8, 9), dtype=np.float64)
    cols[:, :, :8] = _AUG_COL[None, :, :8] * q.T[:, None, :]
    cols[:, :, 8] = _AUG_COL[None, :, 8]
    # no block can leave the 16-bit-safe range when the largest inputs cannot: skip the checks
    col_peak = (np.abs(_MATRIX) @ deq).max() / 1024 + 1
    check = bool(deq.max() > _LIMIT or col_peak > _LIMIT)
    step = max(1, CHUNK_BLOCKS // max(bx, 1))
    plane = np.empty((by * 8, bx * 8), dtype=np.uint8)
    for r in range(0, by, step):
        stripe = coef[r : r + step]
        out = plane[r * 8 : (r + step) * 8].reshape(stripe.shape[0], 8, bx, 8)
        _idct_stripe(stripe, cols, q, check, out)
    return plane


def _idct_stripe(
    coef: I16, cols: NDArray[np.float64], q: NDArray[np.int64], check: bool, out: U8
) -> None:
    """:func:`idct_component` on a stripe of block rows, into ``out`` ``(sy, 8, bx, 8)``.

    ``check``: some block may leave the 16-bit-safe range; find those and redo them exactly.
    """
    sy, bx = coef.shape[:2]
    n = sy * bx
    x = np.empty((8, 9, n), dtype=np.float64)  # (v, u, n) + a ones row for the bias
    x[:, :8, :] = coef.reshape(n, 8, 8).transpose(2, 1, 0)
    x[:, 8, :] = 1.0
    t = np.empty((9, 8, n), dtype=np.float64)  # (v, y, n): the row pass mixes v
    np.matmul(cols, x, out=t[:8])
    np.floor(t[:8], out=t[:8])
    t[8] = 1.0  # the bias row of _AUG_ROW
    bad = None
    if check:
        tr = t[:8]
        within = ((tr >= -_LIMIT - 1) & (tr <= _LIMIT)).all(axis=(0, 1))
        deq = np.abs(x[:, :8, :] * q.T[:, :, None])  # (v, u, n)
        within &= (deq <= _LIMIT).all(axis=(0, 1))
        bad = np.flatnonzero(~within)
    res = _AUG_ROW @ t.reshape(9, 8 * n)  # (x, y, n)
    np.clip(res, 0, 255.5, out=res)  # packs + packus; truncation is floor from here on
    out.transpose(3, 1, 0, 2)[...] = res.reshape(8, 8, sy, bx)  # the 8-bit transpose
    if bad is not None and bad.size:
        blocks = (coef.reshape(n, 8, 8)[bad].astype(np.int64) * q).astype(np.int16)
        yy, xx = np.divmod(bad, bx)
        out[yy, :, xx, :] = idct_exact(blocks)  # (m, y, x)


def row_walk(rows_lo: int, rows_out: int, vs: int) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """``load_jpeg_image``'s per-row (near, far) source rows for a vertical factor ``vs``.

    The C loop keeps ``ystep`` (starting at ``vs >> 1``) and two row pointers: at every wrap of
    ``ystep`` past ``vs``, ``line0`` takes ``line1`` and ``line1`` moves down while rows remain.
    Output row ``j`` uses ``line1`` as the near row when ``ystep >= vs >> 1``, else ``line0``.
    """
    j = np.arange(rows_out, dtype=np.intp)
    wraps, ystep = np.divmod(j + (vs >> 1), vs)
    line1 = np.minimum(wraps, rows_lo - 1)
    line0 = np.clip(wraps - 1, 0, rows_lo - 1)
    bottom = ystep >= (vs >> 1)
    return np.where(bottom, line1, line0), np.where(bottom, line0, line1)


def _h2(rows: NDArray[np.int16]) -> NDArray[np.int16]:
    """``stbi__resample_row_h_2`` on whole rows: 3/4 of a pixel + 1/4 of its neighbour.

    The outer two outputs copy the edge pixels; the one before the last mixes ``3*in[w-2] +
    in[w-1]`` (stb_image weights the wrong side there), not ``3*in[w-1] + in[w-2]``.
    """
    h, w = rows.shape
    out = np.empty((h, 2 * w), dtype=np.int16)
    if w == 1:
        out[:, 0] = out[:, 1] = rows[:, 0]
        return out
    c3 = rows * np.int16(3) + np.int16(2)
    out[:, 1:-1:2] = (c3[:, :-1] + rows[:, 1:]) >> 2  # 2i+1, i < w-1: right neighbour
    out[:, 2:-2:2] = (c3[:, 1:-1] + rows[:, :-2]) >> 2  # 2i, 0 < i < w-1: left neighbour
    out[:, -2] = (c3[:, -2] + rows[:, -1]) >> 2  # 2(w-1): the quirk
    out[:, 0], out[:, -1] = rows[:, 0], rows[:, -1]
    return out


def _hv2(t: NDArray[np.int16]) -> NDArray[np.int16]:
    """``stbi__resample_row_hv_2`` (and its SSE2 twin, same results) on ``t = 3*near + far``."""
    h, w = t.shape
    out = np.empty((h, 2 * w), dtype=np.int16)
    edge0, edge1 = (t[:, 0] + 2) >> 2, (t[:, -1] + 2) >> 2
    if w == 1:
        out[:, 0] = out[:, 1] = edge0
        return out
    c3 = t * np.int16(3) + np.int16(8)
    out[:, 1:-1:2] = (c3[:, :-1] + t[:, 1:]) >> 4  # 2i+1, i < w-1
    out[:, 2:-1:2] = (c3[:, 1:] + t[:, :-1]) >> 4  # 2i, i > 0
    out[:, 0], out[:, -1] = edge0, edge1
    return out


def upsample(plane: U8, comp_w: int, comp_h: int, hs: int, vs: int, w: int, h: int) -> U8:
    """One component at full size ``(h, w)``, as ``load_jpeg_image``'s resample loop gives it.

    ``plane`` holds the component's pixels (at least ``comp_h x comp_w``); ``hs``/``vs`` are the
    integer expansion factors ``img_h_max / comp.h`` and ``img_v_max / comp.v``.
    """
    near, far = row_walk(comp_h, h, vs)
    return upsample_rows(plane[:comp_h, :comp_w], hs, vs, w, near, far)


def upsample_rows(
    src: U8, hs: int, vs: int, w: int, near: NDArray[np.intp], far: NDArray[np.intp]
) -> U8:
    """Output rows of :func:`upsample` whose (near, far) source rows :func:`row_walk` gave."""
    if hs == 1 and vs == 1:
        return src[near[0] : near[0] + len(near), :w]  # resample_row_1: consecutive rows
    if hs == 1 and vs == 2:
        out = src[near].astype(np.int16) * np.int16(3) + src[far] + np.int16(2)
        pixels: U8 = (out >> 2).astype(np.uint8)[:, :w]
        return pixels
    if hs == 2 and vs == 1:
        return _h2(src[near].astype(np.int16))[:, :w].astype(np.uint8)
    if hs == 2 and vs == 2:
        t = src[near].astype(np.int16) * np.int16(3) + src[far]
        return _hv2(t)[:, :w].astype(np.uint8)
    # stbi__resample_row_generic: nearest neighbour, each input pixel repeated hs times
    return np.repeat(src[near], hs, axis=1)[:, :w]


def _float2fixed(x: float) -> int:
    """``stbi__float2fixed``: ``((int)(x * 4096.0f + 0.5f)) << 8`` in float32."""
    return int(np.float32(np.float32(x) * np.float32(4096.0)) + np.float32(0.5)) << 8


def _color_tables() -> tuple[NDArray[np.int16], NDArray[np.int16], NDArray[np.int16]]:
    """``stbi__YCbCr_to_RGB_row`` as offsets added to Y.

    ``(y << 20) + (1 << 19) + k`` shifted right by 20 is ``y + ((1 << 19) + k) >> 20`` exactly,
    so R and B are Y plus a table of Cr or Cb, G is Y plus a table of (Cb, Cr).  The Cb term of G
    is masked with ``& 0xffff0000`` as in the C code.
    """
    c = np.arange(256, dtype=np.int64) - 128
    half = 1 << 19
    red = (half + c * _float2fixed(1.40200)) >> 20
    blue = (half + c * _float2fixed(1.77200)) >> 20
    g_cb = (c * -_float2fixed(0.34414)) & 0xFFFF0000
    g_cb = np.where(g_cb >= 2**31, g_cb - 2**32, g_cb)  # back to a signed 32-bit int
    green = (half + c[None, :] * -_float2fixed(0.71414) + g_cb[:, None]) >> 20  # [cb, cr]
    return red.astype(np.int16), green.reshape(-1).astype(np.int16), blue.astype(np.int16)


def _lookup_tables() -> tuple[U8, U8, NDArray[np.intp], U8]:
    """Clamped ``[y << 8 | cr]`` -> R and ``[y << 8 | cb]`` -> B tables, the (Cb, Cr) offset of G
    (biased by 512 to index the clamp table) and that clamp table."""
    red, green, blue = _color_tables()
    y = np.arange(256, dtype=np.int16)[:, None]
    lut_r = np.clip(y + red[None, :], 0, 255).astype(np.uint8).reshape(-1)
    lut_b = np.clip(y + blue[None, :], 0, 255).astype(np.uint8).reshape(-1)
    clamp = np.clip(np.arange(1024) - 512, 0, 255).astype(np.uint8)
    return lut_r, lut_b, green.astype(np.intp) + 512, clamp


_LUT_R, _LUT_B, _G_OFFSET, _CLAMP = _lookup_tables()


def ycbcr_to_rgb(y: U8, cb: U8, cr: U8, out: U8 | None = None) -> U8:
    """``stbi__YCbCr_to_RGB_row`` for whole planes: ``(3, h, w)`` uint8 (table lookups)."""
    if out is None:
        out = np.empty((3, *y.shape), dtype=np.uint8)
    step = max(1, CHUNK_PIXELS // max(y.shape[1], 1))
    for r in range(0, y.shape[0], step):
        rows = slice(r, r + step)
        iy = y[rows].astype(np.intp)
        idx = iy << 8
        np.take(_LUT_B, idx | cb[rows], out=out[2, rows])
        idx |= cr[rows]
        np.take(_LUT_R, idx, out=out[0, rows])
        idx = cb[rows].astype(np.intp)
        idx <<= 8
        idx |= cr[rows]
        g = np.take(_G_OFFSET, idx)
        g += iy
        np.take(_CLAMP, g, out=out[1, rows])
    return out


def blinn_8x8(x: U8, y: U8) -> U8:
    """``stbi__blinn_8x8``: ``x*y/255`` rounded, ``(t + (t >> 8)) >> 8`` with ``t = x*y + 128``."""
    t = x.astype(np.int32) * y + 128
    return ((t + (t >> 8)) >> 8).astype(np.uint8)
