"""Every colour mode a JPEG or PNG can hold decodes to the picture it was meant to be, or is
refused: each test writes an intended 8-bit picture in one mode and compares the pixels read."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from agebatch.inputs.files import Refusal
from agebatch.predict.images import read_rgb
from agebatch.predict.opening import BACKGROUND, to_rgb

H, W = 48, 64
_y, _x = np.mgrid[0:H, 0:W]
GREY = ((_x * 4 + _y) % 256).astype(np.uint8)  # every level differs from its neighbours
RGB = np.stack([GREY, 255 - GREY, ((_x * 3 + _y * 5) % 256).astype(np.uint8)], axis=-1)
ALPHA = ((_x + _y * W) * 255 // (H * W - 1)).astype(np.uint8)  # 0 (clear) to 255 (opaque)
WHITE = np.array(BACKGROUND, np.float64)


def _png16(path: Path, levels: np.ndarray, colour_type: int) -> Path:
    """A 16-bit PNG written by hand (Pillow cannot write 16-bit colour): 0 grey, 2 RGB, 4 grey
    and alpha, 6 RGBA; levels is (H, W[, channels]) uint16."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    height, width = levels.shape[:2]
    rows = b"".join(b"\x00" + levels[y].astype(">u2").tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    png = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png)
    return path


def _read(path: Path) -> np.ndarray:
    image = read_rgb(path)
    assert image is not None and image.mode == "RGB"
    return np.asarray(image).astype(np.int64)


def _over_white(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The intended look of a transparent picture: composited over white."""
    a = alpha.astype(np.float64)[..., None] / 255
    return np.rint(colour * a + WHITE * (1 - a)).astype(np.int64)


def _grey3(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=-1).astype(np.int64)


def test_16_bit_grey_is_scaled_not_clipped_to_white(tmp_path: Path) -> None:
    levels = GREY.astype(np.uint16) * 257  # the 8-bit picture, exactly, in 16 bits
    pillow = tmp_path / "pillow.png"
    Image.fromarray(levels).save(pillow)  # Pillow's own I;16 writer
    assert Image.open(pillow).mode == "I;16"
    np.testing.assert_array_equal(_read(pillow), _grey3(GREY))
    near = np.clip(levels.astype(np.int64) + 100, 0, 65535)  # v / 257 rounds to the same level
    by_hand = _png16(tmp_path / "grey16.png", near, 0)
    np.testing.assert_array_equal(_read(by_hand), _grey3(GREY))


def test_16_bit_rgb_and_rgba(tmp_path: Path) -> None:
    levels = np.clip(RGB.astype(np.int64) * 257 + 120, 0, 65535)
    read = _read(_png16(tmp_path / "rgb16.png", levels, 2))
    assert np.abs(read - RGB).max() <= 1  # Pillow keeps the high byte: v // 256
    rgba = np.concatenate([RGB, ALPHA[..., None]], axis=-1).astype(np.uint16) * 257
    read = _read(_png16(tmp_path / "rgba16.png", rgba, 6))
    assert np.abs(read - _over_white(RGB, ALPHA)).max() <= 1
    la = np.stack([GREY, ALPHA], axis=-1).astype(np.uint16) * 257
    read = _read(_png16(tmp_path / "la16.png", la, 4))
    assert np.abs(read - _over_white(_grey3(GREY), ALPHA)).max() <= 1


def test_8_bit_grey_and_grey_with_alpha(tmp_path: Path) -> None:
    Image.fromarray(GREY, "L").save(tmp_path / "l.png")
    np.testing.assert_array_equal(_read(tmp_path / "l.png"), _grey3(GREY))
    Image.fromarray(np.stack([GREY, ALPHA], axis=-1), "LA").save(tmp_path / "la.png")
    assert np.abs(_read(tmp_path / "la.png") - _over_white(_grey3(GREY), ALPHA)).max() <= 1


def test_rgba_is_composited_over_white(tmp_path: Path) -> None:
    Image.fromarray(np.concatenate([RGB, ALPHA[..., None]], axis=-1), "RGBA").save(
        tmp_path / "rgba.png"
    )
    read = _read(tmp_path / "rgba.png")
    assert np.abs(read - _over_white(RGB, ALPHA)).max() <= 1
    # The colour under fully transparent pixels (here RGB's own) does not show.
    assert (read[ALPHA == 0] == 255).all()


def test_palette_with_and_without_transparency(tmp_path: Path) -> None:
    palette = np.random.default_rng(3).integers(0, 256, (16, 3), dtype=np.uint8)
    index = (GREY // 16).astype(np.uint8)
    image = Image.fromarray(index, "P")
    image.putpalette(palette.tobytes())
    image.save(tmp_path / "p.png")
    np.testing.assert_array_equal(_read(tmp_path / "p.png"), palette[index].astype(np.int64))
    image.save(tmp_path / "pt.png", transparency=0)  # palette entry 0 is clear
    want = palette[index].astype(np.int64)
    want[index == 0] = WHITE
    np.testing.assert_array_equal(_read(tmp_path / "pt.png"), want)


def test_a_key_colour_is_transparent(tmp_path: Path) -> None:
    rgb = RGB.copy()
    rgb[:10, :10] = (0, 255, 0)
    Image.fromarray(rgb).save(tmp_path / "key.png", transparency=(0, 255, 0))
    want = rgb.astype(np.int64)
    want[:10, :10] = WHITE
    np.testing.assert_array_equal(_read(tmp_path / "key.png"), want)


def test_1_bit(tmp_path: Path) -> None:
    bits = GREY >= 128
    Image.fromarray(bits).save(tmp_path / "one.png")
    assert Image.open(tmp_path / "one.png").mode == "1"
    np.testing.assert_array_equal(_read(tmp_path / "one.png"), _grey3(bits * 255))


def _smooth() -> np.ndarray:
    """A picture JPEG keeps closely (no sharp edges)."""
    return np.stack(
        [_x * 255 // (W - 1), _y * 255 // (H - 1), 255 - _x * 255 // (W - 1)], axis=-1
    ).astype(np.uint8)


def test_adobe_cmyk_jpeg(tmp_path: Path) -> None:
    smooth = _smooth()
    Image.fromarray(smooth).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    with Image.open(tmp_path / "cmyk.jpg") as stored:
        assert stored.mode == "CMYK" and "adobe" in stored.info
    diff = np.abs(_read(tmp_path / "cmyk.jpg") - smooth)
    assert diff.mean() < 1.5 and diff.max() <= 12  # JPEG's own error, not inverted ink


def _without_adobe_marker(data: bytes) -> bytes:
    """A JPEG's bytes with its APP14 (Adobe) segment cut out."""
    at = data.index(b"\xff\xee")
    length = struct.unpack(">H", data[at + 2 : at + 4])[0]
    return data[:at] + data[at + 2 + length :]


def test_cmyk_that_cannot_be_converted_honestly_is_refused(tmp_path: Path) -> None:
    cmyk = Image.fromarray(_smooth()).convert("CMYK")
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    cmyk.save(tmp_path / "profiled.jpg", icc_profile=profile)
    with pytest.raises(Refusal, match="CMYK with a colour profile"):
        read_rgb(tmp_path / "profiled.jpg")
    buffer = io.BytesIO()
    cmyk.save(buffer, "JPEG")
    (tmp_path / "plain.jpg").write_bytes(_without_adobe_marker(buffer.getvalue()))
    with pytest.raises(Refusal, match="CMYK without the Adobe marker"):
        read_rgb(tmp_path / "plain.jpg")


@pytest.mark.parametrize(("orientation", "stored_as"), [(3, 180), (6, 90), (8, -90)])
def test_exif_rotated_jpeg_is_read_upright(
    tmp_path: Path, orientation: int, stored_as: int
) -> None:
    upright = _smooth()
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(upright).rotate(stored_as, expand=True).save(
        tmp_path / "turned.jpg", exif=exif, quality=95
    )
    read = _read(tmp_path / "turned.jpg")
    assert read.shape == upright.shape
    assert np.abs(read - upright).mean() < 1.5


def test_modes_outside_jpeg_and_png_and_impossible_levels_are_refused() -> None:
    with pytest.raises(Refusal, match="colour mode F"):
        to_rgb(Image.new("F", (4, 4), 0.5))
    with pytest.raises(Refusal, match="levels outside 0-65535"):
        to_rgb(Image.fromarray(np.full((4, 4), 70_000, np.int32), "I"))
