"""The `agebatch-nightly` flow: find → predict → join → publish, one day per run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from agebatch import pipeline
from agebatch.config import (
    DEFAULT_PHOTO_KIND,
    DEFAULT_TIMEZONE,
    Settings,
    parse_age_bounds,
    parse_day,
    parse_region,
    yesterday,
)
from agebatch.errors import InputError
from agebatch.predict.model import AgeModel, load_model
from agebatch.reports.summary import summary_rows, top_cashiers

if TYPE_CHECKING:  # the flow itself handles no tables
    import pandas as pd
    import pyarrow as pa


def _not_input_error(task, task_run, state) -> bool:
    """Retry I/O hiccups, never a bad input (retrying cannot fix a missing column)."""
    try:
        state.result()
    except InputError:
        return False
    except Exception:
        return True
    return False


# Retries on I/O only (reading inputs, writing outputs); never around the model or SQL.
_IO = {"retries": 2, "retry_delay_seconds": 5, "retry_condition_fn": _not_input_error}


@task(cache_policy=NO_CACHE)
def load(settings: Settings) -> AgeModel:
    """Load the age model and its card."""
    return load_model(settings.model)


@task(cache_policy=NO_CACHE, **_IO)
def find(settings: Settings, summary: pipeline.RunSummary) -> pipeline.DayInputs:
    """Find the day's photos and read its transactions and catalog."""
    return pipeline.find(settings, summary)


@task(cache_policy=NO_CACHE)
def predict(
    settings: Settings, inputs: pipeline.DayInputs, model: AgeModel, summary: pipeline.RunSummary
) -> pd.DataFrame:
    """Predict an age for every photo, logging progress lines."""
    progress = _progress_lines(len(inputs.captures.table))
    return pipeline.predict(settings, inputs, model, summary, progress)


@task(cache_policy=NO_CACHE)
def join(
    settings: Settings,
    inputs: pipeline.DayInputs,
    aged: pd.DataFrame,
    model: AgeModel,
    summary: pipeline.RunSummary,
) -> dict[str, pa.Table]:
    """Match receipts to ages, sum purchases per age group, list restricted sales, in DuckDB."""
    return pipeline.join(settings, inputs, aged, model, summary)


@task(cache_policy=NO_CACHE, **_IO)
def publish(settings: Settings, tables: dict[str, pa.Table], summary: pipeline.RunSummary) -> None:
    """Swap the day's Parquet into the output folder, whole or not at all."""
    pipeline.publish(settings, tables, summary)


@flow(name="agebatch-nightly", log_prints=False)
def nightly(
    day: str | None = None,
    photos: str = "photos",
    transactions: str = "transactions",
    catalog: str = "catalog.parquet",
    out: str = "out",
    model: str | None = None,
    window_before_s: float = 120.0,
    window_after_s: float = 5.0,
    age_groups: str = "18,25,35,45,55,65",
    batch_size: int = 64,
    timezone: str = DEFAULT_TIMEZONE,
    legal_age: float = 18.0,
    challenge_age: float = 25.0,
    margin: float = 0.0,
    policy: str | None = None,
    photo_kind: str = DEFAULT_PHOTO_KIND,
    face_region: str = "0,0,1,1",
    face_regions: str | None = None,
) -> dict[str, object]:
    """Turn one day's checkout photos and transactions into published age analytics."""
    settings = Settings(
        day=parse_day(day) if day else yesterday(timezone),
        photos=Path(photos),
        transactions=Path(transactions),
        catalog=Path(catalog),
        out=Path(out),
        model=Path(model) if model else None,
        window_before_s=window_before_s,
        window_after_s=window_after_s,
        age_bounds=parse_age_bounds(age_groups),
        batch_size=batch_size,
        timezone=timezone,
        legal_age=legal_age,
        challenge_age=challenge_age,
        margin=margin,
        policy=Path(policy) if policy else None,
        photo_kind=photo_kind,
        face_region=parse_region(face_region),
        face_regions=Path(face_regions) if face_regions else None,
    )
    model_ = load(settings)
    summary = pipeline.start(settings, model_)
    inputs = find(settings, summary)
    aged = predict(settings, inputs, model_, summary)
    tables = join(settings, inputs, aged, model_, summary)
    publish(settings, tables, summary)
    create_table_artifact(
        table=summary_rows(summary),
        key=f"agebatch-summary-{settings.day.isoformat()}",
        description=f"agebatch nightly run for {settings.day}: counts, timings, model",
    )
    create_table_artifact(
        table=top_cashiers(tables["cashier_compliance"]),
        key=f"agebatch-cashiers-{settings.day.isoformat()}",
        description=f"Cashiers with the highest share of flagged alcohol sales on {settings.day}"
        " (a list to review, not a verdict)",
    )
    return {row["measure"]: row["value"] for row in summary_rows(summary)}


def _progress_lines(total: int, every_s: float = 10.0):
    """A progress callback that logs a line at most every `every_s` seconds, and at the end."""
    logger = get_run_logger()
    state = {"done": 0, "last": time.monotonic()}

    def update(n: int) -> None:
        state["done"] += n
        now = time.monotonic()
        if now - state["last"] >= every_s or state["done"] == total:
            state["last"] = now
            logger.info(
                "predict: %d/%d photos (%.0f%%)",
                state["done"],
                total,
                100 * state["done"] / max(total, 1),
            )

    return update
