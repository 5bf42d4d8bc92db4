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
from collections.abc import Callable

import numpy as np
import simplejpeg
from PIL import ExifTags, Image

# Larger files are left to Pillow, which reads only what it decodes (a crop is ~10 kB, a frame
# a few hundred kB: this bounds what is read into memory at once, not what may be decoded).
MAX_BYTES = 16 * 2**20
# Colour spaces whose RGB libjpeg-turbo gives as Pillow does (CMYK and YCCK are Pillow's).
PLAIN = frozenset({"YCbCr", "Gray"})
_APP0 = 0xE0
_SOS = 0xDA
_JFIF_LENGTH = 14  # identifier, version, units, two densities, thumbnail size
# DQT, DHT, DRI, COM and the frame markers libjpeg-turbo decodes (baseline, extended,
# progressive): Pillow reads them as libjpeg does, or fails where libjpeg does.
_PLAIN_MARKERS = frozenset({0xDB, 0xC4, 0xDD, 0xFE, 0xC0, 0xC1, 0xC2})
_UPRIGHT = (None, 1)


def decode_plain(
    data: bytes,
    max_side: int | None,
    max_pixels: int | None,
    draft_if: Callable[[int, int], bool] | None = None,
) -> tuple[np.ndarray, tuple[int, int]] | None:
    """A file's RGB pixels (height, width, 3) and its stored (width, height), decoded at
    Pillow's draft scale for max_side (None, or draft_if(width, height) false: whole); None when
    Pillow must read it.

    data: the file's first MAX_BYTES + 1 bytes (files.read_inside); a longer file is left to
    Pillow. max_pixels: the budget a decode must be within (opening.check_pixels); a file over
    it, or over Pillow's own limit, is left to Pillow, which refuses it in its own words.
    """
    if len(data) > MAX_BYTES or not data.startswith(b"\xff\xd8") or not _as_pillow_reads(data):
        return None
    try:
        height, width, colour, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:  # not a JPEG simplejpeg reads: Pillow says what it is
        return None
    budgets = (max_pixels, Image.MAX_IMAGE_PIXELS)
    if colour not in PLAIN or any(b is not None and width * height > b for b in budgets):
        return None
    drafted = draft_if is None or draft_if(width, height)
    scale = draft_scale((width, height), max_side if drafted else None)
    if scale > 1 and min(width, height) < 8:  # libjpeg could reach that size by another factor
        return None
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


def _as_pillow_reads(data: bytes) -> bool:
    """Whether Pillow reads the file's header without complaint and leaves the picture as
    stored. A file of only the segments every JPEG has (a whole JFIF APP0, tables, frame,
    comments) is taken as is; any other segment (EXIF, XMP, ICC, Adobe, MPF, ...) is parsed by
    Pillow first: its Python parser refuses some short or odd segments libjpeg skips, and
    EXIF or XMP may turn the picture."""
    if _only_plain_segments(data):
        return True
    try:
        with Image.open(io.BytesIO(data), formats=("JPEG",)) as image:
            return image.getexif().get(ExifTags.Base.Orientation) in _UPRIGHT
    except Exception:  # any trouble with the metadata: Pillow reads the file, as before
        return False


def _only_plain_segments(data: bytes) -> bool:
    """Whether every segment before the first scan is one Pillow reads however it is written
    (tables, frame, restart interval, comment) or a whole JFIF APP0; False when the markers
    cannot be walked."""
    position, end = 2, len(data)
    while position + 4 <= end:
        if data[position] != 0xFF:
            return False
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker == _SOS:
            return True
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        if marker == _APP0:
            payload = data[position + 4 : position + 2 + length]
            if not (payload.startswith(b"JFIF\0") and len(payload) >= _JFIF_LENGTH):
                return False
        elif marker not in _PLAIN_MARKERS:
            return False
        position += 2 + length
    return False
