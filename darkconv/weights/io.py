"""Darknet ``.weights`` files <-> PyTorch state dicts, byte-exact and strict.

The file layout is not stored in the file: it follows from the cfg.  Every layer of the graph
declares its parameters in file order (``layer.records``); :func:`layout` turns them into one
table of offsets that :func:`read_weights` and :func:`write_weights` both walk, so reading and
writing cannot disagree (Darknet: ``load_weights_upto`` / ``save_weights_upto``).

The state dict holds ``layers.{index}.{record.key}`` tensors plus ``header`` (int64[4]:
major, minor, revision, seen).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from darkconv.errors import WeightsError
from darkconv.weights.format import (
    DEFAULT_HEADER,
    Header,
    Slot,
    check_cutoff,
    cutoff_candidates,
    default_header,
    eof_init,
    header_from_tensor,
    layer_floats,
    layout,
    read_header,
    weights_bytes,
)
from darkconv.weights.statedict import atomic_writer, load_state_dict, save_state_dict

if TYPE_CHECKING:
    import torch

    from darkconv.parse.graph import Network

__all__ = [
    "Header",
    "Slot",
    "DEFAULT_HEADER",
    "header_from_tensor",
    "read_header",
    "read_weights",
    "write_weights",
    "save_state_dict",
    "load_state_dict",
    "plan_write",
    "layout",
    "cutoff_candidates",
    "weights_bytes",
]

_F32 = np.dtype("<f4")
_WRITE_CAUSES = (
    "likely causes: the wrong cfg for this state dict, or a cfg whose classes/filters were "
    "edited after the state dict was made"
)
_CAUSES = (
    "likely causes: a cfg whose classes/filters were edited after training, a truncated "
    "download, the wrong cfg for these weights, or a partial `.conv.N` file (use --cutoff N)"
)


# ---------------------------------------------------------------------------------- reading


def _size_error(
    path: str, network: Network, header: Header, size: int, cutoff: int | None
) -> WeightsError:
    """Explain a size mismatch: where the data runs out, or how much is left over."""
    expected = weights_bytes(network, header, cutoff)
    body = size - header.header_bytes
    limit = check_cutoff(network, cutoff)
    scope = "" if cutoff is None else f" (cutoff {cutoff})"
    hint = _CAUSES
    if size > expected:
        last = max(
            (lay for lay in network.layers[:limit] if lay.records),
            key=lambda lay: lay.index,
            default=None,
        )
        where = (
            f"after layer {last.index} ({last.type})"
            if last
            else "after the header (no layer has parameters)"
        )
        msg = (
            f"{path}: {size - expected} bytes left over {where}: the cfg{scope} needs {expected} bytes, "
            f"the file has {size}"
        )
    else:
        floats = layer_floats(network)
        have, done = body // 4 if body > 0 else 0, 0
        where = "the header"
        for layer in network.layers[:limit]:
            if done + floats[layer.index] > have:
                where = f"layer {layer.index} ({layer.type})"
                break
            done += floats[layer.index]
        msg = (
            f"{path}: data runs out in {where}: the cfg{scope} needs {expected} bytes, "
            f"the file has {size} ({expected - size} short)"
        )
        if body <= 0:
            msg += "; the file holds a header and no parameters"
    cands = cutoff_candidates(network, body) if body > 0 else []
    if cands and cutoff not in cands:
        hint = (
            f"the size matches the first {cands[0]} layers exactly: if this is a partial file "
            f"(like darknet53.conv.74) pass --cutoff {cands[0]}"
        )
    elif body % 4:
        hint += f"; the body is not a whole number of floats ({body % 4} stray bytes)"
    elif abs(size - expected) == 4:
        hint = (
            "a 4-byte difference usually means the header's `seen` field has the wrong width for "
            "its version (Darknet reads 64 bits when major*10+minor >= 2), or the wrong cfg"
        )
    return WeightsError(msg, hint=hint)


def _sniff(path: str, data: bytes) -> str | None:
    if data[:4] == b"PK\x03\x04":
        return "it looks like a zip archive (a PyTorch .pth?), not Darknet weights"
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "it looks like a Python pickle, not Darknet weights"
    if len(data) >= 9 and data[8:9] == b"{":
        return "it looks like a .safetensors file, not Darknet weights"
    return None


def _check_finite(arr: np.ndarray, slots: list[Slot], path: str) -> None:
    # A float64 sum of float32 values cannot overflow, so it is finite iff every value is.
    if np.isfinite(arr.sum(dtype=np.float64)):
        return
    bad = [s for s in slots if not np.isfinite(arr[s.offset : s.offset + s.count]).all()]
    where = ", ".join(
        f"{s.key} ({int((~np.isfinite(arr[s.offset : s.offset + s.count])).sum())})"
        for s in bad[:5]
    )
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    warnings.warn(f"{path}: NaN/Inf values in {where}{more}", RuntimeWarning, stacklevel=3)


def _check_writer(header: Header, network: Network, path: str) -> None:
    """Warn when a file that only another Darknet writes (AlexeyAB's 0.2.5) is read with the
    default dialect (pjreddie's): the same bytes, other numbers (batch-norm epsilon...).  The
    reverse is normal: AlexeyAB's Darknet loads pjreddie's files."""
    from darkconv.parse.registry import DEFAULT_DIALECT, DIALECTS

    triple = (header.major, header.minor, header.revision)
    if triple == network.facts.header or network.dialect != DEFAULT_DIALECT:
        return
    for other in DIALECTS.values():
        if other.header == triple and other.name != network.dialect:
            warnings.warn(
                f"{path}: header {header.major}.{header.minor}.{header.revision} is what "
                f"{other.darknet} writes, but the network is read as {network.dialect}'s "
                f"({network.dialect_reason}); pass --dialect {other.name} (dialect="
                f"{other.name!r}) for the numbers {other.darknet} computes",
                RuntimeWarning,
                stacklevel=3,
            )


def _fill_short(have: np.ndarray, slots: list[Slot], path: str, size: int) -> np.ndarray:
    """The body Darknet ends up with when the file stops after ``have``: every float past the
    end keeps its constructor value (EOF_INIT), or the read is an error when that is random."""
    end = slots[-1].offset + slots[-1].count if slots else 0
    arr = np.empty(end, dtype=_F32)
    arr[: have.size] = have
    first = None
    for s in slots:
        lo = max(s.offset, have.size)
        if lo >= s.offset + s.count:
            continue
        init = eof_init(s.key, s.part)
        if init is None:
            raise WeightsError(
                f"{path}: the file ends in {s.key} (layer {s.layer}, {s.type}), whose initial "
                "values are random in Darknet: not reproducible",
                hint="a file written for another cfg or the other Darknet dialect",
            )
        arr[lo : s.offset + s.count] = init
        first = first or s
    if first is not None:
        warnings.warn(
            f"{path}: {end - have.size} floats short ({size} bytes): the data runs out in "
            f"{first.key} (layer {first.layer}, {first.type}); like Darknet's load_weights, the "
            "missing values keep their initial values",
            RuntimeWarning,
            stacklevel=3,
        )
    return arr


def read_weights(
    path: str | os.PathLike[str],
    network: Network,
    *,
    cutoff: int | None = None,
    mmap: bool = False,
    allow_short: bool = False,
) -> tuple[Header, dict[str, torch.Tensor]]:
    """Read a Darknet ``.weights`` file into a state dict, checking its size against the graph.

    The expected size is known from the graph before any data is read; a mismatch names the
    layer where the data runs out (or the bytes left over).  One read (``np.fromfile``, or a
    private copy-on-write memory map with ``mmap=True``: faster for a one-shot conversion, but
    the tensors then stay backed by the file); every tensor is a zero-copy view of it (a
    transposed record is a small copy).  NaN/Inf values give a ``RuntimeWarning``.

    ``allow_short=True`` reads a file that ends early as Darknet does (``load_weights_upto``
    freads to EOF): the floats the file lacks keep the value the layer constructor gave them
    (:data:`~darkconv.weights.format.EOF_INIT`), with a ``RuntimeWarning`` naming where the
    data ran out.  A missing randomly initialised array (conv weights...) is still an error.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(20)
            if size == 0:
                raise WeightsError(f"{path}: the file is empty (0 bytes), not Darknet weights")
            sniffed = _sniff(path, head)
            try:
                header = read_header(head, network.dialect)
            except WeightsError as exc:
                raise WeightsError(f"{path}: {exc.message}", hint=sniffed) from None
            expected = weights_bytes(network, header, cutoff)
            short = allow_short and header.header_bytes <= size < expected
            if size != expected and not short:
                err = _size_error(path, network, header, size, cutoff)
                if sniffed:
                    err = WeightsError(err.message, hint=sniffed)
                raise err
            slots = layout(network, header, cutoff)
            total = (size - header.header_bytes) // 4
            arr: np.ndarray[Any, np.dtype[np.float32]]
            if short:
                f.seek(header.header_bytes)
                arr = _fill_short(np.fromfile(f, dtype=_F32, count=total), slots, path, size)
                total = arr.size
            elif mmap and total:
                arr = np.memmap(f, dtype=_F32, mode="c", offset=header.header_bytes, shape=(total,))
            else:
                f.seek(header.header_bytes)
                arr = np.fromfile(f, dtype=_F32, count=total)
    except OSError as exc:
        raise WeightsError(f"cannot read {path}: {exc.strerror or exc}") from None
    if arr.size != total:  # the file changed under us
        raise WeightsError(f"{path}: short read ({arr.size} of {total} floats)")
    _check_finite(arr, slots, path)
    _check_writer(header, network, path)
    import torch

    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    sd: dict[str, torch.Tensor] = {"header": torch.tensor(header.to_list(), dtype=torch.int64)}
    for s in slots:
        view = arr[s.offset : s.offset + s.count]
        if s.transpose:
            rows = s.count // s.shape[0]
            view = np.ascontiguousarray(view.reshape(rows, s.shape[0]).T)
        # A separate from_numpy per record: its own storage (safetensors refuses shared ones).
        sd[s.key] = torch.from_numpy(view.reshape(s.shape))
    return header, sd


# ---------------------------------------------------------------------------------- writing


def _stored(slot: Slot, value: Any) -> np.ndarray:
    """The tensor for ``slot`` as the float32 array the file stores."""
    import torch

    if not isinstance(value, torch.Tensor):
        raise WeightsError(f"state dict entry {slot.key} is a {type(value).__name__}, not a tensor")
    if tuple(value.shape) != slot.shape:
        raise WeightsError(
            f"state dict entry {slot.key} has shape {tuple(value.shape)}, layer {slot.layer} "
            f"({slot.type}) needs {slot.shape}",
            hint=_WRITE_CAUSES,
        )
    if not value.is_floating_point():
        raise WeightsError(
            f"state dict entry {slot.key} has dtype {value.dtype}, not floating point"
        )
    value = value.detach().to("cpu", torch.float32)
    if slot.transpose:
        value = value.reshape(slot.shape[0], -1).T
    return np.asarray(value.contiguous().numpy().reshape(-1), dtype=_F32)


def plan_write(
    state_dict: Mapping[str, Any], network: Network, *, cutoff: int | None = None
) -> tuple[Header, list[tuple[Slot, Any]]]:
    """Match ``state_dict`` to the layout; strict about missing and unexpected keys."""
    header = (
        header_from_tensor(state_dict["header"], network.dialect)
        if "header" in state_dict
        else default_header(network.dialect)
    )
    slots = layout(network, header, cutoff)
    wanted = {s.key for s in slots}
    missing = [s for s in slots if s.key not in state_dict]
    if missing:
        present = sorted(
            {
                int(k.split(".")[1])
                for k in state_dict
                if k.startswith("layers.") and k.split(".")[1].isdigit()
            }
        )
        hint = _WRITE_CAUSES
        if present and missing[0].layer > present[-1]:
            hint = (
                f"the state dict has layers up to {present[-1]} only: write a partial file with "
                f"--cutoff {present[-1] + 1}"
            )
        m = missing[0]
        raise WeightsError(
            f"state dict is missing {len(missing)} entries the cfg needs, first {m.key} "
            f"(layer {m.layer}, {m.type})",
            hint=hint,
        )
    limit = check_cutoff(network, cutoff)
    extra = []
    for key in state_dict:
        if key == "header" or key in wanted or key.endswith("num_batches_tracked"):
            continue
        parts = key.split(".")
        beyond = (
            cutoff is not None
            and key.startswith("layers.")
            and parts[1].isdigit()
            and int(parts[1]) >= limit
        )
        if not beyond:  # like darknet partial, layers at or after the cutoff are dropped
            extra.append(key)
    if extra:
        raise WeightsError(
            f"state dict has {len(extra)} entries the cfg does not have, first {extra[0]!r}",
            hint="the wrong cfg, or a state dict of another model",
        )
    return header, [(s, state_dict[s.key]) for s in slots]


def iter_chunks(
    header: Header, pairs: list[tuple[Slot, Any]], path: str
) -> Iterator[np.ndarray | bytes]:
    """The file's bytes, piece by piece, with a NaN/Inf warning per offending record."""
    yield header.to_bytes()
    bad = []
    for slot, value in pairs:
        arr = _stored(slot, value)
        if not np.isfinite(arr.sum(dtype=np.float64)):
            bad.append(slot.key)
        yield arr
    if bad:
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        warnings.warn(
            f"{path}: NaN/Inf values in {', '.join(bad[:5])}{more}", RuntimeWarning, stacklevel=3
        )


def write_weights(
    path: str | os.PathLike[str],
    state_dict: Mapping[str, Any],
    network: Network,
    *,
    cutoff: int | None = None,
) -> int:
    """Write ``state_dict`` as a Darknet ``.weights`` file (atomically); returns the byte count.

    The header comes from the ``header`` entry (default 0.2.0, seen 0, what ``save_weights``
    writes); a transposed header stores connected matrices transposed again, so a file read by
    :func:`read_weights` is written back byte for byte.
    """
    path = os.fspath(path)
    header, pairs = plan_write(state_dict, network, cutoff=cutoff)
    expected = weights_bytes(network, header, cutoff)
    with atomic_writer(path) as f:
        written = 0
        for chunk in iter_chunks(header, pairs, path):
            f.write(chunk if isinstance(chunk, bytes) else chunk.data.cast("B"))
            written += len(chunk) if isinstance(chunk, bytes) else chunk.nbytes
        if written != expected:  # a bug, not a user error: never leave such a file behind
            raise WeightsError(f"internal error: wrote {written} bytes, expected {expected}")
    return written
