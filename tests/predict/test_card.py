"""The model card: one reader, one writer, and one sentence for a card that cannot work."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from agebatch.errors import InputError
from agebatch.predict.card import ModelCard
from agebatch.predict.model import AgeModel, bundled_model_path

GOOD = {
    "name": "m",
    "version": "m1",
    "input": {"height": 32, "width": 48, "preprocessing": "scale_0_1", "color": "RGB"},
    "output": {"kind": "age"},
    "face": {"aligned_crop": {"box": [0.1, 0.2, 0.9, 1.0], "resample": "box"}},
    "licence": {"spdx": "CC0-1.0"},
}


def _write(tmp_path: Path, card: dict) -> Path:
    model = tmp_path / "m.keras"
    (tmp_path / "m.card.json").write_text(json.dumps(card))
    return model


def test_the_bundled_card_reads_and_writes_back_byte_for_byte(tmp_path: Path) -> None:
    card = ModelCard.read(bundled_model_path())
    written = card.write(tmp_path / "age_v1.keras")
    assert written.read_bytes() == ModelCard.path_for(bundled_model_path()).read_bytes()
    assert card.size == (64, 64) and card.crop == (0.025, 0.025, 0.975, 0.975)
    assert card.resample == "box" and card.flip  # chosen in docs/compliance.md
    assert card.age_confusion is not None and card.age_confusion.n == 3781
    # Its operating curve was measured with flip averaging, at every threshold from 20 to 35,
    # and as a curve must: fewer teenagers missed and more adults flagged as it rises.
    curve = card.curve
    assert curve is not None and [p.threshold for p in curve.points] == list(range(20, 36))
    misses = [p.teen_miss for p in curve.points]
    flags = [p.adult_flag for p in curve.points]
    assert misses == sorted(misses, reverse=True) and flags == sorted(flags)


def test_fields_the_code_does_not_read_are_kept(tmp_path: Path) -> None:
    card = ModelCard.read(_write(tmp_path, GOOD))
    assert (card.size, card.crop, card.input.preprocessing) == (
        (48, 32),
        (0.1, 0.2, 0.9, 1.0),
        "scale_0_1",
    )
    card.updated(test_time_augmentation="flip").write(tmp_path / "n.keras")
    again = ModelCard.read(tmp_path / "n.keras")
    assert again.to_dict()["licence"] == {"spdx": "CC0-1.0"} and again.flip
    assert again.to_dict()["input"]["color"] == "RGB"


def test_a_card_write_that_fails_half_way_leaves_the_old_card(tmp_path: Path) -> None:
    """`agebatch evaluate --write-...` rewrites a card in place: whole, or the old one stays."""
    model = _write(tmp_path, GOOD)
    before = (tmp_path / "m.card.json").read_bytes()
    card = ModelCard.read(model).updated(test_time_augmentation="flip")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "replace", lambda *_: (_ for _ in ()).throw(OSError("killed")))
        with pytest.raises(OSError, match="killed"):
            card.write(model)
    assert (tmp_path / "m.card.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.card.json"]  # no temporary left
    card.write(model)
    assert ModelCard.read(model).flip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"face": {"aligned_crop": {"box": [0.9, 0.1, 0.1, 0.9]}}}, "crop box .* must have"),
        ({"face": {"aligned_crop": {"box": [0, 0, 1.2, 1]}}}, "crop box"),
        ({"input": {"height": 0, "width": 64}}, "input.height"),
        ({"output": {"kind": "distribution"}}, "needs the 'ages'"),
        ({"output": {"kind": "years"}}, "output.kind"),
        ({"test_time_augmentation": "rotate"}, "test_time_augmentation"),
        ({"version": None}, "version"),
    ],
)
def test_a_card_that_cannot_work_is_one_sentence(
    tmp_path: Path, change: dict, message: str
) -> None:
    with pytest.raises(InputError, match=message) as error:
        ModelCard.read(_write(tmp_path, {**GOOD, **change}))
    assert "\n" not in str(error.value) and "m.card.json" in str(error.value)


def test_missing_or_broken_card_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is missing"):
        ModelCard.read(tmp_path / "none.keras")
    (tmp_path / "x.card.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot be read as JSON"):
        ModelCard.read(tmp_path / "x.keras")


class _Rows:
    """A stand-in Keras model: the age of an image is the mean of its left column's red."""

    def predict_on_batch(self, x: np.ndarray) -> np.ndarray:
        return x[:, :, 0, 0].mean(axis=1, keepdims=True)


def test_flip_averaging_and_preprocessing_follow_the_card() -> None:
    images = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    images[:, :, 0, 0] = [[200], [100]]  # left column red; the right column stays black
    card = ModelCard.from_dict({**GOOD, "input": {"height": 4, "width": 4}})
    assert AgeModel(card, _Rows()).predict(images).tolist() == [200.0, 100.0]
    flipped = AgeModel(card.updated(test_time_augmentation="flip"), _Rows())
    assert flipped.predict(images).tolist() == [100.0, 50.0]  # mean with the mirror image's 0
    scaled = card.updated(input={"height": 4, "width": 4, "preprocessing": "scale_0_1"})
    np.testing.assert_allclose(AgeModel(scaled, _Rows()).predict(images), [200 / 255, 100 / 255])
