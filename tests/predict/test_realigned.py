"""Faces aligned by their landmarks (loose crops, frames) have their ages put on the aligned
crops' scale: the card's `face.realigned.offset` is taken off them, and off nothing else."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from agebatch.config import PredictConfig
from agebatch.errors import InputError
from agebatch.predict import images
from agebatch.predict.images import Reading
from agebatch.predict.model import AgeModel, load_model
from agebatch.predict.stage import _predictions, predict_paths
from agebatch.schema import PhotoStatus
from tests.pictures import drawn_frame

SPEC = images.InputSpec((64, 64), (0.025, 0.025, 0.975, 0.975), "box", "auto", 0.2)


def with_offset(model: AgeModel, offset: float) -> AgeModel:
    """The same Keras model under a card whose realigned faces read `offset` years older."""
    face = {**model.card.face.model_dump(exclude_none=True), "realigned": {"offset": offset}}
    return AgeModel(model.card.updated(face=face), model.keras_model, model.path)


@pytest.fixture
def photos(tmp_path: Path) -> dict[str, Path]:
    """A face crop and a frame with a small face in it, as JPEGs."""
    crop, frame = tmp_path / "crop.jpg", tmp_path / "frame.jpg"
    Image.fromarray(drawn_frame((300, 300), [(150, 160, 220)])).save(crop, quality=90)
    Image.fromarray(drawn_frame((640, 480), [(300, 220, 150)])).save(frame, quality=90)
    return {"crop": crop, "frame": frame}


def test_only_faces_aligned_by_their_landmarks_are_marked_realigned(photos) -> None:
    as_crop = images.load_photo(photos["crop"], SPEC, reading=Reading.CROP)
    loose = images.load_photo(photos["crop"], SPEC, reading=Reading.LOOSE)
    frame = images.load_photo(photos["frame"], SPEC, reading=Reading.FRAME)
    assert [d.status for d in (as_crop, loose, frame)] == [PhotoStatus.OK] * 3
    assert (as_crop.realigned, loose.realigned, frame.realigned) == (False, True, True)


@pytest.mark.parametrize("kind", ["crops", "frames"])
def test_the_cards_offset_is_taken_off_realigned_faces_only(photos, cropping_model, kind) -> None:
    paths = [photos["crop"], photos["frame"]]
    config = PredictConfig(photo_kind=kind, batch_size=2, workers=1)
    plain, _ = predict_paths(paths, cropping_model, config)
    shifted, _ = predict_paths(paths, with_offset(cropping_model, 2.5), config)
    assert all(p.status == PhotoStatus.OK for p in plain + shifted)
    expected = [p.age - 2.5 if kind == "frames" else p.age for p in plain]
    assert [p.age for p in shifted] == pytest.approx(expected, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 3), st.booleans(), st.floats(-2.0, 2.0)), min_size=1, max_size=8
    ),
    seed=st.integers(0, 2**16),
)
def test_a_photos_age_is_the_mean_of_its_views_less_its_offset_never_below_zero(
    rows: list[tuple[int, bool, float]], seed: int
) -> None:
    ages = np.random.default_rng(seed).uniform(0.25, 80.0, sum(views for views, *_ in rows))
    layout = [
        (PhotoStatus.OK if views else PhotoStatus.NO_FACE, views, "", None, "", off * realigned)
        for views, realigned, off in rows
    ]
    got, start = _predictions(ages, layout), 0
    for (views, realigned, off), prediction in zip(rows, got, strict=True):
        if not views:
            assert prediction.age is None and prediction.status == PhotoStatus.NO_FACE
            continue
        raw = float(ages[start : start + views].mean())
        start += views
        want = max(0.0, raw - off) if realigned else raw
        assert prediction.age == pytest.approx(want, abs=1e-9)


def test_the_bundled_card_measures_its_offset() -> None:
    card = load_model().card
    assert card.face.realigned is not None
    assert 0.0 < card.realigned_offset < 1.0  # measured: loose and re-aligned faces read older
    assert "calibration" in card.face.realigned.model_extra["measured"]


def test_a_card_with_an_offset_out_of_range_is_refused(cropping_model) -> None:
    face = {**cropping_model.card.face.model_dump(exclude_none=True), "realigned": {"offset": 9}}
    with pytest.raises(InputError, match="realigned"):
        cropping_model.card.updated(face=face)
