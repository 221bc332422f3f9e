"""The ``.weights`` file format: header and layout, as Darknet's ``src/parser.c`` defines them.

* header (``load_weights_upto``): int32 ``major``, ``minor``, ``revision``; then ``seen`` as a
  64-bit ``size_t`` when ``major*10 + minor >= 2`` and both are below 1000, else as an int32
  (read into a C ``int``).  ``major`` or ``minor`` above 1000 means connected matrices are stored
  transposed.
* body: the parameters of every layer in index order (``layer.records``), little-endian float32,
  no padding.  :func:`layout` turns the graph's records into offsets; reading and writing both walk
  that one table.

No torch here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from darkconv.errors import WeightsError

if TYPE_CHECKING:
    from darkconv.parse.graph import Layer, Network, Record
    from darkconv.parse.kinds import Dialect

__all__ = [
    "Header",
    "Slot",
    "DEFAULT_HEADER",
    "read_header",
    "default_header",
    "EOF_INIT",
    "eof_init",
    "header_from_tensor",
    "layout",
    "layer_floats",
    "check_cutoff",
    "cutoff_candidates",
    "weights_bytes",
]

_U64 = 1 << 64


def _wrap_i32(value: int) -> int:
    """``value`` as a C ``int`` after two's-complement wrap-around."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


@dataclass(frozen=True)
class Header:
    """The header exactly as Darknet's ``load_weights_upto`` reads it.

    ``seen`` is the value Darknet ends up with in its ``size_t``: a 32-bit ``seen`` is read into
    a C ``int`` and sign-extended, so a negative one becomes ``2**64 + seen``.  ``to_bytes``
    writes back the low 32 bits in that case, reproducing the file.
    """

    major: int
    minor: int
    revision: int
    seen: int
    header_bytes: int
    transpose: bool

    @classmethod
    def make(
        cls, major: int, minor: int, revision: int, seen: int = 0, *, dialect: str = "pjreddie"
    ) -> Header:
        """Build a header, deriving ``header_bytes`` and ``transpose`` like ``dialect``'s
        Darknet (``load_weights_upto``)."""
        for name, value in (("major", major), ("minor", minor), ("revision", revision)):
            if not -(1 << 31) <= value < 1 << 31:
                raise WeightsError(f"header {name}={value} does not fit a 32-bit int")
        facts = _facts(dialect)
        wide = _seen_is_64bit(major, minor, facts.seen64_needs_below_1000)
        if not wide and facts.seen32_signed:
            # pjreddie reads a 32-bit seen into an int: sign-extend like the C code.
            seen = _wrap_i32(seen) % _U64
        elif not wide:
            seen &= 0xFFFFFFFF  # AlexeyAB reads it into a uint32_t
        elif not -(1 << 63) <= seen < _U64:
            raise WeightsError(f"header seen={seen} does not fit 64 bits")
        return cls(
            major, minor, revision, seen % _U64, 20 if wide else 16, _transposed(major, minor)
        )

    def to_bytes(self) -> bytes:
        """The header as Darknet stores it (16 or 20 bytes)."""
        head = struct.pack("<iii", self.major, self.minor, self.revision)
        if self.header_bytes == 20:
            return head + struct.pack("<Q", self.seen % _U64)
        return head + struct.pack("<I", self.seen & 0xFFFFFFFF)

    def to_list(self) -> list[int]:
        """``[major, minor, revision, seen]`` with ``seen`` as a signed int64 (two's complement)."""
        seen = self.seen if self.seen < 1 << 63 else self.seen - _U64
        return [self.major, self.minor, self.revision, seen]

    def __str__(self) -> str:
        kind = "64-bit" if self.header_bytes == 20 else "32-bit"
        extra = ", transposed" if self.transpose else ""
        return f"{self.major}.{self.minor}.{self.revision} seen={self.seen} ({kind} seen{extra})"


def _facts(dialect: str) -> Dialect:
    from darkconv.parse.registry import DIALECTS

    try:
        return DIALECTS[dialect]
    except KeyError:
        raise WeightsError(f"unknown dialect {dialect!r} (known: {', '.join(DIALECTS)})") from None


def _seen_is_64bit(major: int, minor: int, below_1000: bool = True) -> bool:
    # Darknet's test, with C int arithmetic for major*10+minor; pjreddie also requires both
    # below 1000 (a transposed file keeps a 32-bit seen), AlexeyAB does not.
    wide = _wrap_i32(major * 10 + minor) >= 2
    return wide and (not below_1000 or (major < 1000 and minor < 1000))


def _transposed(major: int, minor: int) -> bool:
    return major > 1000 or minor > 1000


DEFAULT_HEADER = Header.make(0, 2, 0, 0)  # what pjreddie's save_weights_upto always writes


def default_header(dialect: str = "pjreddie") -> Header:
    """The header ``dialect``'s save_weights writes for a freshly parsed net (seen 0)."""
    return Header.make(*_facts(dialect).header, 0, dialect=dialect)


def read_header(buf: bytes | bytearray | memoryview, dialect: str = "pjreddie") -> Header:
    """Parse the header at the start of ``buf`` (at least 16 or 20 bytes, see :class:`Header`),
    as ``dialect``'s Darknet reads it."""
    data = bytes(buf[:20])
    if len(data) < 12:
        raise WeightsError(
            f"too short for a Darknet weights header: {len(data)} bytes (needs 16 or 20)"
        )
    major, minor, revision = struct.unpack_from("<iii", data)
    facts = _facts(dialect)
    need = 20 if _seen_is_64bit(major, minor, facts.seen64_needs_below_1000) else 16
    if len(data) < need:
        raise WeightsError(
            f"header {major}.{minor}.{revision} needs {need} bytes, the data has {len(data)}"
        )
    fmt = "<Q" if need == 20 else "<i" if facts.seen32_signed else "<I"
    seen = struct.unpack_from(fmt, data, 12)[0]
    return Header.make(major, minor, revision, seen, dialect=dialect)


def header_from_tensor(value: Any, dialect: str = "pjreddie") -> Header:
    """The header stored in a state dict's ``header`` entry (int64[4])."""
    try:
        items = [int(v) for v in value.reshape(-1).tolist()]
    except (AttributeError, TypeError, ValueError) as exc:
        raise WeightsError(f"state dict entry 'header' is not an integer tensor: {exc}") from None
    if len(items) != 4:
        raise WeightsError(
            f"state dict entry 'header' must hold 4 integers (major, minor, revision, seen), "
            f"got {len(items)}"
        )
    return Header.make(*items, dialect=dialect)


# ---------------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class Slot:
    """One record's place in the file: ``offset``/``count`` are in floats after the header."""

    layer: int
    type: str
    key: str  # full state-dict key: layers.{layer}.{record key}
    part: str
    shape: tuple[int, ...]
    transpose: bool  # stored as a (prod(shape[1:]), shape[0]) matrix
    offset: int
    count: int


def _record_transposed(layer: Layer, record: Record, header: Header) -> bool:
    # A flipped=1 convolution (load_convolutional_weights) is always stored transposed; a
    # connected matrix (load_connected_weights, also inside rnn/gru/lstm) only when the header
    # says so.
    if record.transpose == "header":
        return header.transpose
    return record.transpose == "always"


def layout(
    network: Network, header: Header = DEFAULT_HEADER, cutoff: int | None = None
) -> list[Slot]:
    """Every record of layers ``< cutoff`` in file order, with its float offset."""
    slots: list[Slot] = []
    offset = 0
    for layer in network.layers[: check_cutoff(network, cutoff)]:
        for record in layer.records:
            count = int(np.prod(record.shape, dtype=np.int64))
            slots.append(
                Slot(
                    layer.index,
                    layer.type,
                    f"layers.{layer.index}.{record.key}",
                    record.part,
                    tuple(int(s) for s in record.shape),
                    _record_transposed(layer, record, header),
                    offset,
                    count,
                )
            )
            offset += count
    return slots


# What a layer constructor puts in an array before load_weights reads it (calloc'd, scales set
# to 1, weighted [shortcut] weights to 1: make_convolutional_layer, make_batchnorm_layer,
# make_connected_layer, make_shortcut_layer).  Conv/connected weights and [implicit] weights are
# random: absent.
EOF_INIT: dict[str, float] = {"biases": 0.0, "scales": 1.0, "rolling_mean": 0.0,
                              "rolling_variance": 0.0}  # fmt: skip
_EOF_INIT_BY_KEY: dict[str, float] = {"shortcut.weight": 1.0}


def eof_init(key: str, part: str) -> float | None:
    """The constructor's value for a record Darknet did not read (None: random, unknown)."""
    short = key.split(".", 2)[-1] if key.startswith("layers.") else key
    if short in _EOF_INIT_BY_KEY:
        return _EOF_INIT_BY_KEY[short]
    return EOF_INIT.get(part)


def check_cutoff(network: Network, cutoff: int | None) -> int:
    n = len(network.layers)
    if cutoff is None:
        return n
    if isinstance(cutoff, bool) or not isinstance(cutoff, int) or cutoff < 0:
        raise WeightsError(f"cutoff must be a layer count >= 0, got {cutoff!r}")
    return min(cutoff, n)  # like Darknet: i < net->n && i < cutoff


def layer_floats(network: Network) -> list[int]:
    return [
        sum(int(np.prod(r.shape, dtype=np.int64)) for r in layer.records)
        for layer in network.layers
    ]


def weights_bytes(
    network: Network, header: Header = DEFAULT_HEADER, cutoff: int | None = None
) -> int:
    """Size of the file ``save_weights_upto(net, path, cutoff)`` writes with this header."""
    floats = layer_floats(network)[: check_cutoff(network, cutoff)]
    return header.header_bytes + 4 * sum(floats)


def cutoff_candidates(network: Network, body_bytes: int) -> list[int]:
    """Every cutoff N whose parameters fill exactly ``body_bytes`` (N counted like ``.conv.N``)."""
    if body_bytes % 4:
        return []
    target, total, found = body_bytes // 4, 0, []
    floats = layer_floats(network)
    for n in range(len(floats) + 1):
        if n and floats[n - 1]:
            total += floats[n - 1]
        if total == target and n < len(floats):
            found.append(n)
        elif total > target:
            break
    return found
