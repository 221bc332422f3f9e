"""``darkconv map CFG WEIGHTS --data FILE.data``: AlexeyAB's ``darknet detector map``.

mAP@0.5 over the ``.data`` file's ``valid`` list (labels found as ``detector train`` finds
them), per class and overall, printed in AlexeyAB's layout.  ``--points 0`` (default) is the
all-point (area under the curve) AP, ``11`` PascalVOC 2007, ``101`` COCO.
"""

from __future__ import annotations

import sys

import click

from darkconv.cli.options import device_option

__all__ = ["map_command"]


@click.command("map")
@click.argument("cfg")
@click.argument("weights", type=click.Path(dir_okay=False))
@click.option("--data", "data", required=True, type=click.Path(dir_okay=False),
              help="Darknet .data file (valid=, names=, classes=).")  # fmt: skip
@click.option("--iou-thresh", type=float, default=0.5, show_default=True)
@click.option("--thresh", type=float, default=0.25, show_default=True,
              help="conf_thresh of the TP/FP/precision/recall lines.")  # fmt: skip
@click.option("--points", type=click.IntRange(min=0), default=0, show_default=True,
              help="0: all-point AP; 11: VOC2007; 101: COCO.")  # fmt: skip
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True)
@click.option("--skip-bad", is_flag=True, help="Skip unreadable images and bad label files.")
@device_option()
def map_command(
    cfg: str,
    weights: str,
    data: str,
    iou_thresh: float,
    thresh: float,
    points: int,
    batch: int,
    workers: int,
    skip_bad: bool,
    device: str,
) -> None:
    """Mean average precision of a detector over the .data file's valid list."""
    from darkconv.apps.labels import read_data_file, read_names, resolve_data_path
    from darkconv.apps.steps import HEAD_TYPES, detector_setup
    from darkconv.errors import DarkconvError
    from darkconv.nn.builder import load
    from darkconv.parse.graph import load_network
    from darkconv.train.data import DataError, Sample, label_path, read_boxes, read_list
    from darkconv.train.evaluate import detector_map

    network = load_network(cfg)
    if not any(la.type in HEAD_TYPES for la in network.layers):
        raise DarkconvError(f"{cfg}: no [yolo], [region] or [detection] layer: not a detector")
    classes = detector_setup(network).prob_classes
    df = read_data_file(data)
    names_path = df.names_path("data/names.list")
    names = read_names(names_path) if names_path else ()
    if names and len(names) != classes:
        raise DarkconvError(
            f"{names_path}: {len(names)} names but the network has classes={classes}"
        )
    valid_list = resolve_data_path(df.get("valid") or df.get("train") or "data/train.txt", data)
    samples = []
    skipped = 0
    for path, where in read_list(valid_list, "valid list"):
        try:
            samples.append(Sample(path, where, boxes=read_boxes(label_path(path), classes)))
        except DataError:
            if not skip_bad:
                raise
            skipped += 1
    model = load(network, weights, device=device)
    click.echo(f" calculation mAP (mean average precision) over {len(samples)} images...")
    tty = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if tty:
            click.echo(f"\r{done}/{total}", nl=False, err=True)

    res = detector_map(model, samples, names or None, iou_thresh=iou_thresh,
                       conf_thresh=thresh, map_points=points, batch=batch, workers=workers,
                       progress=progress)  # fmt: skip
    if tty:
        click.echo("", err=True)
    if skipped:
        click.echo(f"warning: skipped {skipped} images (--skip-bad)", err=True)
    for line in res.lines():
        click.echo(line)
