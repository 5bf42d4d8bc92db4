"""Never a worse day silently (issue #27): a day published again with its receipts, photos or
matched share collapsed against the version it replaces is refused like the coverage gate
(exit 3, nothing published) unless --accept-worse-day, which `runs` records."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agebatch.cli import main
from agebatch.errors import CoverageRefused
from agebatch.pipeline import run_day
from agebatch.republish import DayCounts, collapses
from agebatch.retention import photo_files
from agebatch.sample import make_sample_day
from tests.conftest import DAY
from tests.pictures import SolidFaces

GOOD = DayCounts(receipts=400, matched=360, photos=380, usable=360)


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        (DayCounts(0, 0, 380, 360), ["receipts 400 -> 0"]),  # no share of no receipts
        (DayCounts(400, 360, 380, 360), []),
        (DayCounts(420, 380, 400, 380), []),  # a better day
        (DayCounts(400, 0, 380, 0), ["usable photos 360 -> 0", "matched share 0.900 -> 0.000"]),
        (
            DayCounts(400, 20, 10, 10),
            ["photos 380 -> 10", "usable photos 360 -> 10", "matched share 0.900 -> 0.050"],
        ),
        (DayCounts(400, 284, 380, 290), []),  # 0.710: within the 0.2 margin
        (DayCounts(400, 260, 380, 290), ["matched share 0.900 -> 0.650"]),
        (DayCounts(201, 181, 191, 181), []),  # just over half of each
    ],
)
def test_what_counts_as_a_collapse(after: DayCounts, expected: list[str]) -> None:
    assert collapses(GOOD, after, min_count=20, margin=0.2) == expected


@given(
    before=st.builds(DayCounts, *[st.integers(0, 19)] * 4),
    after=st.builds(DayCounts, *[st.integers(0, 1000)] * 4),
)
def test_a_small_published_day_is_not_judged(before: DayCounts, after: DayCounts) -> None:
    assert collapses(before, after, min_count=20, margin=0.2) == []


def _header_only(transactions: Path, day: dt.date) -> None:
    """The day's transactions file with its columns and no line."""
    path = transactions / f"{day.isoformat()}.parquet"
    pq.write_table(pq.read_table(path).slice(0, 0), path)


def test_a_header_only_transactions_file_never_replaces_a_good_day(
    tmp_path: Path, brightness_model
) -> None:
    sample = make_sample_day(tmp_path / "data", DAY, receipts=60, writer=SolidFaces(), seed=5)
    out = tmp_path / "out"
    good = run_day(sample.config(out), DAY, model=brightness_model)
    receipts = pq.read_table(out / "receipt_ages" / f"day={DAY}").num_rows
    assert receipts == good.record.receipts >= 40
    _header_only(sample.transactions, DAY)

    with pytest.raises(CoverageRefused) as refused:
        run_day(sample.config(out), DAY, model=brightness_model)
    assert str(refused.value).startswith(
        f"Refused to publish {DAY}: it would replace the published run {good.record.run_id} "
        f"with a much worse day (receipts {receipts} -> 0"
    )
    assert pq.read_table(out / "receipt_ages" / f"day={DAY}").num_rows == receipts
    assert pq.read_table(out / "runs" / f"day={DAY}").num_rows == 1

    accepted = run_day(sample.config(out, accept_worse_day=True), DAY, model=brightness_model)
    assert pq.read_table(out / "receipt_ages" / f"day={DAY}").num_rows == 0
    runs = pd.read_parquet(out / "runs" / f"day={DAY}").set_index("run_id")
    row = runs.loc[accepted.record.run_id]
    assert row["coverage_gate"] == "accepted"
    assert f"day receipts {receipts} -> 0 (replacing run {good.record.run_id})" in list(
        row["coverage_over"]
    )


def test_the_cli_exits_3_when_the_photos_are_gone(tmp_path: Path, brightness_model_path) -> None:
    sample = make_sample_day(tmp_path / "data", DAY, receipts=60, writer=SolidFaces(), seed=6)
    out = tmp_path / "out"
    paths = ["--photos", str(sample.photos), "--transactions", str(sample.transactions)]
    argv = ["run", "--day", DAY.isoformat(), *paths, "--catalog", str(sample.catalog)]
    argv += ["--out", str(out), "--model", str(brightness_model_path)]
    assert main(argv) == 0
    for photo in photo_files(sample.photos / DAY.isoformat())[5:]:
        photo.unlink()  # a photo folder mostly gone
    assert main([*argv, "--accept-low-coverage"]) == 3  # the coverage gate let it: this did not
    assert main([*argv, "--accept-worse-day", "--accept-low-coverage"]) == 0
