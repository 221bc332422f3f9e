"""Image loading, resize_image and letterbox_image against Darknet's stored arrays (fixtures/apps)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from darkconv.apps.image import (
    as_image,
    letterbox_geometry,
    letterbox_image,
    load_image,
    resize_image,
)
from darkconv.errors import ImageError

APPS = Path(__file__).resolve().parents[2] / "fixtures" / "apps"
CASES = sorted(p.name for p in APPS.iterdir() if (p / "case.json").exists())


def _case(name: str) -> tuple[dict, dict]:
    case = json.loads((APPS / name / "case.json").read_text())
    with np.load(APPS / name / "arrays.npz") as z:
        arrays = {k: z[k] for k in z.files}
    return case, arrays


@pytest.mark.parametrize("name", CASES)
def test_letterbox_is_bit_exact(name: str) -> None:
    case, arrays = _case(name)
    net = case["network_size"]
    out = letterbox_image(arrays["image"], net["w"], net["h"])
    ref = arrays["input"][0]
    assert out.dtype == np.float32 and out.shape == ref.shape
    assert np.abs(out - ref).max() <= 1e-6
    assert np.array_equal(out, ref)  # bit-exact in float32


@pytest.mark.parametrize("name", CASES)
def test_letterbox_geometry(name: str) -> None:
    case, _ = _case(name)
    pre, net, im = case["preprocess"], case["network_size"], case["image_size"]
    geo = letterbox_geometry(im["w"], im["h"], net["w"], net["h"])
    assert (geo.new_w, geo.new_h, geo.dx, geo.dy) == (
        pre["new_w"],
        pre["new_h"],
        pre["dx"],
        pre["dy"],
    )
    assert (geo.box_offset_x, geo.box_offset_y) == (pre["box_offset_x"], pre["box_offset_y"])


@pytest.mark.parametrize("name", CASES)
def test_decoded_image(name: str) -> None:
    """Every file decodes to exactly Darknet's image (JPEGs with the jpeg extra); with
    ``decoder="pillow"`` JPEGs differ from stb_image by <= 3 levels."""
    from darkconv.apps.jpeg import exact_jpeg_available

    case, arrays = _case(name)
    path = APPS / name / case["image_from_case"]
    assert path.resolve().is_relative_to(APPS.parent.resolve())
    img = load_image(path)
    ref = arrays["image"]
    assert img.shape == ref.shape == (3, case["image_size"]["h"], case["image_size"]["w"])
    if path.suffix == ".png" or exact_jpeg_available():
        assert np.array_equal(img, ref)
    if path.suffix != ".png":
        # libjpeg(-turbo) vs Darknet's stb_image: the numbers of fixtures/apps/tolerance_measured.json
        measured = json.loads((APPS / "tolerance_measured.json").read_text())
        ref_stats = measured["decoders_vs_stb_image"][case["image"]]["pillow"]
        pil = load_image(path, decoder="pillow")
        levels = np.rint(np.abs(pil.astype(np.float64) - ref) * 255)
        assert levels.max() == ref_stats["max"] == 3
        assert abs((levels > 0).mean() - ref_stats["frac_pixels_differing"]) < 0.01
        assert abs(levels.mean() - ref_stats["mean"]) < 0.01


def test_last_row_quirk() -> None:
    """Darknet's last output row skips the second term: nearly black where h_scale rounds low."""
    case, arrays = _case("detect_yolov3-tiny_png")
    pre = case["preprocess"]
    resized = resize_image(arrays["image"], pre["new_w"], pre["new_h"])
    last = resized[:, -1, :]
    assert last.max() < 1e-4  # not the image's last row
    assert arrays["image"][:, -1, :].max() > 0.1
    assert np.array_equal(resized, arrays["input"][0][:, pre["dy"] : pre["dy"] + pre["new_h"], :])


def test_resize_identity_and_upsample_endpoints() -> None:
    rng = np.random.default_rng(0)
    im = rng.random((3, 7, 9), dtype=np.float32)
    assert np.array_equal(resize_image(im, 9, 7), im)
    up = resize_image(im, 17, 13)
    # the first column/row come straight from the image; the last column copies the last column
    assert np.array_equal(up[:, 0, 0], im[:, 0, 0])
    assert np.array_equal(up[:, 0, -1], im[:, 0, -1])


def test_letterbox_odd_leftover_pads_bottom() -> None:
    im = np.zeros((3, 70, 96), dtype=np.float32)
    out = letterbox_image(im, 128, 128)
    geo = letterbox_geometry(96, 70, 128, 128)
    assert (geo.new_h, geo.dy) == (93, 17)
    assert np.all(out[:, :17] == 0.5) and np.all(out[:, 17 + 93 :] == 0.5)
    assert np.all(out[:, 17 : 17 + 93] == 0)


def test_gray_and_alpha(tmp_path: Path) -> None:
    from PIL import Image

    rgba = np.zeros((4, 5, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 10  # alpha is dropped, not composited
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    assert img.shape == (3, 4, 5)
    assert np.all(img[0] == np.float32(200 / 255)) and np.all(img[1:] == 0)
    gray = np.arange(20, dtype=np.uint8).reshape(4, 5)
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    g = load_image(tmp_path / "g.png")
    assert np.array_equal(g[0], g[1]) and np.array_equal(g[0], g[2])
    assert np.array_equal(as_image(gray), g)


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(ImageError, match="cannot load image"):
        load_image(tmp_path / "bad.jpg")
    with pytest.raises(ImageError):
        as_image(np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(ImageError):
        letterbox_geometry(1000, 1, 128, 128)  # would become 128x0
