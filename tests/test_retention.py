"""--retention-days deletes a day's photos N days after the day was published, never before,
judged from the published run records; never the day being run, never on a failed run (#12)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from agebatch.errors import CoverageRefused, InputError
from agebatch.pipeline import run_day
from agebatch.publish import _day_lock, publish_day
from agebatch.retention import due_days, photo_files
from agebatch.sample import SampleDay, make_sample_day
from tests.conftest import DAY
from tests.faults import bare_record
from tests.pictures import SolidFaces

NOW = dt.datetime(2026, 11, 25, 3, 0, tzinfo=dt.UTC)


def _published(out: Path, day: dt.date, run_id: str, at: dt.datetime) -> None:
    """A committed run of `day` whose record says it was published `at`."""
    record = bare_record(run_id, day, published_at=at)
    publish_day(out, day, {}, record.table, run_id)


def _photos(root: Path, day: dt.date, receipts: int = 6) -> SampleDay:
    return make_sample_day(root, day, receipts=receipts, writer=SolidFaces(), seed=day.day)


def _ago(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


def test_only_days_published_long_enough_ago_are_due(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    days = {
        name: DAY - dt.timedelta(days=n)
        for n, name in enumerate(["today", "old", "recent", "never", "rerun"])
    }
    for day in days.values():
        sample = _photos(data, day)
    _published(out, days["old"], "a", _ago(7))  # exactly 7 days: due
    _published(out, days["recent"], "b", _ago(6.9))
    _published(out, days["rerun"], "c", _ago(30))
    _published(out, days["rerun"], "d", _ago(1))  # re-published since: the last publish counts
    _published(out, days["today"], "e", _ago(30))  # the day being run: never
    config = sample.config(out, retention_days=7)
    assert due_days(config, days["today"], NOW) == [days["old"]]
    later = due_days(config, days["today"], NOW + dt.timedelta(days=1))
    assert later == [days["recent"], days["old"]]  # in date order
    assert due_days(sample.config(out), days["today"], NOW) == []  # no retention set
    # A day whose photos are gone already is not due again.
    for photo in photo_files(config.day_folder(days["old"])):
        photo.unlink()
    assert due_days(config, days["today"], NOW) == []


def test_a_run_deletes_the_due_photos_after_publishing_and_records_them(
    tmp_path: Path, brightness_model
) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    old, recent = DAY - dt.timedelta(days=40), DAY - dt.timedelta(days=2)
    for day in (old, recent):
        _photos(data, day)
    _published(out, old, "a", dt.datetime.now(dt.UTC) - dt.timedelta(days=31))
    _published(out, recent, "b", dt.datetime.now(dt.UTC) - dt.timedelta(days=2))
    sample = _photos(data, DAY, receipts=30)
    folder = sample.photos / old.isoformat()
    kept = {p for p in folder.rglob("*") if p.is_file() and p.suffix not in (".png",)}
    assert photo_files(folder) and kept  # photos, and the day's other files

    published = run_day(sample.config(out, retention_days=30), DAY, model=brightness_model)
    assert published.record.photos_deleted_days == [old.isoformat()]
    assert photo_files(folder) == [] and {p for p in folder.rglob("*") if p.is_file()} == kept
    assert photo_files(sample.photos / recent.isoformat())  # published 2 days ago: kept
    assert photo_files(sample.photos / DAY.isoformat())  # the day just run: kept
    (runs,) = pq.read_table(out / "runs" / f"day={DAY}").to_pylist()
    assert runs["photos_deleted_days"] == [old.isoformat()]


@pytest.mark.parametrize("failure", ["refused by the gate", "publish fails"])
def test_a_failed_run_deletes_nothing(tmp_path: Path, brightness_model, failure: str) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    old = DAY - dt.timedelta(days=40)
    _photos(data, old)
    _published(out, old, "a", dt.datetime.now(dt.UTC) - dt.timedelta(days=31))
    sample = _photos(data, DAY, receipts=30)
    config = sample.config(out, retention_days=30)
    if failure == "refused by the gate":
        config = sample.config(out, retention_days=30, coverage_min_count=1)
        for photo in photo_files(sample.photos / DAY.isoformat()):
            photo.write_bytes(b"not an image")
        with pytest.raises(CoverageRefused):
            run_day(config, DAY, model=brightness_model)
    else:
        with _day_lock(out, DAY), pytest.raises(InputError, match="Another run is publishing"):
            run_day(config, DAY, model=brightness_model)
    assert len(photo_files(sample.photos / old.isoformat())) > 0
    assert not (out / "receipt_ages" / f"day={DAY}").exists()
