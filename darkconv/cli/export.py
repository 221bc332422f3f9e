"""``darkconv export CFG WEIGHTS -o OUT``: ONNX / TorchScript / ``torch.export`` file, the
format taken from OUT's extension (:func:`darkconv.export.api.export`)."""

from __future__ import annotations

import click

from darkconv.cli.options import dialect_option, size_option

__all__ = ["export_command"]

_FORMATS = ".onnx (ONNX), .pt (TorchScript) or .pt2 (torch.export)"


@click.command("export")
@click.argument("cfg")
@click.argument("weights", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help=f"The file to write: {_FORMATS}.")  # fmt: skip
@click.option("--opset", type=int, default=None,
              help="ONNX opset [20; 13..23 are tested].")  # fmt: skip
@click.option("--dynamic-batch/--static-batch", default=True, show_default=True,
              help="A symbolic batch dimension, or a fixed batch of 1.")  # fmt: skip
@click.option("--fp16", is_flag=True, help="Run the network in float16 (float32 in and out).")
@click.option("--fuse/--no-fuse", default=True, show_default=True,
              help="Fold batch norm into the convolutions first.")  # fmt: skip
@click.option("--decode", is_flag=True,
              help="Append Darknet's box decoding: outputs boxes (N,K,4) and scores (N,K,classes).")  # fmt: skip
@click.option("--nms", "nms", type=float, is_flag=False, flag_value=0.45, default=None,
              metavar="[IOU]",
              help="Append ONNX NonMaxSuppression (implies --decode), IoU threshold [0.45].")  # fmt: skip
@click.option("--thresh", type=float, default=0.5, show_default=True,
              help="With --nms: keep scores above this (Darknet's -thresh).")  # fmt: skip
@click.option("--max-det", type=click.IntRange(min=1), default=100, show_default=True,
              help="With --nms: rows per image in the padded outputs.")  # fmt: skip
@size_option()
@dialect_option()
def export_command(
    cfg: str,
    weights: str,
    output: str,
    opset: int | None,
    dynamic_batch: bool,
    fp16: bool,
    fuse: bool,
    decode: bool,
    nms: float | None,
    thresh: float,
    max_det: int,
    size: tuple[int, int] | None,
    dialect: str | None,
) -> None:
    """Export CFG + WEIGHTS as a deployable graph; the format comes from OUT's extension."""
    from darkconv.export.api import DEFAULT_OPSET, export, output_names
    from darkconv.nn.builder import load

    model = load(cfg, weights, dialect=dialect, size=size)
    path = export(
        model, output, opset=opset or DEFAULT_OPSET, dynamic_batch=dynamic_batch, fp16=fp16,
        fuse=fuse, decode=decode, nms=nms is not None, thresh=thresh,
        nms_thresh=0.45 if nms is None else nms, max_det=max_det,
    )  # fmt: skip
    names = output_names(model, decode or nms is not None, nms is not None)
    click.echo(f"wrote {path}: outputs {', '.join(names)}")
