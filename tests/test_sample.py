"""The generated days: unchanged draws without planted preferences, planted ones that show, ages
read through a model's confusion, and drawn faces that the pipeline measures as aligned crops."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from agebatch.predict.faces import alignment, assumed_face
from agebatch.predict.images import crop_vote, worker_finder
from agebatch.sample import NoPhotos, Preference, confused_ages, drawn_face, make_sample_day
from tests.conftest import DAY

# sha256 of a generated day's lines and truth (as CSV) before preferences could be planted:
# the demo's and the tests' days must not change for a seed.
BEFORE = {
    0: "20338ccbe1c8edf77c5842fcf28ac5e3d83d2d6f2ca91daceca55076c0ead17d",
    7: "a0e0b505c92a412ce4f04a49632db9287f690532b90769ec2d50c127feede6fc",
}


def _digest(root: Path, seed: int) -> str:
    # Without the till's age checks, which came later and draw from a random stream of their own.
    sample = make_sample_day(root, DAY, seed=seed, receipts=120, age_checks=False)
    lines = pd.read_parquet(sample.transactions / f"{DAY}.parquet")
    truth = sample.truth.drop(columns=["age_check"])
    text = lines.to_csv(index=False) + truth.to_csv(index=False)
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("seed", sorted(BEFORE))
def test_a_day_without_preferences_is_the_day_it_always_was(tmp_path: Path, seed: int) -> None:
    assert _digest(tmp_path, seed) == BEFORE[seed]


def _buying_share(sample, item: str, low: float, high: float) -> float:
    """Share of the receipts of shoppers aged [low, high) with a line of item."""
    lines = pd.read_parquet(sample.transactions / f"{DAY}.parquet")
    truth = sample.truth.set_index("receipt_id")
    aged = truth[(truth["true_age"] >= low) & (truth["true_age"] < high)].index
    buyers = set(lines.loc[lines["sku"] == item, "receipt_id"])
    return len(buyers & set(aged)) / len(aged)


def test_a_planted_preference_shows_in_the_baskets_of_its_ages_only(tmp_path: Path) -> None:
    plant = (Preference(35, 45, "DAI001", 4.0),)
    days = {
        name: make_sample_day(
            tmp_path / name, DAY, receipts=3000, seed=3, writer=NoPhotos(), preferences=plants
        )
        for name, plants in (("plain", ()), ("planted", plant))
    }
    inside = [_buying_share(days[n], "DAI001", 35, 45) for n in ("plain", "planted")]
    outside = [_buying_share(days[n], "DAI001", 45, 200) for n in ("plain", "planted")]
    assert inside[1] > 2 * inside[0]
    assert outside[1] == pytest.approx(outside[0], abs=0.05)  # sampling noise only
    # A category can be planted too: every sku of it is picked more.
    wine = make_sample_day(
        tmp_path / "wine",
        DAY,
        receipts=3000,
        seed=3,
        writer=NoPhotos(),
        preferences=(Preference(18, 25, "wine", 4.0),),
    )
    assert _buying_share(wine, "WIN000", 18, 25) > 2 * _buying_share(
        days["plain"], "WIN000", 18, 25
    )


def test_confused_ages_draw_from_the_row_of_the_true_year() -> None:
    counts = [[20, 30, 3], [20, 31, 1], [40, 40, 5]]
    read = confused_ages([20.5] * 4000 + [41.2, 70.0], counts, np.random.default_rng(0))
    years = np.floor(read[:4000])
    assert set(years) == {30, 31}
    assert (years == 30).mean() == pytest.approx(0.75, abs=0.03)
    assert 40 <= read[4000] < 41 and 40 <= read[4001] < 41  # nearest year with counts


def test_drawn_faces_measure_as_aligned_crops(tmp_path: Path) -> None:
    # The real crop vote (detector with a margin, dlib's landmarks, faces.alignment) and the
    # per-photo check (landmarks in the assumed box), on 300 saved faces of every age 1-99 and
    # the generator's random colours: each measured, and well inside the aligned limit of 1.
    votes, assumed = [], []
    for seed in range(300):
        rng = np.random.default_rng(seed)
        path = tmp_path / f"{seed}.jpg"
        drawn_face(float(1 + seed % 99), rng).save(path, quality=90)
        votes.append(crop_vote(path))
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"))
        assumed.append(alignment(assumed_face(rgb, worker_finder()), 200, 200).misalignment)
    assert all(isinstance(v, float) for v in votes)  # a face found and measured in each
    for measured in (np.array(votes), np.array(assumed)):
        assert np.median(measured) < 0.3 and measured.max() < 0.8


def test_drawn_faces_grey_and_wrinkle_with_age() -> None:
    young, old = (drawn_face(age, np.random.default_rng(5)) for age in (15.0, 85.0))
    assert young.getpixel((35, 20)) == (0, 0, 0) and old.getpixel((35, 20)) == (255, 255, 255)
    forehead = [np.asarray(face)[18:44, 100] for face in (young, old)]  # a column of skin
    lined = [int((column != column[0]).any(axis=1).sum()) for column in forehead]
    assert lined == [0, 4]  # no line at 15, four at 85
