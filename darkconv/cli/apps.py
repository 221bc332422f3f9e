"""``darkconv predict`` and ``darkconv detect``: Darknet's ``classifier predict`` and
``detector test`` in the network's dialect (or ``--dialect``), printing the same lines."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import click

from darkconv.apps.labels import read_data_file, read_names
from darkconv.cli.options import (
    decoder_option,
    device_option,
    dialect_option,
    max_pixels_option,
    semantics_options,
    size_option,
)
from darkconv.errors import DarkconvError, ImageError

__all__ = ["detect_command", "predict_command"]


def _labels(
    names: str | None, data: str | None, default: str
) -> tuple[tuple[str, ...] | None, int | None]:
    """Names (``--names`` or the ``.data`` file's ``names=``) and the data file's ``top=``."""
    if names and data:
        raise click.UsageError("give --names or --data, not both")
    if names:
        return read_names(names), None
    if data:
        df = read_data_file(data)
        path = df.names_path(default)
        assert path is not None
        top = df.get_int("top", 1) if df.get("top") is not None else None
        return read_names(path), top
    return None, None


def _check_names(names: Sequence[str] | None, classes: int) -> None:
    if names is not None and len(names) < classes:
        click.echo(
            f"warning: {len(names)} names for {classes} classes; the others print as numbers",
            err=True,
        )


def _load(
    cfg: str,
    weights: str,
    device: str,
    dialect: str | None,
    intended_activations: bool = False,
    nofuse: bool = False,
    size: tuple[int, int] | None = None,
) -> Any:
    from darkconv.nn.builder import load

    return load(cfg, weights, device=device, dialect=dialect,
                intended_activations=intended_activations, nofuse=nofuse, size=size)  # fmt: skip


@click.command("predict")
@click.argument("cfg")
@click.argument("weights", type=click.Path(dir_okay=False))
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("--names", type=click.Path(dir_okay=False), help="Class names, one per line.")
@click.option("--data", type=click.Path(dir_okay=False), help="Darknet .data file (names=, top=).")
@click.option(
    "--top", type=click.IntRange(min=0), default=None, help="Lines to print [data top=, else 1]."
)
@click.option("--json", "as_json", is_flag=True, help="Print the predictions as JSON.")
@dialect_option()
@semantics_options
@max_pixels_option()
@decoder_option()
@device_option()
@size_option()
def predict_command(
    cfg: str,
    weights: str,
    image: str,
    names: str | None,
    data: str | None,
    top: int | None,
    as_json: bool,
    max_image_pixels: int,
    decoder: str,
    dialect: str | None,
    device: str,
    size: tuple[int, int] | None,
    **semantics: bool,
) -> None:
    """Classify IMAGE like darknet classifier predict (same printed lines).

    pjreddie letterboxes the image and prints "NN.NN%: name"; AlexeyAB resizes the shorter side,
    crops the centre and prints "name: 0.NNNNNN".  Ties keep the lower class index first (top_k).
    """
    from darkconv.apps.api import predict
    from darkconv.apps.image import load_image

    labels, data_top = _labels(names, data, "data/labels.list")
    k = top if top is not None else (data_top if data_top is not None else 1)
    im = load_image(image, max_image_pixels, decoder)
    model = _load(cfg, weights, device, dialect, size=size, **semantics)
    _check_names(labels, model.network.layers[model.network.output_index].outputs)
    start = time.perf_counter()
    preds = predict(model, im, top=k, names=labels, dialect=dialect)
    click.echo(f"{image}: Predicted in {time.perf_counter() - start:f} seconds.", err=True)
    if as_json:
        rows = [{"index": p.index, "name": p.name, "prob": p.prob, "line": p.line} for p in preds]
        click.echo(json.dumps({"predictions": rows}))
        return
    for p in preds:
        click.echo(p.line)


@click.command("detect")
@click.argument("cfg")
@click.argument("weights", type=click.Path(dir_okay=False))
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("--names", type=click.Path(dir_okay=False), help="Class names, one per line.")
@click.option("--data", type=click.Path(dir_okay=False), help="Darknet .data file (names=).")
@click.option(
    "--thresh", type=float, default=None, help="[the dialect's: pjreddie 0.5, AlexeyAB 0.25]"
)
@click.option(
    "--hier", type=float, default=0.5, show_default=True, help="hier_thresh (tree regions)."
)
@click.option("--nms", type=float, default=0.45, show_default=True, help="0 skips NMS.")
@click.option(
    "--ext-output", is_flag=True, help="AlexeyAB's -ext_output: each line with its box (pixels)."
)
@click.option(
    "--letter-box", is_flag=True, help="AlexeyAB's -letter_box (pjreddie always letterboxes)."
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the image with boxes.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print boxes (pixels) and probabilities as JSON."
)
@dialect_option()
@semantics_options
@max_pixels_option()
@decoder_option()
@device_option()
@size_option()
def detect_command(
    cfg: str,
    weights: str,
    image: str,
    names: str | None,
    data: str | None,
    thresh: float | None,
    hier: float,
    nms: float,
    ext_output: bool,
    letter_box: bool,
    output: str | None,
    as_json: bool,
    max_image_pixels: int,
    decoder: str,
    dialect: str | None,
    device: str,
    size: tuple[int, int] | None,
    **semantics: bool,
) -> None:
    """Detect objects in IMAGE like darknet detector test: the same "label: NN%" lines in
    Darknet's order (pjreddie: after do_nms_sort; AlexeyAB: sorted by left edge)."""
    from darkconv.apps.api import detect, detector_setup
    from darkconv.apps.image import load_image

    labels, _ = _labels(names, data, "data/names.list")
    if ext_output and dialect == "pjreddie":
        raise click.UsageError("--ext-output is AlexeyAB's option (pjreddie's darknet has none)")
    im = load_image(image, max_image_pixels, decoder)
    if output:
        from darkconv.weights.atomic import check_output_path

        check_output_path(output, ImageError)  # fail before the forward pass, not after
    model = _load(cfg, weights, device, dialect, size=size, **semantics)
    try:
        setup = detector_setup(model.network, dialect, letter_box)
    except DarkconvError as err:
        raise DarkconvError(f"{cfg}: {err}") from None
    if ext_output and not setup.dialect.ext_output:
        raise click.UsageError(
            f"--ext-output is AlexeyAB's option; {cfg} is {setup.dialect.name}'s (use --dialect)"
        )
    _check_names(labels, setup.classes)
    start = time.perf_counter()
    result = detect(model, im, thresh, hier, nms, labels, dialect, letter_box, ext_output)
    click.echo(f"{image}: Predicted in {time.perf_counter() - start:f} seconds.", err=True)
    if output:
        from darkconv.apps.draw import render_boxes, save_image

        save_image(render_boxes(im, result.drawn(), setup.classes), output)
    if as_json:
        click.echo(json.dumps(result.to_json()))
        return
    for line in result.lines:
        click.echo(line)
