"""The nightly flow under Prefect's test harness on a generated day, read back with DuckDB."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.testing.utilities import prefect_test_harness

from agebatch.config import age_group_labels, default_age_bounds
from agebatch.errors import InputError
from agebatch.flows.nightly import nightly
from agebatch.sample import SampleDay, make_sample_day
from agebatch.schema import TABLES, conform
from tests.conftest import DAY
from tests.pictures import PatternFaces, SolidFaces, pattern_age

pytestmark = pytest.mark.slow
GROUPS = age_group_labels(default_age_bounds())


@pytest.fixture(scope="module")
def harness() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleDay:
    """A day of textured faces that the pattern model reads at known ages."""
    return make_sample_day(tmp_path_factory.mktemp("day"), DAY, writer=PatternFaces(), seed=11)


def _read(out: Path, table: str) -> pd.DataFrame:
    glob = str(out / table / "*" / "*.parquet")
    return duckdb.sql(
        "select * from read_parquet($glob, hive_partitioning = true)", params={"glob": glob}
    ).df()


def _read_exact(out: Path, table: str) -> pd.DataFrame:
    """A published table with its decimals as Decimal (DuckDB's .df() makes them floats)."""
    glob = str(out / table / "*" / "*.parquet")
    relation = duckdb.sql(
        "select * from read_parquet($glob, hive_partitioning = true)", params={"glob": glob}
    )
    return relation.arrow().read_all().to_pandas()


def _run(sample: SampleDay, out: Path, model: Path, day: dt.date = DAY, **settings) -> dict:
    return nightly(config=sample.config(out, model=model, **settings), day=day)


def _group(age: float) -> str:
    return next(label for label, low, high in GROUPS if low <= age < high)


def _expected(sample: SampleDay) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What the published tables must hold, computed from the generator's truth in pandas."""
    truth = sample.truth.set_index("receipt_id")
    # The age the pattern model must read from each photo, worked out from the file itself.
    day_dir = sample.photos / DAY.isoformat()
    truth["age"] = [
        pattern_age(day_dir / photo) if status == "matched" else np.nan
        for photo, status in zip(truth["photo"], truth["status"], strict=True)
    ]
    truth["age_group"] = [_group(a) if a == a else "unknown" for a in truth["age"]]
    lines = pd.read_parquet(sample.transactions / f"{DAY}.parquet")
    lines["amount"] = [Decimal(f"{amount:.2f}") for amount in lines["amount"]]
    lines["quantity"] = [Decimal(int(quantity)) for quantity in lines["quantity"]]
    catalog = pd.read_csv(sample.catalog)
    lines = lines.merge(catalog, on="sku").join(truth["age_group"], on="receipt_id")
    purchases = lines.groupby(["store_id", "age_group", "category", "age_restricted"]).agg(
        category_receipts=("receipt_id", "nunique"),
        units=("quantity", "sum"),
        revenue=("amount", "sum"),
    )
    return truth, purchases


def test_flow_publishes_exact_figures(
    harness: None, sample: SampleDay, tmp_path: Path, pattern_model_path: Path
) -> None:
    # crops: the faces are crops, and auto's detector would see faces in a few of the textures
    result = _run(sample, tmp_path, pattern_model_path, photo_kind="crops")
    truth, purchases = _expected(sample)
    for table in TABLES:  # every published table is exactly its schema
        files = list((tmp_path / table).glob("*/*.parquet"))
        published = pa.concat_tables(pq.read_table(f) for f in files)
        day = pa.array([DAY] * published.num_rows, pa.date32())
        labels = [label for label, *_ in GROUPS]
        rows = conform(table, published.add_column(0, "day", day), labels).num_rows
        assert rows or table == "quarantined_receipts"  # a clean day quarantines nothing

    ages = _read(tmp_path, "receipt_ages").set_index("receipt_id").sort_index()
    assert len(ages) == len(truth) == 300
    assert ages["status"].to_dict() == truth["status"].to_dict()
    assert set(ages["age_group"].dropna()) <= {label for label, *_ in GROUPS}
    assert ages["age_group"].isna().equals(ages["status"] != "matched")
    matched = ages[ages["status"] == "matched"]
    np.testing.assert_allclose(matched["predicted_age"], truth.loc[matched.index, "age"], atol=1e-3)
    assert (matched["photo"] == truth.loc[matched.index, "photo"]).all()
    assert (ages["day"] == pd.Timestamp(DAY)).all() and (
        ages["model_version"] == "pattern-test-1"
    ).all()

    published = _read_exact(tmp_path, "age_group_purchases").set_index(
        ["store_id", "age_group", "category", "age_restricted"]
    )
    assert not published.index.duplicated().any()
    # Every cell is published exactly or marked withheld (null figures, never 0); no published
    # cell with an age holds fewer than 5 receipts (docs/safeguards.md).
    kept = published[~published["withheld"]].sort_index()
    expected = purchases.sort_index()
    assert expected.index.isin(published.index).all() and kept.index.isin(expected.index).all()
    aged = kept.index.get_level_values("age_group") != "unknown"
    assert (kept.loc[aged, "category_receipts"] >= 5).all()
    for column in ("category_receipts", "units", "revenue"):  # exact: counts and decimals
        assert kept[column].tolist() == expected.loc[kept.index, column].tolist(), column
        assert published.loc[published["withheld"], column].isna().all(), column

    runs = _read(tmp_path, "runs")
    assert len(runs) == 1
    statuses = truth["status"].value_counts()
    run = runs.iloc[0]
    assert run["photos_found"] == statuses["matched"] + statuses["unreadable"]
    assert run["photos_unreadable"] == statuses["unreadable"] == 3
    assert run["photos_no_face"] == 0 and run["receipts_no_face"] == 0
    assert run["files_ignored"] == 2
    assert run["receipts"] == 300 and run["receipts_matched"] == statuses["matched"]
    assert run["photos_per_s"] > 0 and run["model_version"] == "pattern-test-1"
    assert result["receipts_matched"] == statuses["matched"]

    # Alcohol: receipts that sold restricted units, shopper under 25 or not seen, or sold
    # although the till recorded a refused ID.
    lines = pd.read_parquet(sample.transactions / f"{DAY}.parquet").merge(
        pd.read_csv(sample.catalog), on="sku"
    )
    units = lines[lines["age_restricted"]].groupby("receipt_id")["quantity"].sum()
    sold = truth.loc[units[units > 0].index]
    refused = sold["age_check"] == "id_refused"
    flagged = (sold["status"] == "matched") & (sold["age"] < 25)
    review = sold[(sold["status"] != "matched") | flagged | refused]
    checks = _read(tmp_path, "alcohol_checks").set_index("receipt_id")
    assert sorted(checks.index) == sorted(review.index) and len(checks) > 10
    expected_reason = np.where(
        review["age_check"] == "id_refused",
        "sold_after_refusal",
        np.where(
            review["status"] != "matched",
            review["status"],
            np.where(review["age"] < 18, "under_legal_age", "under_challenge_age"),
        ),
    )
    assert checks.loc[review.index, "reason"].tolist() == expected_reason.tolist()
    recorded = review["age_check"].fillna("not_recorded")
    assert checks.loc[review.index, "age_check"].tolist() == recorded.tolist()
    missed = flagged.loc[review.index] & recorded.isin(["not_asked", "not_recorded"])
    assert checks.loc[review.index, "missed_check"].tolist() == missed.tolist()
    # The generated day has every outcome (empty too) and missed checks among the sales.
    assert set(truth["age_check"].fillna("")) == {"id_seen", "id_refused", "not_asked", ""}
    assert missed.sum() > 3 and set(recorded) >= {"id_seen", "not_asked", "not_recorded"}
    cashiers = _read(tmp_path, "cashier_compliance")
    assert cashiers["restricted_receipts"].sum() == len(sold)
    assert cashiers["flagged_receipts"].sum() == flagged.sum()
    assert cashiers["missed_receipts"].sum() == missed.sum() == runs.iloc[0]["missed_checks"]
    assert cashiers["sold_after_refusal_receipts"].sum() == refused.sum()

    # The affinity's daily counts: every matched receipt once per store and group, and the
    # window of this first day covers only it.
    items = _read(tmp_path, "age_group_item_receipts")
    everyone = items[items["item_kind"] == "all"].set_index(["store_id", "age_group"])["receipts"]
    matched_truth = truth[truth["status"] == "matched"]
    expected_groups = matched_truth.groupby(["store_id", "age_group"]).size()
    assert everyone.sort_index().to_dict() == expected_groups.sort_index().to_dict()
    affinity = _read(tmp_path, "age_group_affinity")
    assert len(affinity) > 0 and (affinity["days_covered"] == 1).all()
    ranked = affinity[affinity["offer_rank"].notna()]
    assert (ranked["receipts"] >= 20).all() and (ranked["lift_low"] > 1).all()

    artifacts = get_client(sync_client=True).read_artifacts(
        artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"agebatch-summary-{DAY}"]))
    )
    assert artifacts and artifacts[0].type == "table"
    summary = {row["measure"]: row["value"] for row in json.loads(artifacts[0].data)}
    assert summary["receipts"] == 300 and summary["photos_unreadable"] == 3
    top = get_client(sync_client=True).read_artifacts(
        artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"agebatch-cashiers-{DAY}"]))
    )
    # With age checks recorded, cashiers are ranked by their missed-check rate.
    rates = [row["missed_rate"] or 0 for row in json.loads(top[0].data)]
    assert rates == sorted(rates, reverse=True) and len(rates) == len(cashiers)
    offers = get_client(sync_client=True).read_artifacts(
        artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"agebatch-offers-{DAY}"]))
    )
    shown = json.loads(offers[0].data)
    assert len(shown) == (ranked["offer_rank"] <= 3).sum()
    assert all(row["lift_low"] > 1 and " as often as " in row["in_words"] for row in shown)

    # The day's report: the chain's page and one per store, and an artifact that says where.
    pages = tmp_path / "reports" / DAY.isoformat()
    assert sorted(p.name for p in pages.iterdir()) == [
        "index.html",
        "store-S01.html",
        "store-S02.html",
        "store-S03.html",
    ]
    assert result["report"] == str(pages / "index.html")
    assert f"agebatch report: the chain, {DAY}" in (pages / "index.html").read_text()
    (report,) = get_client(sync_client=True).read_artifacts(
        artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"agebatch-report-{DAY}"]))
    )
    assert report.type == "markdown"
    markdown = re.sub(r"\\(.)", r"\1", report.data)  # markdown's escapes undone
    assert "- **receipts**: 300" in markdown
    assert f"- **alcohol sales to review**: {len(checks)}" in markdown
    assert f"Chain: {pages / 'index.html'}" in markdown
    assert f"- S02: {pages / 'store-S02.html'}" in markdown


def test_rerun_replaces_exactly_that_day(
    harness: None, sample: SampleDay, tmp_path: Path, brightness_model_path: Path
) -> None:
    other_day = DAY - dt.timedelta(days=1)
    other = make_sample_day(tmp_path / "other", other_day, receipts=40, writer=SolidFaces())
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
    from agebatch.cli.demo import run_demo

    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    work = tmp_path / "demo"
    assert run_demo(work, receipts=60, seed=1, model=brightness_model_path) == 0
    printed = capsys.readouterr().out
    tables = (
        "age_group_affinity, age_group_item_receipts, age_group_purchases, age_group_receipts, "
        "age_group_shares, alcohol_checks, cameras, cashier_compliance"
    )
    assert (
        f"{tables}, products, quarantined_receipts, receipt_ages, runs, store_coverage, "
        "store_sales, till_clocks." in printed
    )
    assert "What to offer each age group (age_group_affinity" in printed
    assert "Planted in the generated day (by true age): 18-24 pick DAI002 4 times" in printed
    assert "Alcohol sales to review (alcohol_checks):" in printed
    missed = _read(work / "out", "alcohol_checks")["missed_check"].sum()
    assert f"Missed ID checks (young-looking shopper, no check recorded): {missed}" in printed
    assert "read_parquet(" in printed
    (folder,) = (work / "out" / "reports").iterdir()  # the demo's day: yesterday
    report = folder / "index.html"
    assert f"The report of {folder.name}, to open in a browser" in printed
    assert report.as_uri() in printed and report.is_file()
    assert len(_read(work / "out", "receipt_ages")) == 60
    # A folder that is not a demo folder is refused rather than overwritten.
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "data.txt").write_text("keep")
    with pytest.raises(InputError, match="not an agebatch demo folder"):
        run_demo(tmp_path / "precious")


def _run_log(flow_run_id: object, expect: str, timeout: float = 30) -> list[str]:
    """The messages of a flow run's log on the server, once one starts with `expect` (logs
    reach the API in batches, a little after the run ends)."""
    client = get_client(sync_client=True)
    run_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
    deadline = time.monotonic() + timeout
    while True:
        messages = [log.message for log in client.read_logs(log_filter=run_filter)]
        if any(m.startswith(expect) for m in messages) or time.monotonic() > deadline:
            return messages
        time.sleep(0.5)


def test_package_log_lines_reach_the_run_log(
    harness: None, tmp_path: Path, brightness_model_path: Path
) -> None:
    """No PREFECT_LOGGING_EXTRA_LOGGERS and no CLI logging set up: the flow itself sends
    agebatch's INFO lines to the run's log, and leaves the logger as it found it."""
    assert "agebatch" not in os.environ.get("PREFECT_LOGGING_EXTRA_LOGGERS", "")
    package = logging.getLogger("agebatch")
    handlers, level = list(package.handlers), package.level
    sample = make_sample_day(tmp_path / "data", DAY, receipts=30, writer=SolidFaces(), seed=2)
    config = sample.config(tmp_path / "out", model=brightness_model_path)
    state = nightly(config=config, day=DAY, return_state=True)
    assert state.is_completed()
    published = f"Published {DAY} to {tmp_path / 'out'}"  # the package's last line
    messages = _run_log(state.state_details.flow_run_id, published)
    assert [m for m in messages if m.startswith(published)], messages
    assert [m for m in messages if m.startswith("Joined 30 receipts")], messages
    assert [m for m in messages if m.startswith("Predicted ")], messages
    assert package.handlers == handlers and package.level == level


def _brightness_age(chip: np.ndarray) -> float:
    """What the brightness model reads from a 64x64 chip: mean level / 2.55."""
    return float(chip.astype(np.float64).mean() / 2.55)


def test_flow_on_frames_no_face_two_faces_and_exif(
    harness: None, tmp_path: Path, brightness_model_path: Path
) -> None:
    from PIL import Image

    from agebatch.predict.faces import FaceFinder, face_chip
    from tests.pictures import drawn_frame, scene

    sample = make_sample_day(tmp_path / "day", DAY, receipts=40, writer=SolidFaces(), seed=5)
    truth = sample.truth.set_index("receipt_id")
    lines = pd.read_parquet(sample.transactions / f"{DAY}.parquet")
    lines = lines.merge(pd.read_csv(sample.catalog), on="sku")
    restricted = lines[lines["age_restricted"]].groupby("receipt_id")["quantity"].sum() > 0
    matched = truth[truth["status"] == "matched"]
    # Three receipts get whole camera frames instead of face crops: one that bought alcohol
    # gets a frame with no face, one a frame with two faces, one an EXIF-rotated frame.
    empty_id = next(r for r in matched.index if restricted.get(r, False))
    two_id, exif_id = [r for r in matched.index if r != empty_id][:2]
    day_dir = sample.photos / DAY.isoformat()
    Image.fromarray(scene(640, 480, seed=1)).save(day_dir / truth.at[empty_id, "photo"])
    bright, dark = (235, 225, 215), (110, 70, 50)
    two = drawn_frame((640, 480), [(190, 230, 150), (480, 220, 80)], [bright, dark])
    Image.fromarray(two).save(day_dir / truth.at[two_id, "photo"])
    upright = drawn_frame((640, 480), [(330, 250, 140)], [(200, 160, 130)])
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned 90 degrees; viewers turn it back clockwise
    Image.fromarray(upright).rotate(90, expand=True).save(
        day_dir / truth.at[exif_id, "photo"], exif=exif
    )

    finder = FaceFinder()
    big, small = sorted(finder.find(two), key=lambda f: -f.area)
    big_age, small_age = (_brightness_age(face_chip(two, f)) for f in (big, small))
    assert big_age - small_age > 10  # far apart, so the age tells which face was read
    exif_age = _brightness_age(face_chip(upright, finder.find_shopper(upright)))

    out = tmp_path / "out"
    _run(sample, out, brightness_model_path)
    ages = _read(out, "receipt_ages").set_index("receipt_id")
    assert ages.at[empty_id, "status"] == "no_face"
    assert pd.isna(ages.at[empty_id, "predicted_age"]) and pd.isna(ages.at[empty_id, "age_group"])
    assert ages.at[two_id, "status"] == ages.at[exif_id, "status"] == "matched"
    assert ages.at[two_id, "predicted_age"] == pytest.approx(big_age, abs=0.5)
    assert ages.at[exif_id, "predicted_age"] == pytest.approx(exif_age, abs=0.5)
    others = ages.drop(index=[empty_id, two_id, exif_id])
    assert others["status"].to_dict() == truth.loc[others.index, "status"].to_dict()

    run = _read(out, "runs").iloc[0]
    assert (run["photos_no_face"], run["receipts_no_face"]) == (1, 1)
    assert run["photos_unreadable"] == 3
    assert run["photos_decoded"] == run["photos_found"] - 3  # a faceless photo was decoded
    checks = _read(out, "alcohol_checks").set_index("receipt_id")
    assert checks.at[empty_id, "reason"] == "no_face"
    unchecked = ages.loc[restricted[restricted].index, "status"].isin(
        ["no_photo", "unreadable", "no_face"]
    )
    assert _read(out, "cashier_compliance")["unchecked_receipts"].sum() == unchecked.sum() >= 1

    # A face region for the register of the two-face frame: its right half is where the
    # shopper stands there, so the smaller face is read.
    regions = tmp_path / "regions.csv"
    store, register = truth.at[two_id, "store_id"], truth.at[two_id, "register_id"]
    regions.write_text(f"store_id,register_id,x0,y0,x1,y1\n{store},{register},0.5,0,1,1\n")
    _run(sample, tmp_path / "out2", brightness_model_path, face_regions=regions)
    again = _read(tmp_path / "out2", "receipt_ages").set_index("receipt_id")
    assert again.at[two_id, "predicted_age"] == pytest.approx(small_age, abs=0.5)


def test_a_refused_day_fails_the_flow_run_with_the_reason(
    harness: None, tmp_path: Path, brightness_model_path: Path
) -> None:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from agebatch.errors import CoverageRefused

    sample = make_sample_day(tmp_path / "day", DAY, receipts=60, stores=1, writer=SolidFaces())
    for photo in (sample.photos / DAY.isoformat()).rglob("*.png"):
        photo.write_bytes(b"not an image")
    state = nightly(
        config=sample.config(tmp_path / "out", model=brightness_model_path),
        day=DAY,
        return_state=True,
    )
    assert state.is_failed()
    with pytest.raises(CoverageRefused, match="are unreadable, against no history"):
        state.result()
    run = get_client(sync_client=True).read_flow_runs(
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
    )[0]
    assert run.state.is_failed() and "Refused to publish" in run.state.message
    assert not list((tmp_path / "out").rglob("*.parquet"))
