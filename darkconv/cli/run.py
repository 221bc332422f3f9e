"""``darkconv run`` (every layer's output, as Darknet's flat buffers) and ``darkconv verify``
(layer-by-layer comparison with Darknet's own dumps).

Importing this module costs only click; torch and numpy load when a command runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import click

from darkconv.cli.options import (
    device_option,
    dialect_option,
    exact_batch_option,
    semantics_options,
    size_option,
)
from darkconv.errors import DarkconvError

if TYPE_CHECKING:
    import numpy as np

    from darkconv.nn.builder import DarknetModel

__all__ = ["run_command", "verify_command", "compare_outputs", "read_input", "relative_error"]

_BN = click.Choice(["cpu", "gpu"])


def read_input(path: str, model: DarknetModel) -> np.ndarray:
    """A float32 NCHW ``.npy`` (or one CHW image / a flat ``(N, inputs)``) sized for the net."""
    import numpy as np

    from darkconv.parse.budget import Cost, check_fits, outputs_cost

    try:
        arr = np.load(path, allow_pickle=False, mmap_mode="r")  # the header first: no pixels yet
    except (OSError, ValueError) as exc:
        raise DarkconvError(f"{path}: cannot read a .npy array: {exc}") from None
    if arr.dtype.kind not in "fiu":
        raise DarkconvError(f"{path}: expected a numeric array, got dtype {arr.dtype}")
    need = model.inputs if model.input_shape == (0, 0, 0) else int(np.prod(model.input_shape))
    if arr.ndim in (1, 3) and arr.size == need:
        arr = arr.reshape(1, *arr.shape)
    if arr.ndim < 2 or arr.size != arr.shape[0] * need:
        want = model.input_shape if model.input_shape != (0, 0, 0) else (model.inputs,)
        raise DarkconvError(
            f"{path}: input shape {arr.shape} does not fit the network input (N, {', '.join(map(str, want))})"
        )
    check_fits(Cost(arr.size * 4, f"{path}: {arr.shape} input"))
    check_fits(outputs_cost(model.network, arr.shape[0]))
    # a copy: the memory map is read-only, and torch.from_numpy warns on a non-writable array
    return np.array(arr, dtype=np.float32, order="C")


def _load(
    cfg: str,
    weights: str,
    device: str,
    bn: str,
    dialect: str | None,
    size: tuple[int, int] | None = None,
    exact: bool = False,
    **semantics: bool,
) -> DarknetModel:
    from darkconv.cli.weights import conv_hint
    from darkconv.nn.builder import load

    return load(
        cfg, weights, device=device, bn_mode=bn, cutoff=conv_hint(weights), dialect=dialect,
        **semantics,
        size=size, batch_invariant=exact,
    )  # fmt: skip


def relative_error(out: np.ndarray, ref: np.ndarray) -> float:
    """max|out - ref| / max|ref| over the finite reference values (fixtures/README.md
    "Tolerance"); NaN where exactly one side is NaN/Inf at some position.  A zero reference
    gives max|out - ref|."""
    import numpy as np

    out = out.reshape(-1).astype(np.float64)
    ref = ref.reshape(-1).astype(np.float64)
    both = ~np.isfinite(ref) & ~np.isfinite(out)
    same_nonfinite = both & ((np.isnan(ref) & np.isnan(out)) | (ref == out))
    if np.any(~np.isfinite(ref) != ~np.isfinite(out)) or np.any(both & ~same_nonfinite):
        return float("nan")
    fin = np.isfinite(ref)
    if not fin.any():
        return 0.0
    diff = float(np.max(np.abs(out[fin] - ref[fin])))
    scale = float(np.max(np.abs(ref[fin])))
    return diff / scale if scale > 0 else diff


def compare_outputs(
    model: DarknetModel, outs: dict[str, np.ndarray], refs: Any, tol: float
) -> list[tuple[int, str, float, bool]]:
    """Rows ``(index, type, max relative error, ok)`` for every ``layer_NNN`` in ``refs``."""
    rows = []
    for key in sorted(k for k in refs.files if k.startswith("layer_")):
        try:
            index = int(key[6:])
        except ValueError:
            continue
        if key not in outs:
            raise DarkconvError(f"reference has {key}, but the network has {len(outs)} layers")
        ref, out = refs[key], outs[key]
        if ref.size != out.size:
            raise DarkconvError(
                f"{key}: reference has {ref.size} values, the layer outputs {out.size}"
            )
        err = relative_error(out, ref)
        rows.append((index, model.types[index], err, bool(err <= tol)))
    return rows


def _write_npz_atomic(path: str, arrays: dict[str, np.ndarray]) -> None:
    import numpy as np

    from darkconv.weights.atomic import atomic_writer

    with atomic_writer(path) as fh:
        np.savez(fh, **cast(dict[str, Any], arrays))


@click.command("run")
@click.argument("cfg")
@click.argument("weights", type=click.Path(dir_okay=False))
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="float32 NCHW .npy fed as is (no preprocessing), like Darknet's raw buffer.",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="The .npz to write: every layer as layer_NNN.",
)
@device_option(default="auto")
@click.option(
    "--bn",
    type=_BN,
    default="cpu",
    show_default=True,
    help="Batch norm formula: Darknet CPU (sqrt(var)+1e-6) or GPU (sqrt(var+1e-5)).",
)
@dialect_option()
@semantics_options
@size_option()
@exact_batch_option()
def run_command(cfg: str, weights: str, input_path: str, output: str, device: str, bn: str, dialect: str | None, size: tuple[int, int] | None, exact_batch: bool, **semantics: bool) -> None:  # fmt: skip
    """Run CFG with WEIGHTS on an input and write every layer's output.

    Each layer is stored as ``layer_NNN`` (zero-padded Darknet index) in Darknet's flat buffer
    order, shaped ``(N, c, h, w)`` when c*h*w equals the layer's outputs, else ``(N, outputs)``.
    The file is written atomically.
    """
    from darkconv.weights.atomic import check_output_path

    check_output_path(output)  # fail before the forward pass, not after
    model = _load(cfg, weights, device, bn, dialect, size, exact_batch, **semantics)
    x = read_input(input_path, model)
    outs = model.darknet_outputs(x)
    _write_npz_atomic(output, outs)
    click.echo(f"wrote {len(outs)} layers to {output}")


@click.command("verify")
@click.argument("cfg")
@click.argument("weights", type=click.Path(dir_okay=False))
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False))
@click.option(
    "--reference",
    required=True,
    type=click.Path(dir_okay=False),
    help="Darknet's dumps: an .npz of layer_NNN arrays (any subset of layers).",
)
@click.option(
    "--tol",
    type=float,
    default=5e-4,
    show_default=True,
    help="Max relative error per layer (max|diff|/max|ref|).",
)
@device_option(default="auto")
@click.option("--bn", type=_BN, default="cpu", show_default=True)
@dialect_option()
@semantics_options
@size_option()
@exact_batch_option()
def verify_command(cfg: str, weights: str, input_path: str, reference: str, tol: float, device: str, bn: str, dialect: str | None, size: tuple[int, int] | None, exact_batch: bool, **semantics: bool) -> None:  # fmt: skip
    """Compare every layer with Darknet's outputs; exit 1 on the first mismatch found.

    Prints one row per reference layer (layer, type, max relative error, ok) and names the first
    layer that diverges.
    """
    import numpy as np

    model = _load(cfg, weights, device, bn, dialect, size, exact_batch, **semantics)
    x = read_input(input_path, model)
    try:
        refs = np.load(reference, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DarkconvError(f"{reference}: cannot read an .npz: {exc}") from None
    rows = compare_outputs(model, model.darknet_outputs(x), refs, tol)
    if not rows:
        raise DarkconvError(f"{reference}: no layer_NNN arrays to compare")
    click.echo(f"{'layer':>5}  {'type':<16} {'max rel err':>12}  ok")
    for index, kind, err, ok in rows:
        click.echo(f"{index:>5}  {kind:<16} {err:>12.3e}  {'ok' if ok else 'FAIL'}")
    bad = [r for r in rows if not r[3]]
    if bad:
        index, kind, err, _ = bad[0]
        click.echo(
            f"first diverging layer: {index} ({kind}), max relative error {err:.3e} > {tol:g}; "
            f"{len(bad)} of {len(rows)} layers over tolerance"
        )
        raise SystemExit(1)  # click returns (not raises) its Exit under standalone_mode=False
    click.echo(f"all {len(rows)} layers within {tol:g}")
