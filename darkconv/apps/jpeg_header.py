"""JPEG marker walk with the acceptance rules of Darknet's bundled stb_image (v2.19).

``read_header`` walks every marker segment of a file the way ``stbi__decode_jpeg_image`` does and
returns what the pixel stage needs: the frame (size, components, sampling factors), the
quantisation table each component is dequantised with, and the JFIF / Adobe / ``'R','G','B'``
flags that pick the colour transform.  A file stb_image refuses raises :class:`StbRefusal` with
stb_image's own reason, so the caller can fall back to another decoder.

Pure Python, no NumPy: the entropy-coded data is skipped, not decoded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["JpegComponent", "JpegHeader", "StbRefusal", "is_jpeg", "read_header"]

# stbi__jpeg_dezigzag: zigzag position -> natural (row-major) position
_DEZIGZAG = (
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
    12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
    35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
    58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
)  # fmt: skip

# stbi__SOF: baseline, extended Huffman, progressive.  Every other SOFn is an "unknown marker".
_SOF = {0xC0: False, 0xC1: False, 0xC2: True}
_SOI, _EOI, _SOS, _DNL, _DQT, _DHT, _DRI = 0xD8, 0xD9, 0xDA, 0xDC, 0xDB, 0xC4, 0xDD
# entropy-coded data ends at 0xFF followed by anything but a stuffed 0x00, RSTn or a fill 0xFF
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_SOI_AT_START = re.compile(rb"\xff+\xd8")


class StbRefusal(Exception):
    """stb_image would not decode this file (its ``stbi_failure_reason``)."""


@dataclass(frozen=True)
class JpegComponent:
    """One frame component: id, sampling factors, and its natural-order dequantisation table."""

    id: int
    h: int
    v: int
    qtable: tuple[int, ...]


@dataclass(frozen=True)
class JpegHeader:
    width: int
    height: int
    progressive: bool
    components: tuple[JpegComponent, ...]
    jfif: bool  # an APP0 "JFIF\0" segment was seen
    adobe_transform: int  # APP14 "Adobe" colour transform, -1 when absent
    rgb_ids: bool  # three components with ids 'R', 'G', 'B'

    @property
    def is_rgb(self) -> bool:
        """``load_jpeg_image``'s ``is_rgb``: the three planes are R, G, B, not YCbCr."""
        return len(self.components) == 3 and (
            self.rgb_ids or (self.adobe_transform == 0 and not self.jfif)
        )


def is_jpeg(data: bytes) -> bool:
    """``stbi__jpeg_test``: an SOI marker (after optional 0xFF fill bytes) opens the file."""
    return _SOI_AT_START.match(data) is not None


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def u8(self) -> int:
        if self.pos >= len(self.data):
            raise StbRefusal("unexpected end of file")
        self.pos += 1
        return self.data[self.pos - 1]

    def u16(self) -> int:
        return (self.u8() << 8) | self.u8()

    def marker(self) -> int | None:
        """``stbi__get_marker``: 0xFF, fill bytes, then the marker; ``None`` when no 0xFF."""
        if self.u8() != 0xFF:
            return None
        m = self.u8()
        while m == 0xFF:
            m = self.u8()
        return m


class _State:
    def __init__(self) -> None:
        self.tables: dict[int, tuple[int, ...]] = {}
        self.jfif = False
        self.adobe = -1


def _segment(r: _Reader, st: _State, m: int | None) -> None:
    """``stbi__process_marker``: DRI, DQT, DHT, APPn and COM; anything else is refused."""
    if m is None:
        raise StbRefusal("expected marker")
    if m == _DRI:
        if r.u16() != 4:
            raise StbRefusal("bad DRI len")
        r.u16()
        return
    if m == _DQT:
        left = r.u16() - 2
        while left > 0:
            pq = r.u8()
            sixteen, t = pq >> 4, pq & 15
            if sixteen > 1:
                raise StbRefusal("bad DQT type")
            if t > 3:
                raise StbRefusal("bad DQT table")
            table = [0] * 64
            for i in range(64):
                table[_DEZIGZAG[i]] = r.u16() if sixteen else r.u8()
            st.tables[t] = tuple(table)
            left -= 129 if sixteen else 65
        if left != 0:
            raise StbRefusal("bad DQT length")
        return
    if m == _DHT:
        left = r.u16() - 2
        while left > 0:
            q = r.u8()
            if q >> 4 > 1 or q & 15 > 3:
                raise StbRefusal("bad DHT header")
            n = sum(r.u8() for _ in range(16))
            r.pos += n
            left -= 17 + n
        if left != 0:
            raise StbRefusal("bad DHT length")
        return
    if 0xE0 <= m <= 0xEF or m == 0xFE:
        length = r.u16()
        if length < 2:
            raise StbRefusal("bad COM len" if m == 0xFE else "bad APP len")
        end = r.pos + length - 2
        body = r.data[r.pos : end]
        if m == 0xE0 and len(body) >= 5 and body[:5] == b"JFIF\0":
            st.jfif = True
        elif m == 0xEE and len(body) >= 12 and body[:6] == b"Adobe\0":
            st.adobe = body[11]
        r.pos = end
        return
    raise StbRefusal(f"unknown marker 0x{m:02X}")


def _frame(r: _Reader) -> tuple[int, int, list[tuple[int, int, int, int]], bool]:
    """``stbi__process_frame_header``: size, then (id, h, v, tq) per component."""
    lf = r.u16()
    if lf < 11:
        raise StbRefusal("bad SOF len")
    if r.u8() != 8:
        raise StbRefusal("JPEG format not supported: 8-bit only")
    height, width = r.u16(), r.u16()
    if height == 0:
        raise StbRefusal("JPEG format not supported: delayed height")
    if width == 0:
        raise StbRefusal("0 width")
    c = r.u8()
    if c not in (1, 3, 4):
        raise StbRefusal("bad component count")
    if lf != 8 + 3 * c:
        raise StbRefusal("bad SOF len")
    comps = []
    rgb = 0
    for i in range(c):
        cid, hv, tq = r.u8(), r.u8(), r.u8()
        if c == 3 and cid == b"RGB"[i]:
            rgb += 1
        h, v = hv >> 4, hv & 15
        if not 1 <= h <= 4:
            raise StbRefusal("bad H")
        if not 1 <= v <= 4:
            raise StbRefusal("bad V")
        if tq > 3:
            raise StbRefusal("bad TQ")
        comps.append((cid, h, v, tq))
    return width, height, comps, rgb == 3


def _scan(r: _Reader, ids: list[int], progressive: bool) -> list[int]:
    """``stbi__process_scan_header``: the component indices this scan codes."""
    ls, n = r.u16(), r.u8()
    if not 1 <= n <= min(4, len(ids)):
        raise StbRefusal("bad SOS component count")
    if ls != 6 + 2 * n:
        raise StbRefusal("bad SOS len")
    which = []
    for _ in range(n):
        cid, q = r.u8(), r.u8()
        if cid not in ids:
            raise StbRefusal("SOS names a component the frame lacks")
        if q >> 4 > 3 or q & 15 > 3:
            raise StbRefusal("bad huffman table in SOS")
        which.append(ids.index(cid))
    ss, se, a = r.u8(), r.u8(), r.u8()
    if progressive:
        if ss > 63 or se > 63 or ss > se or a >> 4 > 13 or a & 15 > 13:
            raise StbRefusal("bad SOS")
    elif ss != 0 or a != 0:
        raise StbRefusal("bad SOS")
    return which


def read_header(data: bytes) -> JpegHeader:
    """Walk the markers as ``stbi__decode_jpeg_image`` does; :class:`StbRefusal` if it refuses."""
    r = _Reader(data)
    if r.marker() != _SOI:
        raise StbRefusal("no SOI")
    st = _State()
    m = r.marker()
    while m not in _SOF:
        _segment(r, st, m)
        m = r.marker()
        while m is None:  # padding after a segment is skipped
            m = r.marker()
    progressive = _SOF[m]
    width, height, comps, rgb_ids = _frame(r)
    # 'mad3sizes_valid': stb_image refuses images whose buffers overflow an int
    if width * height * len(comps) >= 2**31:
        raise StbRefusal("Image too large to decode")
    h_max, v_max = max(c[1] for c in comps), max(c[2] for c in comps)
    if any(h_max % c[1] or v_max % c[2] for c in comps):
        # stb_image resamples by the integer quotient and reads past the component's pixels
        raise StbRefusal("sampling factors that do not divide the largest one")
    ids = [c[0] for c in comps]
    used: list[tuple[int, ...] | None] = [None] * len(comps)
    scans = 0
    m = r.marker()
    while m != _EOI:
        if m == _SOS:
            for k in _scan(r, ids, progressive):
                # baseline dequantises while decoding (the table current at this scan);
                # progressive dequantises in stbi__jpeg_finish (the last table), see below
                used[k] = st.tables.get(comps[k][3])
            scans += 1
            found = _NEXT_MARKER.search(data, r.pos)
            if found is None:
                raise StbRefusal("no EOI marker after the image data")
            r.pos = found.start()
        elif m == _DNL:
            if r.u16() != 4:
                raise StbRefusal("bad DNL len")
            if r.u16() != height:
                raise StbRefusal("bad DNL height")
        else:
            _segment(r, st, m)
        m = r.marker()
    if scans == 0:
        raise StbRefusal("no image data (no SOS)")
    if progressive:
        used = [st.tables.get(c[3]) for c in comps]
    components = []
    for (cid, h, v, _), table in zip(comps, used, strict=True):
        if table is None:
            raise StbRefusal(f"component {cid} has no image data or no quantisation table")
        components.append(JpegComponent(cid, h, v, table))
    return JpegHeader(width, height, progressive, tuple(components), st.jfif, st.adobe, rgb_ids)
