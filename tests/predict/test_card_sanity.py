"""A card is sane only if its crop box and sizes make sense (issue #27): a crop box that is a
point (every shopper then aged 1-3) or an input of absurd size is refused when the card is
read, in one sentence."""

from __future__ import annotations

import pytest

from agebatch.errors import InputError
from agebatch.predict.card import ModelCard

CARD = {
    "schema": "agebatch.model-card/1",
    "name": "m",
    "version": "m-1",
    "input": {"height": 64, "width": 64},
    "output": {"kind": "age"},
}


def _with_box(box: list[float]) -> dict:
    return {**CARD, "face": {"aligned_crop": {"box": box, "resample": "box"}}}


@pytest.mark.parametrize(
    ("box", "sizes"),
    [
        ([0.5, 0.5, 0.5001, 0.5001], "0.0001 wide and 0.0001 high"),
        ([0.0, 0.0, 0.19, 1.0], "0.19 wide and 1 high"),
        ([0.1, 0.4, 0.9, 0.55], "0.8 wide and 0.15 high"),
    ],
)
def test_a_crop_box_too_small_to_show_a_face_is_refused(box: list[float], sizes: str) -> None:
    with pytest.raises(InputError) as refused:
        ModelCard.from_dict(_with_box(box), "Model card c.json")
    assert str(refused.value) == (
        f"Model card c.json: field face.aligned_crop.box: the crop box {box} is "
        f"{sizes}: each side must be at least 0.2 of the image, a smaller box shows no face."
    )


@pytest.mark.parametrize("box", [[0.025, 0.025, 0.975, 0.975], [0.4, 0.4, 0.6, 0.6]])
def test_sane_boxes_are_kept(box: list[float]) -> None:
    assert ModelCard.from_dict(_with_box(box), "c").face.aligned_crop.box == tuple(box)


@pytest.mark.parametrize("side", ["height", "width"])
def test_an_input_bigger_than_a_face_model_takes_is_refused(side: str) -> None:
    card = {**CARD, "input": {**CARD["input"], side: 4096}}
    with pytest.raises(InputError, match=rf"field input\.{side}: .*less than or equal to 2048"):
        ModelCard.from_dict(card, "c")
