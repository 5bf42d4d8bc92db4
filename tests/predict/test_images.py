"""Reading photos for the model: crops, frames, auto, no face, two faces, EXIF, regions."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image

from agebatch.config import WHOLE_FRAME
from agebatch.predict.faces import FRAME_ZOOMS, FaceFinder, aligned_crop_chip
from agebatch.predict.images import (
    BRIGHTENED,
    REALIGNED,
    SHARPENED,
    Decoded,
    InputSpec,
    Reading,
    draft_side,
    load_photo,
    load_photos,
    read_rgb,
    rgb_image,
    to_model_input,
)
from agebatch.predict.opening import Limits
from agebatch.schema import PhotoStatus
from tests.pictures import drawn_frame, scene


def _spec(photos: str, crop: tuple | None = None, resample: str = "bilinear") -> InputSpec:
    return InputSpec(size=(64, 64), crop=crop, resample=resample, photos=photos, padding=0.2)


SPEC = _spec("crops", crop=(0.025, 0.025, 0.975, 0.975), resample="box")
FRAMES = replace(SPEC, photos="frames")
BRIGHT, DARK = (240, 225, 215), (120, 80, 60)  # skins of the two faces


def _save(rgb: np.ndarray, path: Path, **params: object) -> Path:
    Image.fromarray(rgb).save(path, **params)
    return path


def test_input_spec_checks_the_photo_kind() -> None:
    with pytest.raises(ValueError, match="'faces' is not a valid PhotoKind"):
        _spec("faces")


def test_crops_are_resized_without_looking_for_a_face(tmp_path: Path) -> None:
    path = _save(scene(640, 480), tmp_path / "frame.jpg")
    spec = _spec("crops")
    decoded = load_photo(path, spec)
    assert decoded.status == "ok" and decoded.pixels is not None
    assert decoded.pixels.shape == (1, 64, 64, 3)  # one view: the crop itself


@pytest.mark.parametrize("side", [24, 32, 48, 64])
def test_a_crop_smaller_than_the_models_input_is_enlarged_smoothly(
    tmp_path: Path, side: int
) -> None:
    # A camera that saves its faces small: enlarged bilinear, as a far face scaled back up,
    # not copied into blocks by the card's (shrinking) box resampling.
    crop = np.asarray(Image.fromarray(scene(200, 200, seed=side)).resize((side, side)))
    path = _save(crop, tmp_path / "small.png")
    decoded = load_photo(path, SPEC)
    assert decoded.status == "ok" and decoded.pixels is not None
    box = tuple(v * side for v in SPEC.crop)
    image = Image.fromarray(crop)
    smooth = np.asarray(image.resize((64, 64), Image.Resampling.BILINEAR, box=box))
    blocky = np.asarray(image.resize((64, 64), Image.Resampling.BOX, box=box))
    assert SPEC.detail is None and SPEC.light is None  # the pixels as read, not adjusted
    np.testing.assert_array_equal(decoded.pixels[0], smooth)
    assert np.abs(smooth.astype(int) - blocky).mean() > 1  # the test tells the two apart


def test_unreadable_photo_in_every_kind(tmp_path: Path) -> None:
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"not a jpeg")
    for kind in ("crops", "frames", "auto"):
        spec = _spec(kind)
        decoded = load_photo(path, spec)
        assert (decoded.status, decoded.pixels) == ("unreadable", None)


@pytest.mark.parametrize("kind", ["frames", "auto"])
def test_a_frame_without_a_face_is_no_face(tmp_path: Path, kind: str) -> None:
    spec = _spec(kind)
    for i, size in enumerate([(640, 480), (1280, 720), (480, 480)]):
        path = _save(scene(*size, seed=i + 1), tmp_path / f"empty{i}.jpg", quality=92)
        decoded = load_photo(path, spec)
        if kind == "auto" and size == (480, 480):
            # Small and square without a face: taken for a tight crop (the documented rule).
            assert decoded.status == "ok"
        else:
            assert (decoded.status, decoded.pixels) == ("no_face", None)


def test_two_faces_the_shopper_is_the_larger(tmp_path: Path) -> None:

    rgb = drawn_frame((640, 480), [(200, 230, 150), (500, 220, 80)], [BRIGHT, DARK])
    path = _save(rgb, tmp_path / "two.png")
    decoded = load_photo(path, FRAMES)
    assert decoded.status == "ok" and decoded.pixels is not None
    finder = FaceFinder()
    faces = sorted(finder.find(rgb), key=lambda f: f.centre[0])
    assert len(faces) == 2
    big, small = (
        np.stack(
            [
                aligned_crop_chip(Image.fromarray(rgb), f, (64, 64), FRAMES.crop, "box", z)
                for z in FRAME_ZOOMS
            ]
        )
        for f in faces
    )
    assert decoded.pixels.shape == (len(FRAME_ZOOMS), 64, 64, 3)  # the frame's views
    # The chips differ clearly (bright vs dark skin), so the test tells which face was taken.
    assert big.mean() - small.mean() > 20
    assert abs(decoded.pixels.mean() - big.mean()) < 3
    # A region around the right half of the frame makes the smaller face the shopper.
    right = load_photo(path, FRAMES, (0.5, 0, 1, 1))
    assert right.pixels is not None and abs(right.pixels.mean() - small.mean()) < 3
    # A region with no face centred in it: no_face.
    empty = load_photo(path, FRAMES, (0, 0, 0.2, 0.2))
    assert (empty.status, empty.pixels) == ("no_face", None)


@pytest.mark.parametrize(
    "orientation, rotate, untagged", [(6, 90, "ok"), (8, -90, "ok"), (3, 180, "no_face")]
)
def test_exif_orientation_is_applied_before_finding_the_face(
    tmp_path: Path, orientation: int, rotate: int, untagged: str
) -> None:
    upright = drawn_frame((640, 480), [(300, 240, 160)])
    expected = load_photo(_save(upright, tmp_path / "upright.png"), FRAMES)
    assert expected.pixels is not None
    # Stored as the sensor saw it (rotated) with the tag that tells viewers to turn it upright.
    stored = Image.fromarray(upright).rotate(rotate, expand=True)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"rotated{orientation}.png"
    stored.save(path, exif=exif)
    assert read_rgb(path).size == (640, 480)  # type: ignore[union-attr]
    decoded = load_photo(path, FRAMES)
    assert decoded.status == "ok" and decoded.pixels is not None
    np.testing.assert_array_equal(decoded.pixels, expected.pixels)
    # Without the tag the face lies on its side (or upside down, where no face is found): a
    # chip far from the upright one, so the equality above is the tag's doing.
    path_no_tag = _save(np.asarray(stored), tmp_path / f"no_tag{orientation}.png")
    sideways = load_photo(path_no_tag, FRAMES)
    assert sideways.status == untagged
    if untagged == "ok":
        difference = np.abs(sideways.pixels.astype(int) - expected.pixels.astype(int)).mean()
        assert difference > 10  # grey levels on average: measured 32 and 39
    else:
        assert sideways.pixels is None


def test_auto_ages_a_crop_as_is_only_when_its_landmarks_confirm_the_alignment(
    tmp_path: Path,
) -> None:
    auto, crops = replace(SPEC, photos="auto"), replace(SPEC, photos="crops")
    frame = drawn_frame((640, 480), [(320, 240, 120)])
    face = FaceFinder().find_shopper(frame)
    assert face is not None
    chip = aligned_crop_chip(Image.fromarray(frame), face, (200, 200), resample="bilinear")
    aligned = _save(chip, tmp_path / "aligned.png")
    # The camera's own box: the same face 12% off-centre and 15% looser.
    side, shift = 1.15, 0.12
    loose_box = (0.5 - side / 2 + shift, 0.5 - side / 2, 0.5 + side / 2 + shift, 0.5 + side / 2)
    loose_chip = aligned_crop_chip(
        Image.fromarray(frame), face, (200, 200), box=loose_box, resample="bilinear"
    )
    loose = _save(loose_chip, tmp_path / "loose.png")
    as_is = load_photo(aligned, auto)
    assert as_is.status == "ok" and as_is.pixels is not None and len(as_is.pixels) == 1
    np.testing.assert_array_equal(as_is.pixels, load_photo(aligned, crops).pixels)
    realigned = load_photo(loose, auto)
    assert realigned.status == "ok" and realigned.pixels is not None
    assert len(realigned.pixels) == len(FRAME_ZOOMS)  # aligned by its landmarks, as a frame
    middle = realigned.pixels[len(FRAME_ZOOMS) // 2].astype(float)
    cut_as_is = load_photo(loose, crops).pixels[0].astype(float)
    # The realigned chip is the aligned crop's, not the loose box cut as if aligned.
    assert (
        np.abs(middle - as_is.pixels[0]).mean() < 0.5 * np.abs(cut_as_is - as_is.pixels[0]).mean()
    )
    as_frame = load_photo(_save(frame, tmp_path / "frame.png"), auto)
    assert as_frame.status == "ok" and as_frame.pixels is not None


@pytest.mark.parametrize(
    ("stored", "decoded"),
    [(200, 100), (135, 135), (512, 128), (136, 68), (1000, 125)],
)
def test_a_crop_is_decoded_at_the_least_scale_whose_box_still_spans_the_input(
    tmp_path: Path, stored: int, decoded: int
) -> None:
    # The bundled card's box (95% of the photo) over a 64 px input: the box must keep >= 64 px,
    # so the decode keeps >= 68 px (a 136 px crop halves to 68: its box, 64.6 px, still spans).
    box = (0.025, 0.025, 0.975, 0.975)
    assert draft_side((64, 64), box) == 68
    assert draft_side((64, 64)) == 64  # no box: the input itself
    path = tmp_path / "crop.jpg"
    Image.fromarray(scene(stored, stored, seed=2)).save(path)
    image = read_rgb(path, max_side=draft_side((64, 64), box))
    assert image is not None and image.size == (decoded, decoded)
    assert image.size[0] * (box[2] - box[0]) >= 64


@settings(max_examples=150, deadline=None)
@given(
    width=st.integers(1, 120),
    height=st.integers(1, 120),
    size=st.sampled_from([(64, 64), (48, 32), (1, 1), (130, 90)]),
    crop=st.sampled_from([None, (0.025, 0.025, 0.975, 0.975), (0.1, 0.0, 0.7, 0.9)]),
    resample=st.sampled_from(["box", "bilinear", "bicubic", "nearest"]),
    mode=st.sampled_from(["RGB", "L"]),
    seed=st.integers(0, 2**16),
)
# Pillow's own ways round: the same size (a copy), a very tall image (two passes)
@example(width=64, height=64, size=(64, 64), crop=None, resample="box", mode="RGB", seed=0)
@example(width=1, height=120, size=(48, 32), crop=None, resample="box", mode="RGB", seed=0)
@example(
    width=200,
    height=200,
    size=(64, 64),
    crop=(0.025,) * 2 + (0.975,) * 2,
    resample="box",
    mode="RGB",
    seed=0,
)
def test_the_model_input_is_pillows_fromarray_resize_and_asarray(
    width, height, size, crop, resample, mode, seed
) -> None:
    """rgb_image and to_model_input skip two of Pillow's detours; the pixels are the same
    (the card's resampling shrinking, bilinear enlarging)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    image = rgb_image(pixels)
    assert image.mode == "RGB" and image.tobytes() == Image.fromarray(pixels).tobytes()
    image = image.convert(mode)
    box = (
        None
        if crop is None
        else (crop[0] * width, crop[1] * height, crop[2] * width, crop[3] * height)
    )
    shape = box or (0, 0, width, height)
    enlarged = shape[2] - shape[0] < size[0] or shape[3] - shape[1] < size[1]
    method = Image.Resampling[("bilinear" if enlarged else resample).upper()]
    expected = np.asarray(image.resize(size, method, box=box), dtype=np.uint8)
    given_model = to_model_input(image, size, crop, resample)
    assert given_model.dtype == np.uint8 and not given_model.flags.writeable
    assert np.array_equal(given_model, expected) and given_model.shape == expected.shape


# A chunk read together (load_photos: its crops' quality measured in one stack) must give each
# photo what it is given alone: every kind of outcome a crop chunk holds, and both ways of
# reading a crop as-is (CROP, and BY_SIZE for an aligned-crop camera, which adds face_px).
CHUNK_SPEC = replace(
    SPEC,
    floors=(("contrast", 6.0), ("exposure", 20.0)),
    light=(60.0, 110.0),
    detail=(0.44, 1.0, 200),
)


@pytest.fixture(scope="module")
def mixed_photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One photo of each outcome: plain, soft (sharpened), dim (brightened), too dark
    (low_quality), a PNG, a frame (under BY_SIZE), unreadable, refused (a named pipe)."""
    from agebatch.sample import drawn_face

    folder = tmp_path_factory.mktemp("mixed")
    rng = np.random.default_rng(24)
    face = np.asarray(drawn_face(40.0, rng))
    small = Image.fromarray(face).resize((32, 32), Image.Resampling.BOX)
    photos = {
        "plain": _save(face, folder / "plain.jpg", quality=90),
        "plain2": _save(np.asarray(drawn_face(70.0, rng)), folder / "plain2.jpg", quality=90),
        "soft": _save(np.asarray(small.resize((200, 200))), folder / "soft.jpg", quality=90),
        "dim": _save((face * 0.3).astype(np.uint8), folder / "dim.jpg", quality=90),
        "dark": _save((face * 0.05).astype(np.uint8), folder / "dark.jpg", quality=90),
        "png": _save(face[::-1], folder / "png.png"),
        "frame": _save(scene(640, 480), folder / "frame.jpg"),
        "unreadable": folder / "broken.jpg",
        "refused": folder / "pipe.jpg",
    }
    photos["unreadable"].write_bytes(b"not a jpeg")
    os.mkfifo(photos["refused"])
    return photos


def _as_tuple(decoded: Decoded) -> tuple:
    """A Decoded's fields, its pixels as bytes (a Decoded holds an array: no == of its own)."""
    pixels = None if decoded.pixels is None else (decoded.pixels.shape, decoded.pixels.tobytes())
    return (decoded.status, decoded.reason, decoded.quality, decoded.adjusted, pixels)


def test_the_mixed_chunk_holds_every_outcome(mixed_photos: dict[str, Path]) -> None:
    """The photos the chunk test draws from do end as their names say."""
    spec = replace(CHUNK_SPEC, limits=Limits(inside=mixed_photos["plain"].parent))
    alone = {
        name: load_photo(path, spec, reading=Reading.CROP) for name, path in mixed_photos.items()
    }
    assert {name: d.status for name, d in alone.items()} == {
        **dict.fromkeys(["plain", "plain2", "soft", "dim", "png", "frame"], PhotoStatus.OK),
        "dark": PhotoStatus.LOW_QUALITY,
        "unreadable": PhotoStatus.UNREADABLE,
        "refused": PhotoStatus.REFUSED,
    }
    parts = {name: dict(d.quality.parts) for name, d in alone.items() if d.quality}
    assert parts["soft"]["detail"] < 0.44 <= parts["plain"]["detail"]  # sharpened, and not
    assert parts["dim"]["exposure"] < 60 <= parts["plain"]["exposure"]  # brightened, and not


def test_each_face_says_what_was_done_to_it(mixed_photos: dict[str, Path], tmp_path: Path) -> None:
    """Decoded.adjusted names each change made to a face before the model, in order: a soft
    crop sharpened, a dim one brightened, a frame's face realigned (and so given the card's
    offset); a plain crop, nothing."""
    spec = replace(CHUNK_SPEC, limits=Limits())
    crops = {name: load_photo(mixed_photos[name], spec, reading=Reading.CROP) for name in
             ("plain", "soft", "dim")}  # fmt: skip
    assert {name: d.adjusted for name, d in crops.items()} == {
        "plain": (),
        "soft": (SHARPENED,),
        "dim": (BRIGHTENED,),
    }
    assert not any(d.realigned for d in crops.values())
    frame = tmp_path / "frame.png"
    Image.fromarray(drawn_frame((640, 480), [(300, 240, 150)])).save(frame)
    as_frame = load_photo(frame, spec, reading=Reading.BY_SIZE)
    assert as_frame.status == PhotoStatus.OK
    assert as_frame.adjusted[0] == REALIGNED and as_frame.realigned
    dim_frame = tmp_path / "dim_frame.png"
    Image.fromarray((drawn_frame((640, 480), [(300, 240, 150)]) * 0.3).astype(np.uint8)).save(
        dim_frame
    )
    dim = load_photo(dim_frame, spec, reading=Reading.BY_SIZE)
    assert dim.status == PhotoStatus.OK and dim.adjusted[:2] == (REALIGNED, BRIGHTENED)


@settings(max_examples=60, deadline=None)
@given(
    picks=st.lists(
        st.tuples(
            st.sampled_from(
                ["plain", "plain2", "soft", "dim", "dark", "png", "frame", "unreadable", "refused"]
            ),
            st.sampled_from([Reading.CROP, Reading.BY_SIZE]),
        ),
        min_size=1,
        max_size=24,
    ),
    seconds=st.sampled_from([None, 30.0]),
)
def test_a_chunk_decodes_to_what_its_photos_decode_to_one_by_one(
    mixed_photos: dict[str, Path], picks: list[tuple[str, Reading]], seconds: float | None
) -> None:
    spec = replace(CHUNK_SPEC, limits=Limits(mixed_photos["plain"].parent, None, seconds))
    items = [(mixed_photos[name], WHOLE_FRAME, reading) for name, reading in picks]
    together = load_photos(items, spec)
    alone = [load_photo(path, spec, region, reading) for path, region, reading in items]
    assert [_as_tuple(d) for d in together] == [_as_tuple(d) for d in alone]
