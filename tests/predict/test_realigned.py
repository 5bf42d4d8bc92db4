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
        st.tuples(st.integers(0, 3), st.booleans(), st.floats(-2.0, 2.0), st.booleans()),
        min_size=1,
        max_size=8,
    ),
    seed=st.integers(0, 2**16),
)
def test_a_photos_age_is_the_mean_of_its_views_less_its_offset_never_below_zero(
    rows: list[tuple[int, bool, float, bool]], seed: int
) -> None:
    ages = np.random.default_rng(seed).uniform(0.25, 80.0, sum(views for views, *_ in rows))
    layout = [
        (
            PhotoStatus.OK if views else PhotoStatus.NO_FACE,
            views,
            "",
            None,
            "",
            off * realigned,
            ("realigned",) if realigned else (),
            bright,
        )
        for views, realigned, off, bright in rows
    ]
    got, start = _predictions(ages, layout), 0
    for (views, realigned, off, bright), prediction in zip(rows, got, strict=True):
        assert prediction.overexposed == bright  # kept whether or not the photo was aged
        if not views:
            assert prediction.age is None and prediction.status == PhotoStatus.NO_FACE
            continue
        raw = float(ages[start : start + views].mean())
        start += views
        want = max(0.0, raw - off) if realigned else raw
        assert prediction.age == pytest.approx(want, abs=1e-9)
        assert prediction.adjusted == (("realigned",) if realigned else ())


def test_the_bundled_card_measures_its_offset() -> None:
    card = load_model().card
    assert card.face.realigned is not None
    assert 0.0 < card.realigned_offset < 1.0  # measured: loose and re-aligned faces read older
    assert "calibration" in card.face.realigned.model_extra["measured"]


def test_a_card_with_an_offset_out_of_range_is_refused(cropping_model) -> None:
    face = {**cropping_model.card.face.model_dump(exclude_none=True), "realigned": {"offset": 9}}
    with pytest.raises(InputError, match="realigned"):
        cropping_model.card.updated(face=face)


def drawn_labelled_faces(root: Path, ages: list[float]) -> Path:
    """Labelled faces in the training layout whose faces the finder aligns: drawn faces framed
    as aligned crops (sample.drawn_face), saved as JPEGs."""
    from agebatch.sample import drawn_face

    rng = np.random.default_rng(7)
    (root / "final_files").mkdir(parents=True)
    rows = ["file_name,real_age"]
    for i, age in enumerate(ages):
        drawn_face(age, rng).save(root / "final_files" / f"{i:06d}.jpg", quality=90)
        rows.append(f"{i:06d}.jpg,{age}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def test_the_offset_is_measured_as_the_mean_shift_of_realigned_ages_and_written_to_the_card(
    tmp_path: Path, pattern_model_path: Path, capsys
) -> None:
    """`agebatch evaluate --realigned --write-realigned`: the two differences are those of
    each face read photo by photo, and the card then takes their mean off realigned ages."""
    from agebatch.cli import main
    from agebatch.training.conditions import write_condition

    faces = drawn_labelled_faces(tmp_path / "faces", [9.0, 16.0, 24.0, 35.0, 52.0, 71.0])
    model_path = tmp_path / "m.keras"
    model_path.write_bytes(pattern_model_path.read_bytes())
    card = pattern_model_path.with_name(pattern_model_path.stem + ".card.json")
    model_path.with_name("m.card.json").write_text(card.read_text())
    argv = ["evaluate", "--faces", str(faces), "--model", str(model_path), "--seed", "3"]
    work = tmp_path / "copies"
    assert main([*argv, "--realigned", "--write-realigned", "--workdir", str(work)]) == 0
    assert "offset" in capsys.readouterr().out

    model = load_model(model_path)
    spec = images.InputSpec.from_card(model.card, "auto")
    originals = sorted((faces / "final_files").iterdir())
    loose = write_condition("loose", originals, tmp_path / "again", 3)

    def age(path: Path, reading: Reading) -> float:
        decoded = images.load_photo(path, spec, reading=reading)
        assert decoded.pixels is not None, path
        return float(model.predict(decoded.pixels).mean())

    aligned = [age(p, Reading.CROP) for p in originals]
    shifts = [
        np.mean([age(p, Reading.LOOSE) - a for p, a in zip(paths, aligned, strict=True)])
        for paths in (originals, loose)
    ]
    assert model.card.realigned_offset == pytest.approx(round(float(np.mean(shifts)), 2))
    assert model.card.realigned_offset != 0.0
    assert "split all" in model.card.face.realigned.model_extra["measured"]


def test_a_fine_tuned_model_does_not_inherit_the_bundled_offset() -> None:
    from agebatch.training.train import TrainConfig, base_card

    card = base_card(TrainConfig())
    assert "realigned" not in card["face"] and "aligned_crop" in card["face"]
    assert "conditions" not in card  # measured with the bundled model (and its offset)


def test_realigned_and_conditions_together_are_refused_in_one_sentence(
    tmp_path: Path, capsys
) -> None:
    from agebatch.cli import main

    faces = drawn_labelled_faces(tmp_path / "faces", [20.0, 40.0])
    argv = ["evaluate", "--faces", str(faces), "--realigned", "--conditions", "loose"]
    assert main(argv) == 2
    assert "--conditions and --realigned measure different things" in capsys.readouterr().err
    argv = ["evaluate", "--faces", str(faces), "--write-realigned", "--write-error"]
    assert main(argv) == 2
    assert "run --write-error, --write-confusion and --write-curve without it" in (
        capsys.readouterr().err
    )


def test_an_unreadable_face_is_counted_not_fatal_and_the_subset_is_measured(
    tmp_path: Path, pattern_model_path: Path, capsys
) -> None:
    from agebatch.cli import main

    faces = drawn_labelled_faces(tmp_path / "faces", [12.0, 18.0, 27.0, 33.0, 45.0, 60.0])
    (faces / "final_files" / "bad.jpg").write_bytes(b"not a picture")
    with (faces / "labels.csv").open("a") as labels:
        labels.write("bad.jpg,30\n")
    argv = ["evaluate", "--faces", str(faces), "--model", str(pattern_model_path), "--realigned"]
    assert main([*argv, "--subset", "7"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("7 faces of faces (all)") and "(6 aged both ways)" in out
    assert main([*argv, "--subset", "4", "--seed", "1"]) == 0
    assert capsys.readouterr().out.startswith("4 faces of faces (all)")
