"""Training data as Darknet finds it: ``.data`` files, image lists, labels.

* ``.data`` keys (``read_data_cfg``, see :mod:`darkconv.apps.labels`): ``train``, ``valid``,
  ``names``/``labels``, ``backup``, ``classes``, ``top``.  Darknet's defaults apply when a key
  is absent (``train_classifier``/``train_detector``: ``data/train.list``, ``/backup/``, 2 classes).
* image lists (``get_paths``): one path per line; darkconv skips blank lines and reports a
  missing image as ``LIST:LINE``.
* classifier truth (``fill_truth`` in data.c): class ``i`` is set when ``labels[i]`` is a
  **substring** of the image path (``strstr``).  Darknet only prints "Too many or too few
  labels" and trains on the zero or multi-hot row; darkconv makes that an error (or skips the
  image with ``skip_bad``).
* detector truth (``fill_truth_detection``): the label file is the image path with the first
  occurrence of each :data:`LABEL_PATH_RULES` pattern replaced, in that order; its lines are
  ``class x y w h`` (relative centre and size).  Darknet's ``fscanf`` loop silently stops at the
  first bad line; darkconv reports ``FILE:LINE``.
* the torchvision ``ImageFolder`` layout (``DIR/train/CLASS/*``, ``DIR/val/CLASS/*``), the
  seed's ``train.py --data imagenet/``: classes are the sorted folder names.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from darkconv.apps.labels import DataFile, read_data_file, read_names, resolve_data_path
from darkconv.errors import DarkconvError, Span

__all__ = [
    "IMAGE_EXTENSIONS",
    "LABEL_PATH_RULES",
    "DataError",
    "DataSpec",
    "Sample",
    "classifier_truth",
    "data_spec",
    "image_folder_spec",
    "label_path",
    "read_boxes",
    "read_list",
]

# fill_truth_detection (pjreddie data.c): find_replace of the FIRST occurrence, in this order.
LABEL_PATH_RULES: tuple[tuple[str, str], ...] = (
    ("images", "labels"),
    ("JPEGImages", "labels"),
    ("raw", "labels"),
    (".jpg", ".txt"),
    (".png", ".txt"),
    (".JPG", ".txt"),
    (".JPEG", ".txt"),
)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tga", ".gif", ".ppm", ".pgm", ".webp")

# train_classifier / train_detector defaults for absent .data keys
DATA_DEFAULTS = {"train": "data/train.list", "backup": "/backup/", "classes": "2"}


class DataError(DarkconvError):
    """A training list, label file or dataset folder that cannot be used."""


@dataclass(frozen=True)
class Sample:
    """One training image: its path, where it was listed, and its truth.

    ``label`` is the class index for a classifier (``-1``: multi/zero-hot, see ``hot``), and
    ``boxes`` ``(m, 5)`` rows ``class, x, y, w, h`` for a detector.
    """

    path: str
    where: Span
    label: int = -1
    hot: tuple[int, ...] = ()
    boxes: np.ndarray | None = None


@dataclass(frozen=True)
class DataSpec:
    """What ``darkconv train --data`` trains on."""

    source: str  # the .data file or the ImageFolder root
    kind: str  # "classifier" or "detector"
    classes: int
    names: tuple[str, ...]
    train: tuple[Sample, ...]
    valid: tuple[Sample, ...]
    backup: str
    top: int = 1
    skipped: tuple[str, ...] = field(default=())


def _find_replace(text: str, orig: str, rep: str) -> str:
    """Darknet's ``find_replace``: only the first occurrence."""
    i = text.find(orig)
    return text if i < 0 else text[:i] + rep + text[i + len(orig) :]


def label_path(image: str) -> str:
    """Where Darknet looks for an image's YOLO label file."""
    out = image
    for orig, rep in LABEL_PATH_RULES:
        out = _find_replace(out, orig, rep)
    return out


def read_list(path: str, what: str = "image list") -> list[tuple[str, Span]]:
    """``get_paths``: the non-blank lines of a list file, each with its ``FILE:LINE``."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().split("\n")
    except FileNotFoundError:
        raise DataError(f"{path}: cannot open {what}: no such file") from None
    except OSError as err:
        raise DataError(f"{path}: cannot open {what}: {err.strerror or err}") from None
    out = []
    for n, line in enumerate(lines, start=1):
        s = line.rstrip("\r")
        if s.strip():
            out.append((s, Span(path, n, 0, s)))
    if not out:
        raise DataError(f"{path}: the {what} is empty")
    return out


def read_boxes(path: str, classes: int) -> np.ndarray:
    """A YOLO label file: ``(m, 5)`` float32 rows ``class, x, y, w, h``.

    Errors name ``FILE:LINE``: a line that is not ``int float float float float``, a class
    outside ``0..classes-1`` (Darknet would index past its truth arrays), a non-finite or
    negative size.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise DataError(f"{path}: no label file (Darknet looks for it here)") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read label file: {err.strerror or err}") from None
    rows: list[list[float]] = []
    for n, line in enumerate(text.split("\n"), start=1):
        parts = line.split()
        if not parts:
            continue
        span = Span(path, n, 0, line)
        if len(parts) != 5:
            raise DataError(f"expected 'class x y w h', got {len(parts)} fields", span)
        try:
            cls = int(parts[0])
            x, y, w, h = (float(p) for p in parts[1:])
        except ValueError:
            raise DataError(
                "expected 'class x y w h' (an integer and four numbers)", span
            ) from None
        if not 0 <= cls < classes:
            raise DataError(f"class {cls} is outside 0..{classes - 1}", span)
        if not all(math.isfinite(v) for v in (x, y, w, h)) or w < 0 or h < 0:
            raise DataError("box values must be finite, with w, h >= 0", span)
        rows.append([cls, x, y, w, h])
    return np.asarray(rows, dtype=np.float32).reshape(-1, 5)


def classifier_truth(path: str, labels: Sequence[str]) -> tuple[int, ...]:
    """``fill_truth``: every class whose label is a substring of the path."""
    return tuple(i for i, label in enumerate(labels) if label and label in path)


def _check_image(path: str, where: Span) -> None:
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such image", where)


def _load_samples(
    list_path: str,
    kind: str,
    classes: int,
    labels: Sequence[str],
    skip_bad: bool,
    skipped: list[str],
) -> tuple[Sample, ...]:
    samples = []
    for path, where in read_list(list_path):
        try:
            _check_image(path, where)
            if kind == "detector":
                samples.append(Sample(path, where, boxes=read_boxes(label_path(path), classes)))
                continue
            hot = classifier_truth(path, labels)
            if len(hot) != 1 and not (classes == 1 and not hot):
                raise DataError(
                    f"{path}: {len(hot)} labels match the path (fill_truth needs exactly one)",
                    where,
                )
            samples.append(Sample(path, where, label=hot[0] if hot else -1, hot=hot))
        except DataError as err:
            if not skip_bad:
                raise
            skipped.append(err.headline())
    if not samples:
        raise DataError(f"{list_path}: no usable image in the list")
    return tuple(samples)


def data_spec(
    path: str, kind: str, classes_hint: int | None = None, skip_bad: bool = False
) -> DataSpec:
    """Read a ``.data`` file and its lists for a ``classifier`` or ``detector`` network.

    ``classes_hint`` is the network's class count (the detector's last layer), used when the
    ``.data`` file has no ``classes=`` line; a mismatch with ``classes=`` is an error.
    """
    df: DataFile = read_data_file(path)
    opts = {**DATA_DEFAULTS, **df.options}
    classes = (
        int(opts["classes"]) if "classes" in df.options or classes_hint is None else classes_hint
    )
    if classes_hint is not None and classes != classes_hint:
        raise DataError(f"{path}: classes={classes} but the network has {classes_hint} classes")
    names_file = df.names_path("data/labels.list" if kind == "classifier" else "data/names.list")
    names: tuple[str, ...] = ()
    if names_file is not None and (kind == "classifier" or os.path.exists(names_file)):
        names = read_names(names_file)
    if kind == "classifier" and len(names) < classes:
        raise DataError(f"{names_file}: {len(names)} labels for classes={classes}")
    labels = names[:classes]
    skipped: list[str] = []
    train = _load_samples(
        resolve_data_path(opts["train"], path), kind, classes, labels, skip_bad, skipped
    )
    valid: tuple[Sample, ...] = ()
    if df.get("valid"):
        valid = _load_samples(
            resolve_data_path(opts["valid"], path), kind, classes, labels, skip_bad, skipped
        )
    backup = resolve_data_path(opts["backup"], path)
    return DataSpec(
        path,
        kind,
        classes,
        tuple(names),
        train,
        valid,
        backup,
        df.get_int("top", 1),
        tuple(skipped),
    )


def _folder_samples(root: str, classes: Sequence[str]) -> tuple[Sample, ...]:
    out = []
    for i, name in enumerate(classes):
        folder = os.path.join(root, name)
        if not os.path.isdir(folder):
            continue
        for entry in sorted(os.listdir(folder)):
            if entry.lower().endswith(IMAGE_EXTENSIONS):
                out.append(Sample(os.path.join(folder, entry), Span(folder), label=i, hot=(i,)))
    return tuple(out)


def image_folder_spec(root: str, backup: str = "backup") -> DataSpec:
    """The ``ImageFolder`` layout: ``root/train/CLASS/*.png`` and ``root/val/CLASS/*``."""
    train_dir = os.path.join(root, "train")
    if not os.path.isdir(train_dir):
        raise DataError(
            f"{root}: no train/ folder (expected train/CLASS/IMAGE and val/CLASS/IMAGE)"
        )
    classes = sorted(e for e in os.listdir(train_dir) if os.path.isdir(os.path.join(train_dir, e)))
    if not classes:
        raise DataError(f"{train_dir}: no class folders")
    train = _folder_samples(train_dir, classes)
    if not train:
        raise DataError(f"{train_dir}: no images in the class folders")
    valid = _folder_samples(os.path.join(root, "val"), classes)
    return DataSpec(root, "classifier", len(classes), tuple(classes), train, valid, backup, 5)
