"""JPEGs decoded bit for bit as Darknet's ``load_image_color`` (stb_image v2.19, SSE2 build).

Ground truth: ``fixtures/jpeg/expected.json`` (SHA-256 of Darknet's decodes, made by
``scripts/jpeg_fixture.py`` from ``../shared/fixtures/darknet/jpeg/decoded.npz``) and the decoded
image every ``fixtures/apps`` case with a JPEG input stores.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import darkconv
from darkconv.apps import jpeg_pixels
from darkconv.apps.image import load_image as load_float
from darkconv.apps.imread import DecoderNote, load_image
from darkconv.apps.jpeg import JpegDecoderMissing, exact_jpeg_available
from darkconv.apps.jpeg_header import StbRefusal, read_header

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
JPEG = FIXTURES / "jpeg"
# ../shared/fixtures next to the checkout (or a worktree one level down): developers' machines only
SHARED = next(
    (p / "shared" / "fixtures" for p in FIXTURES.parents[1:3] if (p / "shared").is_dir()),
    FIXTURES / "missing",
)
EXPECTED = json.loads((JPEG / "expected.json").read_text())["cases"]
APPS = FIXTURES / "apps"
APP_JPEGS = sorted(
    p.parent.name
    for p in APPS.glob("*/case.json")
    if json.loads(p.read_text())["image"].lower().endswith((".jpg", ".jpeg"))
)
SMALL = JPEG / "dog_q30_420_optimize.jpg"
needs_jpeglib = pytest.mark.skipif(
    not exact_jpeg_available(), reason="the exact JPEG decoder needs the jpeg extra (jpeglib)"
)


def _pillow(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).transpose(2, 0, 1)


def _exact(path: Path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DecoderNote)  # no silent fallback to Pillow
        return load_image(path)


@needs_jpeglib
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_jpegs_decode_like_darknet(name: str) -> None:
    entry = EXPECTED[name]
    if entry["file"] is not None:
        path = JPEG / entry["file"]
    else:
        path = SHARED / entry["shared_file"]
        if not path.is_file():
            pytest.skip(f"{name}: too big for the repository, only in ../shared/fixtures")
    pixels = _exact(path)
    assert pixels.dtype == np.uint8 and list(pixels.shape) == entry["shape"]
    digest = hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()
    pillow_off = int(np.count_nonzero(pixels != _pillow(path)))
    assert digest == entry["sha256"], (
        f"{name}: not Darknet's bytes ({pillow_off} differ from Pillow)"
    )


@needs_jpeglib
@pytest.mark.parametrize("name", APP_JPEGS)
def test_app_case_images_are_darknets(name: str) -> None:
    """The float image Darknet held in every apps case fed a JPEG: ``bytes / 255`` exactly."""
    case = json.loads((APPS / name / "case.json").read_text())
    with np.load(APPS / name / "arrays.npz") as z:
        ref = z["image"]
    got = load_float((APPS / name / case["image_from_case"]).resolve())
    assert got.dtype == np.float32 and np.array_equal(got, ref)


@needs_jpeglib
def test_public_load_image_and_pillow_decoder() -> None:
    path = JPEG / "horses_odd_422.jpg"
    exact = darkconv.load_image(path)
    pillow = load_image(path, decoder="pillow")
    assert exact.shape == pillow.shape == (3, *Image.open(path).size[::-1])
    assert np.array_equal(pillow, _pillow(path))  # --decoder pillow: today's behaviour
    assert not np.array_equal(exact, pillow)  # libjpeg-turbo rounds differently
    with pytest.raises(ValueError, match="decoder must be one of"):
        load_image(path, decoder="opencv")


def test_other_formats_go_through_pillow(tmp_path: Path) -> None:
    png = FIXTURES / "data" / "horses_gray_150x100.png"
    gray = load_image(png)
    assert gray.shape == (3, 100, 150) and np.array_equal(gray[0], gray[2])
    assert np.array_equal(gray, _pillow(png))
    rgba = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert np.array_equal(load_image(tmp_path / "a.png"), rgba[:, :, :3].transpose(2, 0, 1))


def _patched(tmp_path: Path, edit: str) -> Path:
    """The small fixture JPEG with one header edit stb_image refuses."""
    data = bytearray(SMALL.read_bytes())
    sof = data.index(b"\xff\xc0")
    if edit == "no_eoi":
        data = data[:-2]
    elif edit == "sof3":
        data[sof + 1] = 0xC3
    elif edit == "12bit":
        data[sof + 4] = 12
    elif edit == "bad_dqt":
        dqt = data.index(b"\xff\xdb")
        data[dqt + 4] = 0x05  # table 5
    elif edit == "dac":  # arithmetic-coding conditioning: libjpeg skips it, stb_image refuses
        data[2:2] = b"\xff\xcc\x00\x04\x00\x10"
    elif edit == "no_soi":
        data[1] = 0xD9
    out = tmp_path / f"{edit}.jpg"
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        ("no_eoi", "no EOI"),
        ("sof3", "unknown marker 0xC3"),
        ("12bit", "8-bit only"),
        ("bad_dqt", "bad DQT table"),
        ("no_soi", "no SOI"),
        ("dac", "unknown marker 0xCC"),
    ],
)
def test_header_refusals(tmp_path: Path, edit: str, reason: str) -> None:
    with pytest.raises(StbRefusal, match=reason):
        read_header(_patched(tmp_path, edit).read_bytes())


def test_refused_jpeg_falls_back_to_pillow_with_a_note(tmp_path: Path) -> None:
    path = _patched(tmp_path, "dac")  # Darknet refuses it; Pillow (libjpeg) reads it
    with pytest.warns(DecoderNote, match="cannot read this JPEG .*0xCC.*decoded with Pillow"):
        pixels = load_image(path)
    assert np.array_equal(pixels, _pillow(path))


def test_missing_extra_falls_back_to_pillow_with_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(*_: object) -> None:
        raise JpegDecoderMissing("exact JPEG decoding needs jpeglib: pip install 'darkconv[jpeg]'")

    monkeypatch.setattr("darkconv.apps.jpeg._coefficients", missing)
    with pytest.warns(DecoderNote, match=r"darkconv\[jpeg\]"):
        pixels = load_image(SMALL)
    assert np.array_equal(pixels, _pillow(SMALL))


@pytest.mark.parametrize("scale", [40, 1500, 9000, 32767])
def test_idct_fast_path_matches_the_simd_lanes(scale: int) -> None:
    """The float64 matrix path equals the lane-by-lane SSE2 emulation, including blocks whose
    16-bit lanes wrap or saturate (redone exactly)."""
    rng = np.random.default_rng(scale)
    coef = rng.integers(-scale, scale + 1, size=(3, 5, 8, 8)).astype(np.int16)
    coef[0, 0, 1:] = 0  # a flat block
    table = rng.integers(1, 8, size=64).astype(np.int64)
    got = jpeg_pixels.idct_component(coef, table)
    deq = (coef.astype(np.int64) * table.reshape(8, 8)).astype(np.int16)  # (short) product
    ref = jpeg_pixels.idct_exact(deq.reshape(-1, 8, 8)).reshape(3, 5, 8, 8)
    assert np.array_equal(got, ref.transpose(0, 2, 1, 3).reshape(24, 40))


def test_upsampler_edges() -> None:
    """stbi__resample_row_h_2's next-to-last output mixes 3*in[w-2] + in[w-1] (stb's quirk)."""
    row = np.array([[0, 100, 200]], dtype=np.uint8)
    out = jpeg_pixels.upsample(row, 3, 1, 2, 1, 6, 1)
    # out[0] = in[0]; out[1] = (3*0+100+2)>>2; out[2] = (3*100+0+2)>>2; out[3] = (3*100+200+2)>>2
    # out[4] = (3*in[1] + in[2] + 2)>>2 (the quirk); out[5] = in[2]
    assert out.tolist() == [[0, 25, 75, 125, 125, 200]]


def test_cli_has_decoder_option() -> None:
    from click.testing import CliRunner

    from darkconv.cli.main import cli

    for command in ("detect", "predict"):
        result = CliRunner().invoke(cli, [command, "--help"])
        assert result.exit_code == 0 and "--decoder [stb|pillow]" in result.output


def _blinn(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    t = x.astype(np.int64) * y + 128  # stbi__blinn_8x8
    return (t + (t >> 8)) >> 8


@needs_jpeglib
@pytest.mark.parametrize("kind", ["cmyk", "rgb"])
def test_adobe_cmyk_and_rgb_jpegs(tmp_path: Path, kind: str) -> None:
    """stb_image v2.19 reads these too (no fallback): Adobe CMYK as R = blinn(C, K) on the stored
    (inverted) planes, 'R','G','B' components without a colour transform.  No Darknet dump
    exists for them, so the reference is Pillow's planes through the same formula: equal up to
    the 1-level IDCT rounding difference between libjpeg and stb_image."""
    with Image.open(FIXTURES / "data" / "dog_96x70.jpg") as im:
        rgb = im.convert("RGB")
    path = tmp_path / f"{kind}.jpg"
    if kind == "cmyk":
        rgb.convert("CMYK").save(path, quality=95)
        with Image.open(path) as im:
            stored = 255 - np.asarray(im).astype(np.int64)  # Pillow un-inverts Adobe CMYK
        ref = _blinn(stored[..., :3], stored[..., 3:]).transpose(2, 0, 1)
    else:
        rgb.save(path, quality=95, keep_rgb=True)
        ref = _pillow(path).astype(np.int64)
    header = read_header(path.read_bytes())
    assert header.adobe_transform == 0 and header.is_rgb == (kind == "rgb")
    got = _exact(path).astype(np.int64)
    assert got.shape == ref.shape and np.abs(got - ref).max() <= 1


@needs_jpeglib
def test_pixel_bound_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """The exact decoder checks the frame size against ``max_pixels`` before reading a
    coefficient, like the Pillow path (a decompression bomb costs nothing)."""
    from darkconv.errors import ImageError

    def never(*_: object) -> None:
        raise AssertionError("decoded past the pixel bound")

    monkeypatch.setattr("darkconv.apps.jpeg._coefficients", never)
    with pytest.raises(ImageError, match="over the limit of 100"):
        load_image(SMALL, max_pixels=100)
