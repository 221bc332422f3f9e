"""Datasets as Darknet finds them: label paths, YOLO label files, lists, .data files, ImageFolder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from darkconv.train.data import (
    DataError,
    classifier_truth,
    data_spec,
    image_folder_spec,
    label_path,
    read_boxes,
)


@pytest.mark.parametrize(
    ("image", "label"),
    [
        ("data/images/a.jpg", "data/labels/a.txt"),
        ("VOC/JPEGImages/a.JPEG", "VOC/labels/a.txt"),
        ("d/raw/b.png", "d/labels/b.txt"),
        ("images/images/a.jpg", "labels/images/a.txt"),  # first occurrence only
        ("x/images/a.jpg.jpg", "x/labels/a.txt.jpg"),
        ("drawings/images/c.png", "dlabelsings/labels/c.txt"),  # Darknet's "raw" quirk
    ],
)
def test_label_path(image: str, label: str) -> None:
    assert label_path(image) == label


BAD_LABELS = [
    ("0 0.5 0.5 0.2\n", 1, "got 4 fields"),
    ("0 .5 .5 .2 .2\nx .5 .5 .2 .2\n", 2, "an integer and four numbers"),
    ("3 .5 .5 .2 .2\n", 1, "class 3 is outside 0..2"),
    ("\n1 .5 nan .2 .2\n", 2, "finite"),
    ("1 .5 .5 -.2 .2\n", 1, "w, h >= 0"),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD_LABELS)
def test_read_boxes_errors(tmp_path: Path, text: str, line: int, message: str) -> None:
    p = tmp_path / "a.txt"
    p.write_text(text)
    with pytest.raises(DataError) as info:
        read_boxes(str(p), 3)
    assert info.value.span is not None and info.value.span.line == line
    assert message in info.value.message
    assert f"{p}:{line}" in str(info.value)


def test_read_boxes(tmp_path: Path) -> None:
    p = tmp_path / "a.txt"
    p.write_text("2 0.5 0.25 0.1 0.2\n\n0 .1 .1 .05 .05\n")
    np.testing.assert_allclose(
        read_boxes(str(p), 3), [[2, 0.5, 0.25, 0.1, 0.2], [0, 0.1, 0.1, 0.05, 0.05]]
    )


def test_classifier_truth_is_substring() -> None:
    labels = ["cat", "dog", "hotdog"]
    assert classifier_truth("/x/dog/1.png", labels) == (1,)
    assert classifier_truth("/x/hotdog/1.png", labels) == (1, 2)  # strstr: both match


def _png(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path)
    return str(path)


def _dataset(tmp_path: Path, lines: list[str], kind: str = "classifier") -> Path:
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "names.txt").write_text("cat\ndog\n")
    data = tmp_path / "x.data"
    data.write_text(
        f"classes = 2\ntrain = {tmp_path / 'train.txt'}\nnames = {tmp_path / 'names.txt'}\n"
        f"backup = {tmp_path / 'backup'}\n"
    )
    return data


def test_data_spec_classifier(tmp_path: Path) -> None:
    a = _png(tmp_path / "img" / "cat_1.png")
    b = _png(tmp_path / "img" / "dog_1.png")
    spec = data_spec(str(_dataset(tmp_path, [a, "", b])), "classifier")
    assert [s.label for s in spec.train] == [0, 1]
    assert spec.train[1].where.line == 3 and spec.classes == 2 and spec.valid == ()


def test_missing_image_names_list_line(tmp_path: Path) -> None:
    a = _png(tmp_path / "img" / "cat_1.png")
    data = _dataset(tmp_path, [a, str(tmp_path / "img" / "dog_2.png")])
    with pytest.raises(DataError, match=r"train\.txt:2: .*dog_2\.png: no such image"):
        data_spec(str(data), "classifier")
    spec = data_spec(str(data), "classifier", skip_bad=True)
    assert len(spec.train) == 1 and len(spec.skipped) == 1


def test_ambiguous_label_is_an_error(tmp_path: Path) -> None:
    a = _png(tmp_path / "img" / "catdog.png")
    with pytest.raises(DataError, match="2 labels match"):
        data_spec(str(_dataset(tmp_path, [a])), "classifier")


def test_empty_list(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is empty"):
        data_spec(str(_dataset(tmp_path, ["", "  "])), "classifier")


def test_detector_labels(tmp_path: Path) -> None:
    a = _png(tmp_path / "images" / "a.png")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text("1 .5 .5 .2 .2\n")
    b = _png(tmp_path / "images" / "b.png")
    data = _dataset(tmp_path, [a, b], "detector")
    with pytest.raises(DataError, match=r"labels/b\.txt: no label file"):
        data_spec(str(data), "detector")
    (tmp_path / "labels" / "b.txt").write_text("1 .5 .5 .2\n")
    with pytest.raises(DataError, match=r"b\.txt:1: expected"):
        data_spec(str(data), "detector")
    (tmp_path / "labels" / "b.txt").write_text("")
    spec = data_spec(str(data), "detector")
    assert spec.train[0].boxes is not None and spec.train[0].boxes.shape == (1, 5)
    assert spec.train[1].boxes is not None and spec.train[1].boxes.shape == (0, 5)


def test_image_folder(tmp_path: Path) -> None:
    for split, cls, n in (("train", "b", 2), ("train", "a", 1), ("val", "b", 1)):
        for i in range(n):
            _png(tmp_path / split / cls / f"{i}.png")
    spec = image_folder_spec(str(tmp_path))
    assert spec.names == ("a", "b")
    assert [s.label for s in spec.train] == [0, 1, 1]
    assert [s.label for s in spec.valid] == [1]
    with pytest.raises(DataError, match="no train/ folder"):
        image_folder_spec(str(tmp_path / "val"))
