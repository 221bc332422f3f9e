"""``darkconv weights IN -o OUT``: convert between .weights and .pth/.safetensors.

Importing this module costs only click: torch, numpy and the cfg parser load when the command
runs.  Notes (which cfg, which cutoff) go to stderr; the one-line summary goes to stdout.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

import click

from darkconv.cli.options import dialect_option
from darkconv.errors import WeightsError

if TYPE_CHECKING:
    from darkconv.parse.graph import Network

__all__ = ["weights", "weights_kind", "find_cfg", "conv_hint"]

_CONV_N = re.compile(r"\.conv\.(\d+)$")


def conv_hint(path: str) -> int | None:
    """N of a ``darknet partial`` name like ``darknet53.conv.74``."""
    m = _CONV_N.search(os.path.basename(path))
    return int(m.group(1)) if m else None


def weights_kind(path: str) -> str | None:
    """``"weights"``, ``"pth"``, ``"safetensors"`` or ``None`` from the file name."""
    from darkconv.weights.statedict import state_dict_format

    fmt = state_dict_format(path)
    if fmt is not None:
        return fmt
    name = os.path.basename(path).lower()
    if name.endswith((".weights", ".backup")) or conv_hint(name) is not None:
        return "weights"
    return None


def _stem(path: str) -> str:
    name = os.path.basename(path)
    m = _CONV_N.search(name)
    if m:
        return name[: m.start()]
    return os.path.splitext(name)[0]


def find_cfg(path: str, cfg: str | None, dialect: str | None = None) -> tuple[Network, str]:
    """The network for ``path``, and a note saying where its cfg came from."""
    from darkconv.parse.graph import load_network, shipped_cfgs

    if cfg is not None:
        net = load_network(cfg, dialect)
        return net, f"cfg {net.path}"
    stem = _stem(path)
    beside = os.path.join(os.path.dirname(path), f"{stem}.cfg")
    if os.path.isfile(beside):
        return load_network(beside, dialect), f"cfg {beside} (found beside the input)"
    if stem in shipped_cfgs():
        net = load_network(stem, dialect)
        return net, f"cfg {net.path} (shipped cfg matching the name {stem!r})"
    raise WeightsError(
        f"no cfg for {path}: neither {beside} nor a shipped cfg named {stem!r} exists",
        hint="pass --cfg PATH (or the name of a shipped cfg, like darknet53)",
    )


def _weights_cutoff(path: str, net: Network) -> tuple[int | None, str | None]:
    """A ``.conv.N`` name's N, only when the file's byte count confirms it."""
    from darkconv.weights.io import read_header, weights_bytes

    n = conv_hint(path)
    if n is None:
        return None, None
    try:
        with open(path, "rb") as f:
            header = read_header(f.read(20), net.dialect)
            size = os.fstat(f.fileno()).st_size
    except (OSError, WeightsError):
        return None, None  # read_weights reports it properly
    if size == weights_bytes(net, header, n) and size != weights_bytes(net, header):
        return n, f"cutoff {n} from the file name (the byte count confirms it)"
    if size != weights_bytes(net, header):
        return None, f"the name suggests cutoff {n}, but the byte count does not match it"
    return None, None


def _statedict_cutoff(path: str, sd: dict, net: Network) -> tuple[int | None, str | None]:
    """A ``.conv.N`` output name's N, only when the state dict holds exactly those layers."""
    n = conv_hint(path)
    if n is None:
        return None, None
    keys = {f"layers.{la.index}.{r.key}" for la in net.layers for r in la.records}
    want = {f"layers.{la.index}.{r.key}" for la in net.layers[:n] for r in la.records}
    have = keys & set(sd)
    if have == want and want != keys:
        return n, f"cutoff {n} from the file name (the state dict holds exactly layers < {n})"
    if have == keys and want != keys:
        return None, (
            f"the name suggests cutoff {n}, but the state dict has every layer: writing all "
            f"of them (pass --cutoff {n} for a partial file)"
        )
    return None, None


@click.command("weights")
@click.argument("src", metavar="IN", type=click.Path(dir_okay=False))
@click.option(
    "-o", "--output", "dst", required=True, type=click.Path(dir_okay=False), help="Output file."
)
@click.option("--cfg", default=None, help="The cfg (a path or a shipped name like darknet53).")
@click.option(
    "--cutoff",
    type=click.IntRange(min=0),
    default=None,
    help="Only layers < N, like `darknet partial` (darknet53.conv.74 is --cutoff 74).",
)
@dialect_option()
def weights(src: str, dst: str, cfg: str | None, cutoff: int | None, dialect: str | None) -> None:
    """Convert Darknet .weights to a state dict (.pth/.pt/.safetensors), or back.

    The direction follows the extensions (.weights, .backup and .conv.N names are Darknet
    files).  Without --cfg the cfg is IN's stem + .cfg beside IN, then the shipped cfg of
    that name.  The conversion is byte-exact both ways.
    """
    kin, kout = weights_kind(src), weights_kind(dst)
    for path, kind in ((src, kin), (dst, kout)):
        if kind is None:
            raise WeightsError(
                f"cannot tell the format of {path} from its name",
                hint="use .weights (or .conv.N) for Darknet, .pth/.pt or .safetensors for PyTorch",
            )
    if (kin == "weights") == (kout == "weights"):
        raise WeightsError(
            f"{src} -> {dst}: convert between a Darknet file and a state dict "
            "(.weights -> .pth/.safetensors, or back)"
        )
    if not os.path.isfile(src):
        raise WeightsError(f"{src}: no such file")
    if os.path.abspath(src) == os.path.abspath(dst):
        raise WeightsError(f"{dst}: the output would overwrite the input")
    from darkconv.weights.statedict import check_output_path

    check_output_path(dst)
    net, cfg_note = find_cfg(src, cfg, dialect)
    click.echo(f"note: using {cfg_note}; dialect {net.dialect_reason}", err=True)

    from darkconv.weights.io import read_weights, write_weights
    from darkconv.weights.statedict import load_state_dict, save_state_dict

    note = None
    if kin == "weights":
        if cutoff is None:
            cutoff, note = _weights_cutoff(src, net)
        if note:
            click.echo(f"note: {note}", err=True)
        header, sd = read_weights(src, net, cutoff=cutoff, mmap=True)
        save_state_dict(dst, sd)
        nbytes = os.path.getsize(src)
    else:
        sd = load_state_dict(src)
        if cutoff is None:
            cutoff, note = _statedict_cutoff(dst, sd, net)
        if note:
            click.echo(f"note: {note}", err=True)
        from darkconv.weights.format import default_header, header_from_tensor

        header = (
            header_from_tensor(sd["header"], net.dialect)
            if "header" in sd
            else default_header(net.dialect)
        )
        nbytes = write_weights(dst, sd, net, cutoff=cutoff)
    limit = len(net.layers) if cutoff is None else min(cutoff, len(net.layers))
    used = [la for la in net.layers[:limit] if la.records]
    params = sum(r.count for la in used for r in la.records)
    part = "" if limit == len(net.layers) else f" (cutoff {limit})"
    click.echo(
        f"{src} -> {dst}: header {header}, {limit} layers{part} ({len(used)} with weights), "
        f"{params:,} parameters, {nbytes:,} bytes"
    )
