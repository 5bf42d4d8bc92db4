"""The nightly flow under Prefect's test harness on a generated day, read back with DuckDB."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.testing.utilities import prefect_test_harness

from agebatch.errors import InputError
from agebatch.flows.nightly import nightly
from agebatch.sample import SampleDay, make_sample_day
from agebatch.settings import DEFAULT_AGE_BOUNDS, age_group_labels
from tests.conftest import DAY

pytestmark = pytest.mark.slow
GROUPS = age_group_labels(DEFAULT_AGE_BOUNDS)


@pytest.fixture(scope="module")
def harness() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleDay:
    return make_sample_day(tmp_path_factory.mktemp("day"), DAY, face_style="solid", seed=11)


def _read(out: Path, table: str) -> pd.DataFrame:
    glob = str(out / table / "*" / "*.parquet")
    return duckdb.sql(
        "select * from read_parquet($glob, hive_partitioning = true)", params={"glob": glob}
    ).df()


def _run(sample: SampleDay, out: Path, model: Path, day: dt.date = DAY) -> dict:
    return nightly(
        day=day.isoformat(),
        photos=str(sample.photos),
        transactions=str(sample.transactions),
        catalog=str(sample.catalog),
        out=str(out),
        model=str(model),
    )


def _group(age: float) -> str:
    return next(label for label, low, high in GROUPS if low <= age < high)


def _expected(sample: SampleDay) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What the published tables must hold, computed from the generator's truth in pandas."""
    truth = sample.truth.set_index("receipt_id")
    # A flat grey photo of level round(age * 2.55) reads back as that level / 2.55.
    truth["age"] = np.where(
        truth["status"] == "matched", np.round(truth["true_age"] * 2.55) / 2.55, np.nan
    )
    truth["age_group"] = [_group(a) if a == a else "unknown" for a in truth["age"]]
    lines = pd.read_parquet(sample.transactions / f"{DAY}.parquet")
    catalog = pd.read_csv(sample.catalog)
    lines = lines.merge(catalog, on="sku").join(truth["age_group"], on="receipt_id")
    purchases = lines.groupby(["store_id", "age_group", "category"]).agg(
        receipts=("receipt_id", "nunique"), units=("quantity", "sum"), revenue=("amount", "sum")
    )
    return truth, purchases


def test_flow_publishes_exact_figures(
    harness: None, sample: SampleDay, tmp_path: Path, brightness_model_path: Path
) -> None:
    result = _run(sample, tmp_path, brightness_model_path)
    truth, purchases = _expected(sample)

    ages = _read(tmp_path, "receipt_ages").set_index("receipt_id").sort_index()
    assert len(ages) == len(truth) == 300
    assert ages["status"].to_dict() == truth["status"].to_dict()
    assert set(ages["age_group"].dropna()) <= {label for label, *_ in GROUPS}
    assert ages["age_group"].isna().equals(ages["status"] != "matched")
    matched = ages[ages["status"] == "matched"]
    np.testing.assert_allclose(matched["predicted_age"], truth.loc[matched.index, "age"], atol=1e-3)
    assert (matched["photo"] == truth.loc[matched.index, "photo"]).all()
    assert (ages["day"] == pd.Timestamp(DAY)).all() and (
        ages["model_version"] == "brightness-test-1"
    ).all()

    published = _read(tmp_path, "age_group_purchases").set_index(
        ["store_id", "age_group", "category"]
    )
    assert not published.index.duplicated().any()
    published = published.sort_index()
    expected = purchases.sort_index()
    assert published.index.equals(expected.index)
    assert published["receipts"].tolist() == expected["receipts"].tolist()
    np.testing.assert_allclose(published["units"], expected["units"])
    np.testing.assert_allclose(published["revenue"], expected["revenue"], atol=1e-9)

    runs = _read(tmp_path, "runs")
    assert len(runs) == 1
    statuses = truth["status"].value_counts()
    run = runs.iloc[0]
    assert run["photos_found"] == statuses["matched"] + statuses["unreadable"]
    assert run["photos_unreadable"] == statuses["unreadable"] == 3
    assert run["files_ignored"] == 2
    assert run["receipts"] == 300 and run["receipts_matched"] == statuses["matched"]
    assert run["photos_per_s"] > 0 and run["model_version"] == "brightness-test-1"
    assert result["receipts_matched"] == statuses["matched"]

    # Alcohol: receipts that sold restricted units, shopper under 25 or not seen.
    lines = pd.read_parquet(sample.transactions / f"{DAY}.parquet").merge(
        pd.read_csv(sample.catalog), on="sku"
    )
    units = lines[lines["age_restricted"]].groupby("receipt_id")["quantity"].sum()
    sold = truth.loc[units[units > 0].index]
    review = sold[(sold["status"] != "matched") | (sold["age"] < 25)]
    checks = _read(tmp_path, "alcohol_checks").set_index("receipt_id")
    assert sorted(checks.index) == sorted(review.index) and len(checks) > 10
    expected_reason = np.where(
        review["status"] != "matched",
        review["status"],
        np.where(review["age"] < 18, "under_legal_age", "under_challenge_age"),
    )
    assert checks.loc[review.index, "reason"].tolist() == expected_reason.tolist()
    cashiers = _read(tmp_path, "cashier_compliance")
    assert cashiers["restricted_receipts"].sum() == len(sold)
    assert cashiers["flagged_receipts"].sum() == (review["status"] == "matched").sum()

    artifacts = get_client(sync_client=True).read_artifacts(
        artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"agebatch-summary-{DAY}"]))
    )
    assert artifacts and artifacts[0].type == "table"
    summary = {row["measure"]: row["value"] for row in json.loads(artifacts[0].data)}
    assert summary["receipts"] == 300 and summary["photos_unreadable"] == 3
    top = get_client(sync_client=True).read_artifacts(
        artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"agebatch-cashiers-{DAY}"]))
    )
    rates = [row["flagged_rate"] for row in json.loads(top[0].data)]
    assert rates == sorted(rates, reverse=True) and len(rates) == len(cashiers)


def test_rerun_replaces_exactly_that_day(
    harness: None, sample: SampleDay, tmp_path: Path, brightness_model_path: Path
) -> None:
    other_day = DAY - dt.timedelta(days=1)
    other = make_sample_day(tmp_path / "other", other_day, receipts=40, face_style="solid")
    _run(other, tmp_path / "out", brightness_model_path, other_day)
    other_files = {p: p.read_bytes() for p in (tmp_path / "out").rglob(f"day={other_day}/*")}

    _run(sample, tmp_path / "out", brightness_model_path)
    first = _read(tmp_path / "out", "receipt_ages")
    _run(sample, tmp_path / "out", brightness_model_path)
    second = _read(tmp_path / "out", "receipt_ages")

    assert len(second) == len(first) == 340  # 300 + 40: the day was replaced, not appended
    for table in ("receipt_ages", "age_group_purchases"):
        assert len(list((tmp_path / "out" / table / f"day={DAY}").iterdir())) == 1
    runs = _read(tmp_path / "out", "runs")
    assert (runs["day"] == pd.Timestamp(DAY)).sum() == 2  # the day's run history is kept
    assert {
        p: p.read_bytes() for p in (tmp_path / "out").rglob(f"day={other_day}/*")
    } == other_files
    assert not any((tmp_path / "out" / ".staging").glob(f"{DAY}-*"))


def test_demo_generates_runs_and_reports(
    harness: None,
    tmp_path: Path,
    brightness_model_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    from agebatch.demo import run_demo

    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    work = tmp_path / "demo"
    assert run_demo(work, receipts=60, seed=1, model=brightness_model_path) == 0
    printed = capsys.readouterr().out
    tables = "age_group_purchases, age_group_shares, alcohol_checks, cashier_compliance"
    assert f"{tables}, receipt_ages, runs." in printed
    assert "Alcohol sales to review (alcohol_checks):" in printed
    assert "read_parquet(" in printed
    assert len(_read(work / "out", "receipt_ages")) == 60
    # A folder that is not a demo folder is refused rather than overwritten.
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "data.txt").write_text("keep")
    with pytest.raises(InputError, match="not an agebatch demo folder"):
        run_demo(tmp_path / "precious")
