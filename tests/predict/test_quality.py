"""Face quality: the record per photo, the card's floors, low_quality, light normalisation,
detail restoration."""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFilter

from agebatch.config import PredictConfig
from agebatch.predict.card import ModelCard
from agebatch.predict.faces import ALIGNED_CROP_LANDMARKS, FaceFinder, aligned_crop_chip
from agebatch.predict.images import InputSpec, brightened, load_photo, sharpened
from agebatch.predict.model import AgeModel, load_model
from agebatch.predict.quality import (
    HIGHER_IS_BETTER,
    PARTS,
    assess,
    chip_parts,
    chips_parts,
    landmark_parts,
)
from agebatch.predict.stage import predict_paths
from agebatch.schema import PhotoStatus
from tests.conftest import save_brightness_model
from tests.pictures import drawn_frame

FLOORS = {"exposure": 20.0, "contrast": 6.0, "landmark_fit": 0.05, "yaw": 0.35, "roll": 30.0}
SPEC = InputSpec(
    (64, 64), (0.025, 0.025, 0.975, 0.975), "box", "auto", 0.2, floors=tuple(FLOORS.items())
)


@settings(max_examples=200, deadline=None)
@given(
    parts=st.dictionaries(st.sampled_from(PARTS), st.floats(0.001, 500), min_size=1),
    floors=st.dictionaries(st.sampled_from(PARTS), st.floats(0.001, 500), min_size=1),
)
@example(parts={"face_px": 0.001}, floors={"face_px": 0.0010000000000000002})  # found in CI
def test_a_photo_fails_exactly_when_a_measured_part_is_under_its_floor(parts, floors) -> None:
    quality = assess(parts, floors)
    under = [
        name
        for name in parts
        if name in floors
        and (parts[name] < floors[name] if name in HIGHER_IS_BETTER else parts[name] > floors[name])
    ]
    assert quality.passed == (not under)
    if under:
        assert quality.part in under and quality.score < 1
    if not set(parts) & set(floors):
        assert quality.score is None and quality.passed


def test_the_score_is_the_worst_part_over_its_floor() -> None:
    quality = assess({"exposure": 30.0, "contrast": 3.0, "roll": 10.0}, FLOORS)
    assert (quality.score, quality.part) == (0.5, "contrast")  # 3 / 6
    quality = assess({"exposure": 80.0, "roll": 60.0}, FLOORS)
    assert (quality.score, quality.part) == (0.5, "roll")  # 30 / 60: lower is better


def test_chip_parts_measure_light_and_detail() -> None:
    flat = np.full((64, 64, 3), 50, np.uint8)
    noisy = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    assert chip_parts(flat) == {
        "sharpness": 0.0,
        "detail": 0.0,
        "exposure": pytest.approx(50),
        "contrast": 0.0,
    }
    assert chip_parts(noisy)["sharpness"] > 1 and chip_parts(noisy)["contrast"] > 30


def _plain_chip_parts(chip: np.ndarray) -> dict[str, float]:
    """chip_parts as first written, in plain numpy expressions: the reference its faster code
    must match bit for bit (a published part, and so a floor's verdict, must not move)."""
    h, w = chip.shape[:2]
    middle = chip[round(0.2 * h) : round(0.8 * h), round(0.2 * w) : round(0.8 * w), :3]
    centre = middle.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)

    def laplacian(g: np.ndarray) -> np.ndarray:
        return 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]

    contrast = float(centre.std())
    lap = laplacian(centre)
    sharpness = float(np.abs(lap).mean()) / max(contrast, 1.0)
    even = (min(centre.shape) // 2) * 2
    binned = (
        centre[:even:2, :even:2]
        + centre[1:even:2, :even:2]
        + centre[:even:2, 1:even:2]
        + centre[1:even:2, 1:even:2]
    ) * 0.25
    coarse = laplacian(binned) if min(binned.shape) > 2 else np.zeros(1, np.float32)
    fine_energy, coarse_energy = float((lap * lap).mean()), float((coarse * coarse).mean())
    detail = math.sqrt(fine_energy / coarse_energy) if coarse_energy > 1e-6 else 0.0
    return {
        "sharpness": sharpness,
        "detail": detail,
        "exposure": float(centre.mean()),
        "contrast": contrast,
    }


def _test_chip(shape: tuple[int, ...], kind: str, rng: np.random.Generator) -> np.ndarray:
    """A uint8 chip of the given shape: noise, flat, smooth or dark."""
    if kind == "noise":
        return rng.integers(0, 256, shape, dtype=np.uint8)
    if kind == "flat":
        return np.full(shape, rng.integers(0, 256), np.uint8)
    level, spread = (rng.uniform(0, 30), 4) if kind == "dark" else (rng.uniform(0, 255), 40)
    return np.clip(rng.normal(level, spread, shape), 0, 255).astype(np.uint8)


def _same_parts(fast: dict[str, float], plain: dict[str, float]) -> None:
    """Assert two parts dicts are equal bit for bit (nan where both are nan)."""
    assert fast.keys() == plain.keys()
    for name, value in plain.items():
        assert type(fast[name]) is float
        assert fast[name] == value or (math.isnan(value) and math.isnan(fast[name])), name


@settings(max_examples=400, deadline=None)
@given(
    height=st.integers(1, 90),
    width=st.integers(1, 90),
    kind=st.sampled_from(["noise", "flat", "smooth", "dark"]),
    seed=st.integers(0, 2**16),
)
@example(height=64, width=64, kind="noise", seed=0)  # the model's chip
@example(height=3, width=3, kind="smooth", seed=0)  # no inner Laplacian at half scale
def test_chip_parts_are_the_plain_expressions_bit_for_bit(height, width, kind, seed) -> None:
    chip = _test_chip((height, width, 3), kind, np.random.default_rng(seed))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a 1-2 px chip: means of nothing
        fast, plain = chip_parts(chip), _plain_chip_parts(chip)
    _same_parts(fast, plain)


@settings(max_examples=150, deadline=None)
@given(
    count=st.integers(1, 80),
    shapes=st.lists(st.tuples(st.integers(1, 90), st.integers(1, 90)), min_size=1, max_size=3),
    kinds=st.lists(st.sampled_from(["noise", "flat", "smooth", "dark"]), min_size=1),
    seed=st.integers(0, 2**16),
)
@example(count=256, shapes=[(64, 64)], kinds=["noise", "smooth", "dark"], seed=0)  # a batch
@example(count=70, shapes=[(64, 64), (3, 3), (64, 64)], kinds=["smooth"], seed=0)  # 2 sizes
def test_a_chunks_chips_have_each_chips_own_parts_bit_for_bit(count, shapes, kinds, seed) -> None:
    """chips_parts (a chunk's chips measured together, in stacks of quality.STACK chips of one
    size) gives every chip the parts it has alone, whatever its neighbours."""
    rng = np.random.default_rng(seed)
    chips = [
        _test_chip((*shapes[i % len(shapes)], 3), kinds[i % len(kinds)], rng) for i in range(count)
    ]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        together = chips_parts(chips)
        alone = [_plain_chip_parts(chip) for chip in chips]
    assert len(together) == count
    for fast, plain in zip(together, alone, strict=True):
        _same_parts(fast, plain)


def _saved_small(photo: np.ndarray, side: int) -> np.ndarray:
    """A photo as a camera would save a far face: shrunk to `side` px, scaled back up."""
    h, w = photo.shape[:2]
    tiny = Image.fromarray(photo).resize((side, side), Image.Resampling.BOX)
    return np.asarray(tiny.resize((w, h), Image.Resampling.BILINEAR))


def _chip(photo: np.ndarray) -> np.ndarray:
    """The 64 px chip the model is given of a 200 px crop (the bundled card's resize)."""
    return np.asarray(Image.fromarray(photo).resize((64, 64), Image.Resampling.BOX))


def _natural_texture(rng: np.random.Generator, slope: float, side: int = 200) -> np.ndarray:
    """A (side, side, 3) uint8 texture with a natural image's spectrum: amplitude falling as
    1 / frequency**slope (photos of faces and scenes: slope about 1 to 1.5)."""
    fy, fx = np.fft.fftfreq(side)[:, None], np.fft.fftfreq(side)[None, :]
    falloff = np.hypot(fy, fx)
    falloff[0, 0] = 1.0
    noise = np.fft.fft2(rng.normal(size=(3, side, side))) / falloff**slope
    texture = np.fft.ifft2(noise).real
    texture = (texture - texture.mean()) / texture.std() * 40 + 128
    return np.clip(np.moveaxis(texture, 0, -1), 0, 255).astype(np.uint8)


@settings(max_examples=60, deadline=None)
@example(seed=0, slope=1.3, side=20, gain=0.3)  # the least ratio seen: 1.57
@given(
    seed=st.integers(0, 2**32 - 1),
    slope=st.floats(1.0, 1.3),
    side=st.integers(20, 40),
    gain=st.floats(0.3, 1.0),
)
def test_detail_falls_when_a_face_is_saved_small_whatever_its_contrast(
    seed: int, slope: float, side: int, gain: float
) -> None:
    """200 px textures with a natural spectrum, from busy to smooth, dimmed or not: saved 20-40
    px wide and scaled back up, their chip's detail falls to under 1/1.4 of the same texture's at
    full resolution (where the card's threshold sits on real faces is measured on them:
    docs/model.md, Detail). Smoother textures, dimmed, keep less: the rounding of a dim photo's
    grey levels is fine detail of its own (slope 1.6, gain 0.3, 20 px: 1/1.2)."""
    photo = _natural_texture(np.random.default_rng(seed), slope)
    photo = (photo.astype(np.float32) * gain).astype(np.uint8)
    full = chip_parts(_chip(photo))["detail"]
    small = chip_parts(_chip(_saved_small(photo, side)))["detail"]
    assert small < full / 1.4


def test_landmark_parts_of_the_aligned_shape_and_a_turned_one() -> None:
    side = 200
    points = [(x * side, y * side) for x, y in ALIGNED_CROP_LANDMARKS]
    parts = landmark_parts(points, ALIGNED_CROP_LANDMARKS)
    assert parts["landmark_fit"] == pytest.approx(0, abs=1e-9)
    assert parts["yaw"] == pytest.approx(0, abs=1e-9) and parts["roll"] == pytest.approx(0, abs=0.1)
    assert parts["face_px"] == pytest.approx(0.895 * side)
    turn = np.radians(20)
    rotated = [
        (x * np.cos(turn) - y * np.sin(turn), x * np.sin(turn) + y * np.cos(turn))
        for x, y in points
    ]
    assert landmark_parts(rotated, ALIGNED_CROP_LANDMARKS)["roll"] == pytest.approx(20, abs=0.1)
    nose_aside = [*points[:4], (points[4][0] + 0.3 * 0.38 * side, points[4][1])]
    assert landmark_parts(nose_aside, ALIGNED_CROP_LANDMARKS)["yaw"] == pytest.approx(0.3, 0.05)


@pytest.fixture(scope="module")
def aligned_face() -> np.ndarray:
    """A 200x200 aligned crop of the drawn face."""
    frame = drawn_frame((640, 480), [(320, 240, 140)])
    face = FaceFinder().find_shopper(frame)
    return aligned_crop_chip(Image.fromarray(frame), face, (200, 200), resample="bilinear")


def test_a_face_too_dark_to_read_is_low_quality_with_no_pixels(
    aligned_face: np.ndarray, tmp_path: Path
) -> None:
    dark = (aligned_face.astype(float) * 0.08).astype(np.uint8)
    path = tmp_path / "dark.png"
    Image.fromarray(dark).save(path)
    decoded = load_photo(path, SPEC)
    assert decoded.status == PhotoStatus.LOW_QUALITY and decoded.pixels is None
    assert decoded.quality.part in ("exposure", "contrast") and decoded.quality.score < 1
    assert decoded.reason == f"{decoded.quality.part} under the card's floor"
    # Without the card's floors the same photo is aged (and its quality still measured).
    unfloored = load_photo(path, replace(SPEC, floors=()))
    assert unfloored.status == PhotoStatus.OK and unfloored.pixels is not None
    assert unfloored.quality.score is None and dict(unfloored.quality.parts)["exposure"] < 20


def test_a_clean_face_passes_and_carries_its_record(
    aligned_face: np.ndarray, tmp_path: Path
) -> None:
    path = tmp_path / "clean.png"
    Image.fromarray(aligned_face).save(path)
    decoded = load_photo(path, SPEC)
    assert decoded.status == PhotoStatus.OK and decoded.quality.passed
    assert decoded.quality.score >= 1 and decoded.quality.part in FLOORS


def test_a_dim_face_is_brightened_to_the_cards_target(
    aligned_face: np.ndarray, tmp_path: Path
) -> None:
    dim = (aligned_face.astype(float) * 0.3).astype(np.uint8)
    path = tmp_path / "dim.png"
    Image.fromarray(dim).save(path)
    plain = load_photo(path, SPEC)
    lit = load_photo(path, replace(SPEC, light=(60.0, 110.0)))
    before = chip_parts(plain.pixels[0])["exposure"]
    assert before < 60
    assert chip_parts(lit.pixels[0])["exposure"] == pytest.approx(110, abs=3)
    # A face brighter than `below` is left as it is.
    views = np.full((1, 8, 8, 3), 100, np.uint8)
    assert brightened(views, 50.0, 100.0).max() == 200


def test_a_soft_face_is_sharpened_and_a_sharp_one_left_as_it_is(
    aligned_face: np.ndarray, tmp_path: Path
) -> None:
    """The card's detail restoration (below 0.44, radius 1, 200%) touches only faces whose
    detail is under its threshold; without it the soft face's pixels are the plain resize."""
    detail = (0.44, 1.0, 200)
    soft_path, sharp_path = tmp_path / "soft.png", tmp_path / "sharp.png"
    Image.fromarray(_saved_small(aligned_face, 32)).save(soft_path)
    Image.fromarray(aligned_face).save(sharp_path)
    soft_plain, soft_restored = (
        load_photo(soft_path, replace(SPEC, detail=d)) for d in (None, detail)
    )
    sharp_plain, sharp_restored = (
        load_photo(sharp_path, replace(SPEC, detail=d)) for d in (None, detail)
    )
    assert (
        dict(soft_plain.quality.parts)["detail"] < 0.44 <= dict(sharp_plain.quality.parts)["detail"]
    )
    assert soft_restored.status == PhotoStatus.OK
    assert not np.array_equal(soft_restored.pixels, soft_plain.pixels)
    assert np.array_equal(soft_restored.pixels, sharpened(soft_plain.pixels, 1.0, 200))
    assert chip_parts(soft_restored.pixels[0])["detail"] > dict(soft_plain.quality.parts)["detail"]
    assert np.array_equal(sharp_restored.pixels, sharp_plain.pixels)


def test_the_bundled_card_restores_detail_under_its_threshold() -> None:
    spec = InputSpec.from_card(load_model().card, "auto")
    assert spec.detail is not None and spec.detail[0] > 0
    assert "detail" not in dict(spec.floors)  # restored, never refused for it


@pytest.mark.parametrize(("side", "aged"), [(22, False), (26, False), (28, True), (200, True)])
def test_a_crop_saved_too_small_is_low_quality_under_the_bundled_cards_floor(
    aligned_face: np.ndarray, tmp_path: Path, side: int, aged: bool
) -> None:
    """An aligned-crop camera that saves its crops tiny: under the card's face_px floor (24 px
    of face, a crop under about 27 px) no age; the same face larger is aged."""
    from agebatch.predict.images import Reading

    spec = InputSpec.from_card(load_model().card, "auto")
    assert dict(spec.floors)["face_px"] == 24.0
    path = tmp_path / f"face{side}.png"
    Image.fromarray(aligned_face).resize((side, side), Image.Resampling.BOX).save(path)
    decoded = load_photo(path, spec, reading=Reading.BY_SIZE)  # an aligned-crop camera's read
    face_px = dict(decoded.quality.parts)["face_px"]
    assert face_px == pytest.approx(side * 0.895)
    if aged:
        assert decoded.status == PhotoStatus.OK and decoded.pixels is not None
    else:
        assert (decoded.status, decoded.quality.part) == (PhotoStatus.LOW_QUALITY, "face_px")
        assert decoded.pixels is None


def _floored_model(folder: Path) -> AgeModel:
    """The brightness model with an aligned-crop box and the quality FLOORS in its card."""
    model_path = save_brightness_model(folder / "bright.keras")
    card_file = ModelCard.path_for(model_path)
    card = json.loads(card_file.read_text())
    card["face"] = {"aligned_crop": {"box": [0.025, 0.025, 0.975, 0.975], "resample": "box"}}
    card["quality"] = {"floors": FLOORS}
    card_file.write_text(json.dumps(card))
    return load_model(model_path)


def test_the_stage_gives_low_quality_photos_no_age_and_counts_them(
    aligned_face: np.ndarray, tmp_path: Path
) -> None:
    model = _floored_model(tmp_path)
    paths = []
    for name, gain in (("a", 1.0), ("b", 0.08), ("c", 1.0)):
        paths.append(tmp_path / f"{name}.png")
        Image.fromarray((aligned_face * gain).astype(np.uint8)).save(paths[-1])
    config = PredictConfig(photo_kind="auto", workers=1, batch_size=2)
    predictions, stats = predict_paths(paths, model, config, cameras=["C1"] * 3)
    assert [p.status for p in predictions] == ["ok", "low_quality", "ok"]
    assert predictions[1].age is None and predictions[1].quality_part in ("exposure", "contrast")
    assert predictions[1].quality < 1 <= predictions[0].quality
    assert predictions[0].age is not None and stats.low_quality == 1
    assert stats.cameras[0]["camera"] == "C1" and stats.cameras[0]["crop_votes"] >= 2


def test_a_card_rejects_unknown_quality_parts() -> None:
    from pydantic import ValidationError

    from agebatch.predict.card import CardQuality

    with pytest.raises(ValidationError, match="unknown quality parts"):
        CardQuality(floors={"glare": 1.0})


@settings(max_examples=60, deadline=None)
@given(
    count=st.integers(1, 3),
    height=st.integers(1, 70),
    width=st.integers(1, 70),
    radius=st.sampled_from([0.5, 1.0, 2.0]),
    percent=st.sampled_from([50, 200]),
    seed=st.integers(0, 2**16),
)
def test_sharpened_is_pillows_unsharp_mask_bit_for_bit(
    count, height, width, radius, percent, seed
) -> None:
    views = np.random.default_rng(seed).integers(0, 256, (count, height, width, 3), np.uint8)
    mask = ImageFilter.UnsharpMask(radius, percent, 0)
    expected = np.stack([np.asarray(Image.fromarray(view).filter(mask)) for view in views])
    assert np.array_equal(sharpened(views, radius, percent), expected)


@settings(max_examples=200, deadline=None)
@given(
    photos=st.lists(
        st.tuples(
            st.sampled_from(["C1", "C2", "C3"]),
            st.booleans(),
            st.sampled_from([True, True, False]),  # bright more often than not: cameras cross
        ),
        max_size=120,
    )
)
@example(photos=[("C1", True, True)] * 11 + [("C1", True, False)] * 10 + [("C2", True, True)] * 19)
@example(photos=[("C1", True, True)] * 10 + [("C1", True, False)] * 10 + [("C1", False, True)] * 5)
def test_a_camera_is_named_overexposed_exactly_when_most_of_enough_measured_faces_are(
    photos: list[tuple[str, bool, bool]],
) -> None:
    from agebatch.predict.stage import (
        OVEREXPOSED_LEAST,
        OVEREXPOSED_SHARE,
        Prediction,
        overexposed_cameras,
    )

    predictions = [
        Prediction(1.0, PhotoStatus.OK, quality=1.5 if measured else None, overexposed=bright)
        for _, measured, bright in photos
    ]
    named = overexposed_cameras(predictions, [camera for camera, _, _ in photos])
    for camera in ("C1", "C2", "C3"):
        measured = [bright for c, m, bright in photos if c == camera and m]
        wanted = len(measured) >= OVEREXPOSED_LEAST and sum(measured) > OVEREXPOSED_SHARE * len(
            measured
        )
        assert (camera in named) == wanted
        if wanted:
            assert named[camera] == (sum(measured), len(measured))


def test_the_stage_names_a_camera_whose_faces_look_overexposed_and_keeps_their_ages(
    aligned_face: np.ndarray, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from agebatch.predict.stage import OVEREXPOSED, OVEREXPOSED_LEAST

    model = _floored_model(tmp_path)
    rng = np.random.default_rng(3)
    paths, cameras = [], []
    for camera, gain in (("S1/R1", 1.0), ("S1/R2", 1.8), ("S2/R1", 1.0)):
        for i in range(OVEREXPOSED_LEAST + 4):
            pixels = aligned_face * gain + rng.normal(0, 2, aligned_face.shape)
            paths.append(tmp_path / f"{camera.replace('/', '-')}-{i}.png")
            Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8)).save(paths[-1])
            cameras.append(tuple(camera.split("/")))
    config = PredictConfig(photo_kind="auto", workers=1, batch_size=16)
    with caplog.at_level("WARNING", logger="agebatch.predict.stage"):
        predictions, _ = predict_paths(paths, model, config, cameras=cameras)
    assert all(p.status == PhotoStatus.OK and p.age is not None for p in predictions)
    exposure = [dict(load_photo(p, SPEC).quality.parts)["exposure"] for p in paths[::24]]
    assert exposure[0] < OVEREXPOSED < exposure[1] and exposure[2] < OVEREXPOSED
    warned = [r.getMessage() for r in caplog.records if "overexposed" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith("Camera S1/R2 looks overexposed: 24 of")
