"""``darkconv predict`` and ``darkconv detect``: Darknet's ``classifier predict`` and
``detector test``, printing the same lines."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import click

from darkconv.apps.labels import read_data_file, read_names
from darkconv.cli.options import decoder_option, device_option, max_pixels_option
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


def _load(cfg: str, weights: str, device: str):  # noqa: ANN202 - torch-backed model
    from darkconv.nn.builder import load

    return load(cfg, weights, device=device)


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
@max_pixels_option()
@decoder_option()
@device_option()
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
    device: str,
) -> None:
    """Classify IMAGE like darknet classifier predict (same printed lines).

    The image is letterboxed to the network size as Darknet does; ties keep the lower class
    index first (Darknet's top_k).
    """
    from darkconv.apps.api import predict
    from darkconv.apps.image import load_image

    labels, data_top = _labels(names, data, "data/labels.list")
    k = top if top is not None else (data_top if data_top is not None else 1)
    im = load_image(image, max_image_pixels, decoder)
    model = _load(cfg, weights, device)
    _check_names(labels, model.network.layers[model.network.output_index].outputs)
    start = time.perf_counter()
    preds = predict(model, im, top=k, names=labels)
    click.echo(f"{image}: Predicted in {time.perf_counter() - start:f} seconds.", err=True)
    if as_json:
        rows = [{"index": p.index, "name": p.name, "prob": p.prob} for p in preds]
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
@click.option("--thresh", type=float, default=0.5, show_default=True)
@click.option(
    "--hier", type=float, default=0.5, show_default=True, help="hier_thresh (tree regions)."
)
@click.option("--nms", type=float, default=0.45, show_default=True, help="0 skips NMS.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the image with boxes.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print boxes (pixels) and probabilities as JSON."
)
@max_pixels_option()
@decoder_option()
@device_option()
def detect_command(
    cfg: str,
    weights: str,
    image: str,
    names: str | None,
    data: str | None,
    thresh: float,
    hier: float,
    nms: float,
    output: str | None,
    as_json: bool,
    max_image_pixels: int,
    decoder: str,
    device: str,
) -> None:
    """Detect objects in IMAGE like darknet detector test: "label: NN%" lines in
    Darknet's order (after its do_nms_sort)."""
    from darkconv.apps.api import detect, network_heads, prob_classes
    from darkconv.apps.image import load_image

    labels, _ = _labels(names, data, "data/names.list")
    im = load_image(image, max_image_pixels, decoder)
    if output:
        from darkconv.weights.atomic import check_output_path

        check_output_path(output, ImageError)  # fail before the forward pass, not after
    model = _load(cfg, weights, device)
    heads = network_heads(model.network)
    if not heads:
        raise DarkconvError(f"{cfg}: no [yolo], [region] or [detection] layer to decode")
    classes = prob_classes(model.network, heads)
    _check_names(labels, classes)
    start = time.perf_counter()
    result = detect(model, im, thresh=thresh, hier=hier, nms=nms, names=labels)
    click.echo(f"{image}: Predicted in {time.perf_counter() - start:f} seconds.", err=True)
    if output:
        from darkconv.apps.draw import render_boxes, save_image

        save_image(render_boxes(im, result.detections, classes), output)
    if as_json:
        click.echo(json.dumps(result.to_json()))
        return
    for line in result.lines:
        click.echo(line)
