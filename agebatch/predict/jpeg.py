"""Decode a plain JPEG with libjpeg-turbo directly: Pillow's pixels without Pillow's Python.

Pillow parses a JPEG's markers in Python before libjpeg-turbo decodes it; for a 200 px face crop
that parsing costs as much as the decode. `decode_plain` hands the bytes to simplejpeg (the same
libjpeg-turbo, the same slow-but-exact DCT and fancy upsampling Pillow uses) and gives the same
pixels Pillow would (tests/predict/test_jpeg.py compares them), at the same reduced scale as
Pillow's `draft`. It takes only what it can read exactly like Pillow: a YCbCr or grey JPEG,
upright (no EXIF or XMP orientation but 1), within the pixel budgets, decoded without a single
libjpeg warning. Anything else returns None and is read by Pillow as before (images.read_sized),
so an odd, damaged or hostile file meets exactly the checks it met before.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import BinaryIO

import numpy as np
import simplejpeg
from PIL import ExifTags, Image

# Larger files are left to Pillow, which reads only what it decodes (a crop is ~10 kB, a frame
# a few hundred kB: this bounds what is read into memory at once, not what may be decoded).
MAX_BYTES = 16 * 2**20
# Colour spaces whose RGB libjpeg-turbo gives as Pillow does (CMYK and YCCK are Pillow's).
PLAIN = frozenset({"YCbCr", "Gray"})
_APP1 = 0xE1
_SOS = 0xDA
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})  # TEM, RSTn, SOI: markers without a length
_UPRIGHT = (None, 1)


def decode_plain(
    file: BinaryIO,
    max_side: int | None,
    max_pixels: int | None,
    draft_if: Callable[[int, int], bool] | None = None,
) -> tuple[np.ndarray, tuple[int, int]] | None:
    """An open file's RGB pixels (height, width, 3) and its stored (width, height), decoded at
    Pillow's draft scale for max_side (None, or draft_if(width, height) false: whole); None when
    Pillow must read it.

    max_pixels: the budget a decode must be within (opening.check_pixels); a file over it, or
    over Pillow's own limit, is left to Pillow, which refuses it in its own words.
    """
    if os.fstat(file.fileno()).st_size > MAX_BYTES:
        return None
    data = file.read()
    if not data.startswith(b"\xff\xd8") or not _upright(data):
        return None
    try:
        height, width, colour, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:  # not a JPEG simplejpeg reads: Pillow says what it is
        return None
    budget = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    if colour not in PLAIN or budget is None or width * height > budget:
        return None
    drafted = draft_if is None or draft_if(width, height)
    scale = draft_scale((width, height), max_side if drafted else None)
    wanted = (-(-width // scale), -(-height // scale))
    try:
        pixels = simplejpeg.decode_jpeg(
            data, colorspace="RGB", min_width=wanted[0], min_height=wanted[1], strict=True
        )
    except ValueError:  # a libjpeg warning or error: Pillow decides what the file is
        return None
    if pixels.shape != (wanted[1], wanted[0], 3):
        return None
    return pixels, (width, height)


def draft_scale(size: tuple[int, int], max_side: int | None) -> int:
    """The reduction Pillow's JpegImageFile.draft picks for (max_side, max_side): the largest of
    8, 4, 2, 1 that keeps both sides at or above max_side (1 when max_side is None)."""
    if max_side is None:
        return 1
    most = min(size[0] // max_side, size[1] // max_side)
    for scale in (8, 4, 2):
        if most >= scale:
            return scale
    return 1


def _upright(data: bytes) -> bool:
    """Whether Pillow would leave the picture as stored: no APP1 segment (where EXIF and XMP
    live), or one whose orientation Pillow reads as 1 or none."""
    if not _has_app1(data):
        return True
    try:
        with Image.open(io.BytesIO(data), formats=("JPEG",)) as image:
            return image.getexif().get(ExifTags.Base.Orientation) in _UPRIGHT
    except Exception:  # any trouble with the metadata: Pillow reads the file, as before
        return False


def _has_app1(data: bytes) -> bool:
    """Whether an APP1 segment comes before the first scan; True when the markers cannot be
    walked (then Pillow reads the file)."""
    position, end = 2, len(data)
    while position + 4 <= end:
        if data[position] != 0xFF:
            return True
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _STANDALONE:  # no length to walk by
            return True
        if marker == _SOS:
            return False
        if marker == _APP1:
            return True
        position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
    return True
