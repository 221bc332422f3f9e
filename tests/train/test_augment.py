"""Darknet's augmentation formulas (pjreddie image.c / data.c) on small hand-checked images."""

from __future__ import annotations

import numpy as np
import pytest

from darkconv.train.augment import (
    Augment,
    classifier_sample,
    correct_boxes,
    detection_sample,
    detection_truth,
    distort_image,
    flip_image,
    place_image,
    rotate_crop_image,
)


def _image(seed: int = 0, h: int = 6, w: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).random((3, h, w), dtype=np.float32)


def test_distort_identity_and_hue_turn() -> None:
    im = _image()
    np.testing.assert_allclose(distort_image(im, 0, 1, 1), im, atol=2e-6)
    red = np.zeros((3, 1, 1), np.float32)
    red[0] = 1
    # hue + 1/3 turns red into green; exposure .5 halves V; saturation 0 gives gray
    np.testing.assert_allclose(distort_image(red, 1 / 3, 1, 1)[:, 0, 0], [0, 1, 0], atol=1e-6)
    np.testing.assert_allclose(distort_image(red, 0, 1, 0.5)[:, 0, 0], [0.5, 0, 0], atol=1e-6)
    np.testing.assert_allclose(distort_image(red, 0, 0, 1)[:, 0, 0], [1, 1, 1], atol=1e-6)
    # exposure 2 saturates and distort_image clamps to [0, 1]
    assert distort_image(im, 0, 1, 2).max() <= 1


def test_rotate_crop_identity_and_half_turn() -> None:
    im = _image()
    np.testing.assert_allclose(rotate_crop_image(im, 0, 1, 8, 6, 0, 0, 1), im, atol=1e-6)
    # a half turn about the centre (w/2, h/2) maps x -> w - x: pixel 0 reads outside (0)
    turned = rotate_crop_image(im, np.pi, 1, 8, 6, 0, 0, 1)
    np.testing.assert_allclose(turned[:, 1:, 1:], im[:, ::-1, ::-1][:, :-1, :-1], atol=1e-5)
    np.testing.assert_allclose(turned[:, 0, :], 0, atol=1e-6)


def test_place_image_and_flip() -> None:
    im = _image()
    canvas = np.full((3, 10, 12), 0.5, np.float32)
    place_image(im, 8, 6, 3, 2, canvas)
    np.testing.assert_array_equal(canvas[:, 2:8, 3:11], im)
    assert (canvas[:, :2] == 0.5).all() and (canvas[:, :, :3] == 0.5).all()
    np.testing.assert_array_equal(flip_image(flip_image(im)), im)
    canvas = np.full((3, 4, 4), 0.5, np.float32)
    place_image(im, 8, 6, -2, -1, canvas)  # set_pixel drops what falls outside
    np.testing.assert_array_equal(canvas, im[:, 1:5, 2:6])


def test_correct_boxes() -> None:
    b = np.array([[1, 0.5, 0.5, 0.2, 0.4]], np.float32)
    # image scaled to half width, placed at x offset .25 (dx = -.25 in Darknet's call)
    out = correct_boxes(b, -0.25, 0, 0.5, 1, flip=False)
    np.testing.assert_allclose(out, [[1, 0.5, 0.5, 0.1, 0.4]], atol=1e-6)
    out = correct_boxes(np.array([[0, 0.2, 0.5, 0.2, 0.2]], np.float32), 0, 0, 1, 1, flip=True)
    np.testing.assert_allclose(out, [[0, 0.8, 0.5, 0.2, 0.2]], atol=1e-6)
    out = correct_boxes(np.array([[0, 0.95, 0.5, 0.2, 0.2]], np.float32), 0, 0, 1, 1, False)
    np.testing.assert_allclose(out, [[0, 0.925, 0.5, 0.15, 0.2]], atol=1e-6)  # clipped at 1


def test_detection_truth_row() -> None:
    b = np.array(
        [[2, 0.5, 0.5, 0.2, 0.2], [1, 0.3, 0.3, 0.0005, 0.2], [0, 0.1, 0.1, 0.1, 0.1]], np.float32
    )
    row = detection_truth(b, 2)  # capped at 2 boxes first, then the tiny one is dropped
    np.testing.assert_allclose(row, [0.5, 0.5, 0.2, 0.2, 2, 0, 0, 0, 0, 0])


def test_detection_sample_keeps_boxes_on_objects() -> None:
    im = np.zeros((3, 40, 40), np.float32)
    im[:, 10:20, 20:30] = 1  # a white square at x 20..30, y 10..20
    boxes = np.array([[0, 0.625, 0.375, 0.25, 0.25]], np.float32)
    a = Augment(jitter=0.2, hue=0.1, saturation=1.5, exposure=1.5)
    for seed in range(5):
        x, y = detection_sample(np.random.default_rng(seed), im, boxes, a, 32, 32, 90)
        bx, by, bw, bh = y[:4] * 32
        # the box still covers the white square (exposure >= 1/1.5; 2 px for the edge blend
        # and place_image's int() of the size that the box does not get)
        y0, y1, x0, x1 = (int(v) for v in (by - bh / 2, by + bh / 2, bx - bw / 2, bx + bw / 2))
        assert x[0, y0 + 2 : y1 - 2, x0 + 2 : x1 - 2].min() > 0.6, seed
        assert y[4] == 0 and y[5:].sum() == 0


@pytest.mark.parametrize("center", [False, True])
def test_classifier_sample_shape(center: bool) -> None:
    a = Augment(angle=7, aspect=1.2, hue=0.1, saturation=1.5, exposure=1.5, center=center)
    x = classifier_sample(np.random.default_rng(1), _image(h=20, w=30), a, 16, 16)
    assert x.shape == (3, 16, 16) and x.dtype == np.float32 and x.min() >= 0 and x.max() <= 1
