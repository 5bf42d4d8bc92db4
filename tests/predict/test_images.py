"""Reading photos for the model: crops, frames, auto, no face, two faces, EXIF, regions."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agebatch.predict.images import InputSpec, draft_side, load_photo, load_photos, read_rgb
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
    from agebatch.predict.faces import FRAME_ZOOMS, FaceFinder, aligned_crop_chip

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


def test_auto_tells_crops_from_frames(tmp_path: Path) -> None:
    auto, crops = replace(SPEC, photos="auto"), replace(SPEC, photos="crops")
    grey = _save(np.full((96, 96, 3), 100, np.uint8), tmp_path / "grey.png")  # a crop, no face
    face_crop = _save(drawn_frame((200, 200), [(100, 110, 170)]), tmp_path / "crop.png")
    frame = _save(drawn_frame((640, 480), [(320, 240, 120)]), tmp_path / "frame.png")
    got = load_photos([(grey, (0, 0, 1, 1)), (face_crop, (0, 0, 1, 1))], auto)
    want = load_photos([(grey, (0, 0, 1, 1)), (face_crop, (0, 0, 1, 1))], crops)
    for a, b in zip(got, want, strict=True):
        assert a.status == b.status == "ok"
        np.testing.assert_array_equal(a.pixels, b.pixels)  # crops are not re-cropped
    as_frame = load_photo(frame, auto)
    assert as_frame.status == "ok" and as_frame.pixels is not None
    assert not np.array_equal(as_frame.pixels, load_photo(frame, crops).pixels)


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
