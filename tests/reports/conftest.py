"""Generated weeks published by the real pipeline, for the HTML report's tests."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from agebatch import pipeline
from agebatch.config import RunConfig
from agebatch.pipeline import run_day
from agebatch.predict.model import AgeModel, load_model
from agebatch.sample import DEMO_PREFERENCES, make_sample_day
from tests.conftest import DAY, save_brightness_model
from tests.pictures import SolidFaces

RUN_DAYS = 2  # the last days of a generated output go through run_day, report and all


def save_carded_brightness_model(path: Path) -> Path:
    """The brightness model with a card that has an age confusion (so shares are corrected)
    and an operating curve through 25 (so the report states the teen miss rate)."""
    save_brightness_model(path)
    card_path = path.with_name(path.stem + ".card.json")
    card = json.loads(card_path.read_text())
    # Each whole year read right 8 times in 10, 5 years too old twice: neighbours are confused.
    counts = [[year, year, 8] for year in range(10, 80)] + [
        [year, year + 5, 2] for year in range(10, 80)
    ]
    card["age_confusion"] = {"split": "generated", "n": 700, "counts": counts}
    card["operating_curve"] = {
        "faces": "generated",
        "split": "generated",
        "test_time_augmentation": "none",
        "n_teens": 40,
        "n_under_18": 90,
        "n_adults": 300,
        "points": [
            {"threshold": 21.0, "teen_miss": 0.3, "under_18_miss": 0.1, "adult_flag": 0.01},
            {"threshold": 25.0, "teen_miss": 0.125, "under_18_miss": 0.05, "adult_flag": 0.06},
        ],
    }
    card["error"] = {"mae": 0.1, "mae_by_band": {"13-17": 0.1, "18-24": 0.2}}
    card_path.write_text(json.dumps(card))
    return path


@dataclass(frozen=True)
class Published:
    """An output root of generated days published by the pipeline."""

    out: Path
    model: Path
    days: list[dt.date]

    @property
    def day(self) -> dt.date:
        """The last published day."""
        return self.days[-1]


def publish_days(
    root: Path,
    model: Path,
    days: int,
    *,
    receipts: int = 90,
    stores: int = 3,
    age_checks: bool = True,
    rename: dict[str, str] | None = None,
    blind: tuple[str, ...] = (),
    **settings: object,
) -> Published:
    """Generate `days` days ending on DAY (drawn grey faces the brightness model reads), run
    each through the pipeline into root/out; `rename` changes store and cashier ids in the
    inputs first (photo folders and transactions); the cameras of the `blind` stores took no
    photos."""
    loaded = load_model(model)
    out, published = root / "out", []
    for back in range(days - 1, -1, -1):
        day = DAY - dt.timedelta(days=back)
        sample = make_sample_day(
            root / "data",
            day,
            stores=stores,
            receipts=receipts,
            seed=back,
            writer=SolidFaces(),
            age_checks=age_checks,
            preferences=DEMO_PREFERENCES,
        )
        for store in blind:
            shutil.rmtree(sample.photos / day.isoformat() / store)
        if rename:
            _rename(sample.photos / day.isoformat(), sample.transactions / f"{day}.parquet", rename)
        config: RunConfig = sample.config(out, model=model, photo_kind="crops", **settings)
        if back < RUN_DAYS:
            run_day(config, day, model=loaded)  # publishes, then writes the day's report
        else:
            _publish(config, day, loaded)
        published.append(day)
    return Published(out, model, published)


def _publish(config: RunConfig, day: dt.date, model: AgeModel) -> None:
    """Publish a day as a run does, without refreshing the analytics database or writing the
    report (the earlier days of a generated output: only the last ones need them, and this
    halves the time a day takes)."""
    run = pipeline.start(model, day)
    found = pipeline.find(config, day)
    predicted = pipeline.predict(config, found, model)
    joined = pipeline.transform(config, day, found, predicted, model)
    gated = pipeline.gate(config, day, predicted, joined)
    record = pipeline.run_record(run, found, predicted, joined, gated)
    pipeline.publish(config, gated.tables, record)


def _rename(day_dir: Path, transactions: Path, rename: dict[str, str]) -> None:
    """Give stores and cashiers other ids in a generated day's photos and transactions."""
    import pandas as pd

    for old, new in rename.items():
        if (day_dir / old).is_dir():
            (day_dir / old).rename(day_dir / new)
    lines = pd.read_parquet(transactions)
    for column in ("store_id", "cashier_id"):
        lines[column] = lines[column].replace(rename)
    lines.to_parquet(transactions, index=False)


@pytest.fixture(scope="session")
def carded_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The brightness model with an age confusion and an operating curve in its card."""
    return save_carded_brightness_model(tmp_path_factory.mktemp("carded") / "carded.keras")


@pytest.fixture(scope="session")
def two_weeks(tmp_path_factory: pytest.TempPathFactory, carded_model_path: Path) -> Published:
    """Fourteen generated days (3 stores, 90 receipts a day, age checks) published under out,
    each with its report written by the run."""
    return publish_days(tmp_path_factory.mktemp("two-weeks"), carded_model_path, 14)
