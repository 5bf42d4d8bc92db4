"""The direct JPEG decode gives Pillow's pixels, or leaves the file to Pillow; never another
answer. Each generated file is read twice: as the stage reads it, and with the direct decode
switched off (Pillow alone, as before it existed)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import ExifTags, Image

from agebatch.inputs.files import Refusal
from agebatch.predict import images, jpeg
from agebatch.predict.faces import crop_shaped
from agebatch.predict.images import read_sized
from agebatch.predict.opening import Limits

SIDES = st.sampled_from([None, 1, 2, 3, 5, 8, 64, 68, 100, 128])
# Segments Pillow's Python parser reads by hand (and may refuse when short) that libjpeg skips.
SEGMENT_HEADS = [b"", b"JFIF\0", b"JFIF\0\1\2", b"Adobe", b"ICC_PROFILE\0", b"MPF\0", b"Exif\0\0"]
Outcome = tuple[str, object]


def picture(width: int, height: int, seed: int, mode: str) -> Image.Image:
    """Smooth shapes with some noise: what a camera gives, not white noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    channels = [
        127
        + 100 * np.sin(x / rng.uniform(3, 40) + rng.uniform(0, 6))
        + 30 * np.cos(y / rng.uniform(3, 40))
        + rng.normal(0, 12, (height, width))
        for _ in range(3)
    ]
    rgb = Image.fromarray(np.clip(np.stack(channels, axis=2), 0, 255).astype(np.uint8))
    return rgb.convert(mode)


@st.composite
def jpegs(draw: st.DrawFn) -> bytes:
    """A JPEG as cameras and phones write them: grey or colour, any subsampling, baseline or
    progressive, with or without an EXIF or XMP orientation or an ICC profile; sometimes CMYK
    or an MPO (the file Pillow's JPEG opener also reads)."""
    mode = draw(st.sampled_from(["RGB", "RGB", "L", "CMYK"]))
    width, height = draw(st.integers(1, 260)), draw(st.integers(1, 260))
    image = picture(width, height, draw(st.integers(0, 2**16)), mode)
    options: dict[str, object] = {
        "quality": draw(st.integers(20, 98)),
        "progressive": draw(st.booleans()),
        "optimize": draw(st.booleans()),
    }
    if mode == "RGB":
        options["subsampling"] = draw(st.sampled_from([0, 1, 2]))
    orientation = draw(st.sampled_from([None, None, 1, 2, 3, 4, 5, 6, 7, 8]))
    if orientation is not None:
        exif = Image.Exif()
        exif[ExifTags.Base.Orientation] = orientation
        options["exif"] = exif.tobytes()
    if draw(st.booleans()):
        turn = draw(st.sampled_from([1, 3, 6, 8]))
        options["xmp"] = (
            b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
            b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
            b'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="%d"/>'
            b"</rdf:RDF></x:xmpmeta>" % turn
        )
    if draw(st.booleans()):
        options["icc_profile"] = b"\0" * 128  # not a real profile: Pillow keeps the bytes
    out = io.BytesIO()
    if mode == "RGB" and draw(st.integers(0, 9)) == 0:
        image.save(out, "MPO", save_all=True, append_images=[image.rotate(90)], **options)
    else:
        image.save(out, "JPEG", **options)
    return out.getvalue()


def outcome(
    path: Path,
    side: int | None,
    draft_if: Callable[[int, int], bool] | None,
    limits: Limits,
    direct: bool,
) -> Outcome:
    """What read_sized gives: the pixels and stored size, None, or the refusal's words."""
    with pytest.MonkeyPatch.context() as patch:
        if not direct:
            patch.setattr(images, "decode_plain", lambda *args: None)
        try:
            read = read_sized(path, side, draft_if, limits)
        except Refusal as refusal:
            return "refused", str(refusal)
    if read is None:
        return "unreadable", None
    image, stored = read
    assert image.mode == "RGB"
    return "read", (np.asarray(image).tobytes(), image.size, stored)


def _file(folder: Path, data: bytes) -> Path:
    path = folder / f"{hash(data) & 0xFFFFFFFF:08x}.jpg"
    path.write_bytes(data)
    return path


def _taken(
    path: Path,
    side: int | None,
    max_pixels: int | None,
    draft_if: Callable[[int, int], bool] | None = None,
) -> bool:
    """Whether the direct decode reads the file itself (and does not leave it to Pillow), asked
    as read_sized asks it (draft_if: reduce the scale only for such sizes)."""
    return jpeg.decode_plain(path.read_bytes(), side, max_pixels, draft_if) is not None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=jpegs(), side=SIDES, by_size=st.booleans())
def test_the_direct_decode_gives_pillows_pixels(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, side: int | None, by_size: bool
) -> None:
    path = _file(tmp_path_factory.getbasetemp(), data)
    draft_if = crop_shaped if by_size else None
    limits = Limits(inside=path.parent, max_pixels=25_000_000)
    direct = outcome(path, side, draft_if, limits, direct=True)
    assert direct == outcome(path, side, draft_if, limits, direct=False)
    with Image.open(path) as image:
        plain = image.mode in ("RGB", "L") and image.getexif().get(0x0112) in (None, 1)
        # under 8 px a side, a reduced scale is left to Pillow (libjpeg may pick another factor)
        drafted = draft_if is None or draft_if(*image.size)
        tiny = min(image.size) < 8 and jpeg.draft_scale(image.size, side if drafted else None) > 1
    # ... and the plain, upright ones really were decoded directly (not all left to Pillow).
    assert _taken(path, side, limits.max_pixels, draft_if) == (plain and not tiny)


def test_a_tiny_photo_not_shaped_like_a_crop_is_decoded_whole_and_directly(
    tmp_path: Path,
) -> None:
    # Found by Hypothesis in CI: 2x3 px, side 1, by size. Not crop-shaped, so not reduced, so
    # the direct decode takes it (the check once asked without draft_if and disagreed).
    out = io.BytesIO()
    Image.new("RGB", (2, 3), (120, 80, 60)).save(out, "JPEG")
    path = _file(tmp_path, out.getvalue())
    limits = Limits(inside=tmp_path, max_pixels=25_000_000)
    assert outcome(path, 1, crop_shaped, limits, True) == outcome(
        path, 1, crop_shaped, limits, False
    )
    assert _taken(path, 1, limits.max_pixels, crop_shaped)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=jpegs(),
    cut=st.floats(0, 1),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=4),
    segment=st.none()
    | st.tuples(
        st.sampled_from([0xE0, 0xE1, 0xE2, 0xED, 0xEE, 0xEF, 0xFE]),
        st.sampled_from(SEGMENT_HEADS),
        st.binary(max_size=12),
    ),
    side=SIDES,
)
def test_a_damaged_jpeg_meets_the_same_fate_either_way(
    tmp_path_factory: pytest.TempPathFactory,
    data: bytes,
    cut: float,
    flips: list[tuple[float, int]],
    segment: tuple[int, bytes, bytes] | None,
    side: int | None,
) -> None:
    damaged = bytearray(data[: max(2, int(len(data) * cut))] if cut < 0.98 else data)
    for where, value in flips:
        damaged[int(where * (len(damaged) - 1))] = value
    if segment is not None:  # an odd segment right after the start-of-image marker
        marker, head, tail = segment
        payload = head + tail
        damaged[2:2] = bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload
    path = _file(tmp_path_factory.getbasetemp(), bytes(damaged))
    limits = Limits(inside=path.parent, max_pixels=25_000_000)
    assert outcome(path, side, None, limits, True) == outcome(path, side, None, limits, False)


def test_the_pixel_budget_and_pillows_limit_still_refuse_in_the_same_words(
    tmp_path: Path,
) -> None:
    path = tmp_path / "wide.jpg"
    picture(300, 200, 0, "RGB").save(path)
    limits = Limits(inside=tmp_path, max_pixels=50_000)
    assert outcome(path, None, None, limits, True) == (
        "refused",
        "300x200 pixels, over the budget of 50,000",
    )
    assert not _taken(path, None, 50_000) and _taken(path, None, 60_000)
    # Pillow's own limit refuses too, with a budget above it or none (trusted folders).
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Image, "MAX_IMAGE_PIXELS", 20_000)
        for budget in (None, 100_000):
            assert not _taken(path, None, budget)
            refused = outcome(path, None, None, Limits(max_pixels=budget), True)
            assert refused[0] == "refused" and "Pillow's pixel limit" in str(refused[1])


def test_no_more_than_the_byte_bound_is_read_for_the_direct_decode(tmp_path: Path) -> None:
    path = tmp_path / "small.jpg"
    picture(64, 64, 0, "RGB").save(path)
    size = path.stat().st_size
    read: list[int] = []
    with pytest.MonkeyPatch.context() as patch:
        direct = jpeg.decode_plain
        patch.setattr(
            images, "decode_plain", lambda data, *a: read.append(len(data)) or direct(data, *a)
        )
        patch.setattr(jpeg, "MAX_BYTES", 100)
        pillow = outcome(path, None, None, Limits(inside=tmp_path), True)
        assert read == [101] < [size]  # then left to Pillow, which reads the file itself
        assert pillow == outcome(path, None, None, Limits(inside=tmp_path), False)
        patch.setattr(jpeg, "MAX_BYTES", size)
        assert _taken(path, None, None)


@pytest.mark.parametrize(
    ("size", "side", "scale"),
    [((200, 200), 68, 2), ((200, 200), 128, 1), ((512, 512), 68, 4), ((1024, 600), 68, 8),
     ((135, 200), 68, 1), ((200, 200), None, 1), ((50, 50), 68, 1)],
)  # fmt: skip
def test_the_draft_scale_is_pillows(
    tmp_path: Path, size: tuple[int, int], side: int | None, scale: int
) -> None:
    assert jpeg.draft_scale(size, side) == scale
    path = tmp_path / "p.jpg"
    picture(*size, 1, "RGB").save(path)
    with Image.open(path) as image:
        if side is not None:
            image.draft("RGB", (side, side))
        drafted = image.size
    assert drafted == (-(-size[0] // scale), -(-size[1] // scale))


def test_tiny_pictures_at_every_draft_give_pillows_pixels(tmp_path: Path) -> None:
    # Under 8 px a side libjpeg can reach the drafted size by more than one factor.
    limits = Limits(inside=tmp_path, max_pixels=25_000_000)
    for width in range(1, 13):
        for height in range(1, 13):
            path = tmp_path / f"{width}x{height}.jpg"
            picture(width, height, width * 13 + height, "RGB").save(path, quality=90)
            for side in range(1, 7):
                assert outcome(path, side, None, limits, True) == outcome(
                    path, side, None, limits, False
                ), (width, height, side)
