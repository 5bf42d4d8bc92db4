"""A model and its card are checked against each other when loaded, before any photo (#12).

The card's input size must be the Keras model's, and two generated faces, cut out with the
card's crop box and resized as the card says, must get finite ages within 0-120 years. Cards
that cannot work (an inverted crop box, a zero size) are one sentence at `agebatch run` too.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agebatch.cli import main
from agebatch.errors import InputError
from agebatch.predict.model import load_model
from agebatch.sample import make_sample_day
from tests.conftest import DAY, save_brightness_model
from tests.pictures import SolidFaces


def _edit_card(model: Path, **changes: object) -> Path:
    card = model.with_name(model.stem + ".card.json")
    card.write_text(json.dumps({**json.loads(card.read_text()), **changes}))
    return model


def _model_with(tmp_path: Path, name: str, bias: float) -> Path:
    """A one-layer age model whose age is `bias` whatever the photo (nan: no age at all)."""
    import keras

    inputs = keras.Input((64, 64, 3), name="pixels")
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    age = keras.layers.Dense(1, name="age")(pooled)
    model = keras.Model(inputs, age)
    model.get_layer("age").set_weights([np.zeros((3, 1)), np.array([bias])])
    path = save_brightness_model(tmp_path / f"{name}.keras")  # its card, 64x64
    model.save(path)
    return path


def test_a_card_whose_input_size_is_not_the_models_is_one_sentence(tmp_path: Path) -> None:
    model = _edit_card(
        save_brightness_model(tmp_path / "m.keras"),
        input={"height": 32, "width": 32, "preprocessing": "in_model"},
    )
    with pytest.raises(InputError) as error:
        load_model(model)
    message = str(error.value)
    assert "says the input is 32x32 RGB, but the model in m.keras takes 64x64x3" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("bias", "shown"), [(500.0, "500, 500"), (-3.0, "-3, -3"), (float("nan"), "nan, nan")]
)
def test_a_model_whose_ages_are_not_ages_is_refused(
    tmp_path: Path, bias: float, shown: str
) -> None:
    with pytest.raises(InputError) as error:
        load_model(_model_with(tmp_path, "odd", bias))
    assert f"predicts {shown} for two generated faces" in str(error.value)
    assert "within 0-120 years" in str(error.value)


def test_a_model_with_plausible_ages_loads(tmp_path: Path) -> None:
    assert load_model(_model_with(tmp_path, "forty", 40.0)).version == "brightness-test-1"


@pytest.mark.parametrize(
    ("card", "message"),
    [
        ({"face": {"aligned_crop": {"box": [0.9, 0.1, 0.1, 0.9]}}}, "crop box .* must have"),
        ({"input": {"height": 0, "width": 0}}, "field input.height"),
        ({"input": {"height": 32, "width": 32}}, "takes 64x64x3"),
    ],
)
def test_run_with_a_card_that_cannot_work_is_one_sentence_and_publishes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture, card: dict, message: str
) -> None:
    import re

    sample = make_sample_day(tmp_path / "data", DAY, receipts=10, writer=SolidFaces())
    model = _edit_card(save_brightness_model(tmp_path / "m.keras"), **card)
    out = tmp_path / "out"
    code = main(
        [
            "run", "--day", str(DAY), "--photos", str(sample.photos),
            "--transactions", str(sample.transactions), "--catalog", str(sample.catalog),
            "--out", str(out), "--model", str(model),
        ]
    )  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("agebatch: error: ")
    assert re.search(message, err[-1]), err[-1]
    assert not out.exists()
