"""Face finding, shopper picking, chip alignment and crop recognition: generated pictures only."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from agebatch.predict.faces import (
    CHIP_PADDING,
    Face,
    FaceFinder,
    face_chip,
    looks_like_face_crop,
    pick_shopper,
)
from tests.pictures import drawn_frame, scene

# dlib's canonical 5-point positions in the unit square, before padding (get_face_chip_details).
TEMPLATE = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ]
)


def face(left: float, top: float, right: float, bottom: float, score: float = 1.0) -> Face:
    return Face((left, top, right, bottom), score)


# --------------------------------------------------------------------------- Face


def test_face_geometry() -> None:
    f = face(10, 20, 50, 100)
    assert (f.width, f.height, f.area, f.centre) == (40, 80, 3200, (30, 60))
    assert face(5, 5, 1, 9).area == 0


# --------------------------------------------------------------------------- pick_shopper


def test_pick_shopper_takes_the_largest_face() -> None:
    small, big = face(0, 0, 50, 50), face(300, 200, 420, 320)
    assert pick_shopper([small, big], 640, 480) is big


def test_pick_shopper_none_without_faces() -> None:
    assert pick_shopper([], 640, 480) is None


def test_pick_shopper_ignores_faces_centred_outside_the_region() -> None:
    cashier = face(0, 100, 200, 300)  # centre x=100: left sixth of the frame
    shopper = face(350, 150, 450, 250)
    region = (0.25, 0.0, 1.0, 1.0)
    assert pick_shopper([cashier, shopper], 640, 480, region) is shopper
    assert pick_shopper([cashier], 640, 480, region) is None


def test_pick_shopper_region_edges_count_as_inside() -> None:
    on_edge = face(140, 0, 180, 40)  # centre x = 160 = 0.25 * 640
    assert pick_shopper([on_edge], 640, 480, (0.25, 0.0, 1.0, 1.0)) is on_edge


def test_pick_shopper_breaks_ties_by_distance_to_region_centre() -> None:
    far = face(0, 0, 100, 100)
    near = face(270, 190, 370, 290)  # centre (320, 240) = frame centre
    assert pick_shopper([far, near], 640, 480) is near
    assert pick_shopper([near, far], 640, 480) is near


def test_pick_shopper_near_tie_within_ratio() -> None:
    edge = face(0, 0, 100, 100)  # area 10000
    centre = face(273, 193, 368, 288)  # area 9025: within 0.9 of the largest
    assert pick_shopper([edge, centre], 640, 480) is centre
    assert pick_shopper([edge, centre], 640, 480, tie_ratio=1.0) is edge


def test_pick_shopper_tie_distance_uses_region_centre() -> None:
    left, right = face(100, 200, 200, 300), face(440, 200, 540, 300)
    assert pick_shopper([left, right], 640, 480, (0.5, 0.0, 1.0, 1.0)) is right
    assert pick_shopper([left, right], 640, 480, (0.0, 0.0, 0.5, 1.0)) is left


# --------------------------------------------------------------------------- face_chip


def _landmarks_for(centre: tuple[float, float], side: float, angle_deg: float) -> np.ndarray:
    """Where a similarity transform puts dlib's template: chip square `side`, rotated, centred."""
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    unit = (TEMPLATE + CHIP_PADDING) / (1 + 2 * CHIP_PADDING) - 0.5
    return unit @ rot.T * side + np.asarray(centre)


COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255)]


def _dotted(points: np.ndarray, size: tuple[int, int] = (640, 480)) -> np.ndarray:
    image = Image.new("RGB", size, (40, 40, 40))
    draw = ImageDraw.Draw(image)
    for (x, y), colour in zip(points, COLOURS, strict=True):
        draw.ellipse((x - 7, y - 7, x + 7, y + 7), fill=colour)
    return np.asarray(image)


@pytest.mark.parametrize("angle", [0.0, 15.0, -20.0])
def test_face_chip_puts_landmarks_at_dlib_template_positions(angle: float) -> None:
    points = _landmarks_for((300, 220), 200, angle)
    rgb = _dotted(points)
    f = Face((200, 120, 400, 320), 1.0, tuple((float(x), float(y)) for x, y in points))
    chip = face_chip(rgb, f)
    assert chip.shape == (64, 64, 3) and chip.dtype == np.uint8
    expected = (TEMPLATE + CHIP_PADDING) / (1 + 2 * CHIP_PADDING) * 64
    for (x, y), colour in zip(expected, COLOURS, strict=True):
        pixel = chip[round(y), round(x)].astype(int)
        assert np.abs(pixel - colour).max() < 60, (angle, (x, y), pixel, colour)


def test_face_chip_size_and_padding_arguments() -> None:
    points = _landmarks_for((320, 240), 150, 0.0)
    f = Face((250, 170, 390, 310), 1.0, tuple((float(x), float(y)) for x, y in points))
    chip = face_chip(_dotted(points), f, size=32, padding=0.4)
    assert chip.shape == (32, 32, 3)


def test_face_chip_without_landmarks_crops_around_the_box() -> None:
    rgb = np.zeros((480, 640, 3), dtype=np.uint8)
    rgb[200:280, 280:360] = (200, 50, 50)  # the "face"
    chip = face_chip(rgb, face(280, 200, 360, 280))
    assert chip.shape == (64, 64, 3)
    assert tuple(chip[32, 32]) == (200, 50, 50)
    assert chip[0, 0].max() == 0  # padding reaches beyond the box


def _textured_crop(side: int = 200, seed: int = 0) -> Image.Image:
    """A smooth random picture standing in for an aligned face crop."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((side, side), Image.Resampling.BICUBIC)


@pytest.mark.parametrize(("angle", "scale"), [(0.0, 1.0), (15.0, 1.4), (-20.0, 0.45)])
def test_aligned_crop_chip_recovers_the_crop_from_a_frame(angle: float, scale: float) -> None:
    from agebatch.predict.faces import ALIGNED_CROP_LANDMARKS, aligned_crop_chip

    crop = _textured_crop()
    box = (0.025, 0.025, 0.975, 0.975)
    expected = np.asarray(
        crop.resize((64, 64), Image.Resampling.BOX, box=tuple(v * 200 for v in box)),
        dtype=np.float64,
    )
    # Paste the crop into a frame turned by `angle`, scaled, moved: frame = s R crop + t.
    a = math.radians(angle)
    rot = scale * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    shift = np.array([200.0, 80.0])  # the whole crop lands inside the frame
    inv = np.linalg.inv(rot)
    back = -inv @ shift  # crop = inv frame + back
    frame = crop.transform(
        (640, 480),
        Image.Transform.AFFINE,
        (inv[0, 0], inv[0, 1], back[0], inv[1, 0], inv[1, 1], back[1]),
        Image.Resampling.BICUBIC,
    )
    # dlib-style landmarks: pixel indices, i.e. continuous coordinates minus half a pixel.
    points = [tuple(rot @ (np.array(p) * 200) + shift - 0.5) for p in ALIGNED_CROP_LANDMARKS]
    found = Face((0.0, 0.0, 1.0, 1.0), 1.0, tuple(points))  # type: ignore[arg-type]
    chip = aligned_crop_chip(frame, found, (64, 64), box, "box")
    assert chip.shape == (64, 64, 3) and chip.dtype == np.uint8
    inner = (slice(4, 60), slice(4, 60))  # the border mixes in the frame's black
    assert np.abs(chip[inner] - expected[inner]).mean() < 4
    other = np.asarray(_textured_crop(seed=1).resize((64, 64)), dtype=np.float64)
    assert np.abs(chip[inner] - other[inner]).mean() > 20  # the test can tell pictures apart


@settings(max_examples=300, deadline=None)
@given(
    st.tuples(st.integers(-30, 30), st.integers(-30, 30), st.integers(1, 40), st.integers(1, 40)),
    st.sampled_from(["RGB", "L"]),
)
def test_crop_edged_fills_outside_the_photo_with_its_nearest_pixels(
    box: tuple[int, int, int, int], mode: str
) -> None:
    from agebatch.predict.faces import crop_edged

    left, top, width, height = box
    pixels = np.random.default_rng(width * height).integers(0, 256, (12, 9, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).convert(mode)
    source = np.asarray(image)
    cut = np.asarray(crop_edged(image, (left, top, left + width, top + height)))
    ys = np.clip(np.arange(top, top + height), 0, 11)
    xs = np.clip(np.arange(left, left + width), 0, 8)
    assert cut.shape == source[np.ix_(ys, xs)].shape
    assert (cut == source[np.ix_(ys, xs)]).all()


@pytest.mark.parametrize("corner", [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0)])
def test_a_face_at_the_photos_edge_is_framed_with_the_photo_not_black(
    corner: tuple[float, float],
) -> None:
    from agebatch.predict.faces import ALIGNED_CROP_LANDMARKS, aligned_crop_chip

    # A loose crop whose face sits off-centre towards a corner: its aligned framing reaches
    # past the photo on two sides. The photo is one colour, so every chip pixel must be it.
    colour = (180, 140, 110)
    photo = Image.new("RGB", (160, 200), colour)
    shift = np.array([corner[0] * 160 - 100, corner[1] * 200 - 100]) * 0.3 + [80, 100]
    points = [tuple(np.array(p) * 200 - 100 + shift - 0.5) for p in ALIGNED_CROP_LANDMARKS]
    found = Face((0.0, 0.0, 1.0, 1.0), 1.0, tuple(points))  # type: ignore[arg-type]
    chip = aligned_crop_chip(photo, found, (64, 64), (0.0, 0.0, 1.0, 1.0), "box")
    assert np.abs(chip.astype(int) - colour).max() <= 1


def test_aligned_crop_chip_needs_landmarks() -> None:
    from agebatch.predict.faces import aligned_crop_chip

    with pytest.raises(ValueError, match="5 landmarks"):
        aligned_crop_chip(_textured_crop(), face(10, 10, 90, 90))


def test_face_chip_rejects_non_rgb() -> None:
    with pytest.raises(ValueError):
        face_chip(np.zeros((10, 10), dtype=np.uint8), face(0, 0, 5, 5))
    with pytest.raises(ValueError):
        face_chip(np.zeros((10, 10, 3), dtype=np.float32), face(0, 0, 5, 5))


# --------------------------------------------------------------------------- crop recognition


def test_face_crop_rule() -> None:
    assert looks_like_face_crop(200, 200, [])
    assert looks_like_face_crop(200, 200, [face(15, 15, 190, 190)])
    assert looks_like_face_crop(180, 200, [face(20, 30, 160, 170)])
    assert not looks_like_face_crop(200, 200, [face(0, 0, 40, 40)])  # small, off-centre
    assert not looks_like_face_crop(640, 480, [])  # a camera frame
    assert not looks_like_face_crop(1280, 720, [face(300, 100, 900, 700)])
    assert not looks_like_face_crop(300, 150, [])  # not square
    assert not looks_like_face_crop(600, 600, [])  # too large for a crop


def test_crop_face_assumes_the_aligned_box_when_nothing_is_detected() -> None:
    from agebatch.predict.faces import ALIGNED_CROP_BOX, crop_face

    finder = FaceFinder(detector="hog")
    blank = np.full((200, 200, 3), 128, dtype=np.uint8)
    found = crop_face(blank, finder)
    assert found is not None and found.score == 0.0
    assert found.box == tuple(v * 200 for v in ALIGNED_CROP_BOX)
    assert found.landmarks is not None and len(found.landmarks) == 5
    assert face_chip(blank, found).shape == (64, 64, 3)
    assert crop_face(scene(640, 480), finder) is None


# --------------------------------------------------------------------------- FaceFinder


def test_face_finder_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        FaceFinder(detector="yunet")
    with pytest.raises(ValueError):
        FaceFinder(detector="blazeface", min_score=1.5)
    with pytest.raises(ValueError):
        FaceFinder(threads=0)


def test_importing_faces_loads_no_detector() -> None:
    code = (
        "import sys, agebatch.predict.faces as f; f.FaceFinder(); "
        "print(any(m in sys.modules for m in ('dlib', 'tensorflow', 'ai_edge_litert')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_hog_finds_no_face_in_a_faceless_frame() -> None:
    finder = FaceFinder(detector="hog")
    for seed in range(3):
        assert finder.find(scene(640, 480, seed)) == []


def test_blazeface_finds_no_face_in_a_faceless_frame() -> None:
    finder = FaceFinder()
    for seed in range(3):
        assert finder.find(scene(1280, 720, seed)) == []
        assert finder.find(scene(480, 480, seed)) == []


def test_blazeface_finds_drawn_faces_and_the_shopper() -> None:
    rgb = drawn_frame((640, 480), [(200, 220, 160), (480, 250, 90)])
    finder = FaceFinder()
    faces = finder.find(rgb)
    assert len(faces) == 2
    assert all(f.landmarks is not None and len(f.landmarks) == 5 for f in faces)
    shopper = finder.find_shopper(rgb)
    assert shopper is not None and abs(shopper.centre[0] - 200) < 25
    assert shopper.landmarks is not None
    # dlib's points 2 and 3 are the corners of the eye on the image's left (drawn at x=168).
    assert 140 < shopper.landmarks[2][0] < shopper.landmarks[3][0] < 200
    right_half = finder.find_shopper(rgb, region=(0.5, 0.0, 1.0, 1.0))
    assert right_half is not None and abs(right_half.centre[0] - 480) < 20
    chip = face_chip(rgb, shopper)
    assert chip.shape == (64, 64, 3)


def test_blazeface_finds_a_small_face_in_a_wide_frame() -> None:
    rgb = drawn_frame((1280, 720), [(900, 400, 60)])
    faces = FaceFinder(landmarks=False).find(rgb)
    assert len(faces) == 1 and faces[0].landmarks is None
    assert abs(faces[0].centre[0] - 900) < 15 and 45 < faces[0].width < 80


def test_shopper_face_takes_a_crop_as_its_own_face() -> None:
    from agebatch.predict.faces import shopper_face

    crop = np.asarray(Image.fromarray(drawn_frame((200, 200), [(100, 110, 180)])))
    finder = FaceFinder()
    found = shopper_face(crop, finder)
    assert found is not None and found.landmarks is not None
    assert found.area > 0.3 * 200 * 200


def test_find_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        FaceFinder().find(np.zeros((480, 640), dtype=np.uint8))


# --------------------------------------------------------------------------- facebench generator


def _fake_faces(tmp_path: Path) -> Path:
    """A labelled 'face' set made of drawn pictures (no real faces are needed for the generator)."""
    root = tmp_path / "faces"
    (root / "final_files").mkdir(parents=True)
    rows = []
    for i in range(6):
        image = Image.new("RGB", (200, 200), (210, 170, 140))
        ImageDraw.Draw(image).ellipse((60, 60, 90, 80), fill=(30, 30, 30))
        name = f"{i:06d}.jpg"
        image.save(root / "final_files" / name)
        rows.append((name, 20 + i))
    with (root / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", "real_age"])
        writer.writerows(rows)
    return root


def test_generate_is_reproducible_and_writes_truth(tmp_path: Path) -> None:
    from tools.facebench import TRUTH_FIELDS, generate, read_truth

    faces = _fake_faces(tmp_path)
    generate(faces, tmp_path / "a", n=12, seed=3)
    generate(faces, tmp_path / "b", n=12, seed=3)
    a = (tmp_path / "a" / "truth.csv").read_text()
    assert a == (tmp_path / "b" / "truth.csv").read_text()
    assert a.splitlines()[0].split(",") == TRUTH_FIELDS
    truth = read_truth(tmp_path / "a")
    assert len(truth) == 12
    for row in truth:
        frame = Image.open(tmp_path / "a" / "frames" / row.frame)
        assert frame.size in ((640, 480), (1280, 720))
        if row.box is not None:
            width = row.box[2] - row.box[0]
            assert 59 <= width <= 301
            assert row.box[0] >= 0 and row.box[2] <= frame.size[0]
            assert abs(row.angle) <= 20
    assert sum(row.box is not None for row in truth) >= 6


def test_compare_scores_generated_frames(tmp_path: Path) -> None:
    import io

    from tools.facebench import compare, generate

    generate(_fake_faces(tmp_path), tmp_path / "frames", n=6, seed=1)
    out = io.StringIO()
    (score,) = compare(tmp_path / "frames", ["ours-hog"], repeats=1, out=out)
    assert score.frames == 6 and score.with_face + score.empty_frames == 6
    assert 0 <= score.found <= score.with_face and score.best_seconds > 0
    assert "| ours-hog |" in out.getvalue()


def test_the_face_models_ship_beside_the_age_model_with_their_notices() -> None:
    import hashlib

    from agebatch.predict.faces import default_blazeface_model, default_landmark_model

    models = Path(__file__).resolve().parents[2] / "agebatch" / "models"
    notice = (models / "NOTICE.md").read_text()
    for path in (default_landmark_model(), default_blazeface_model()):
        assert path.parent.resolve() == models and path.is_file()
        assert hashlib.sha256(path.read_bytes()).hexdigest() in notice  # the notice names it
    assert "CC0-1.0" in notice and "Apache-2.0" in notice
