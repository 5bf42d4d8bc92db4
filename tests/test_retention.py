"""--retention-days deletes a day's photos N days after the day was published, never before,
judged from the published run records; never the day being run, never on a failed run (#12);
only from the photo folder the publishing run read, and only while those photos are unchanged
(#27)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from agebatch.errors import CoverageRefused, InputError
from agebatch.pipeline import run_day
from agebatch.publish import _day_lock, publish_day
from agebatch.retention import PHOTOS_NOTE, delete_photos, due_days, photo_files, photos_note
from agebatch.sample import SampleDay, make_sample_day
from tests.conftest import DAY
from tests.faults import bare_record
from tests.pictures import SolidFaces

NOW = dt.datetime(2026, 11, 25, 3, 0, tzinfo=dt.UTC)


def _published(
    out: Path, day: dt.date, run_id: str, at: dt.datetime, photos: Path | None = None
) -> None:
    """A committed run of `day` whose record says it was published `at`, having read the day's
    folder under photos (default: the data folder beside out)."""
    record = bare_record(run_id, day, published_at=at)
    folder = (photos or out.parent / "data" / "photos") / day.isoformat()
    publish_day(out, day, {}, record.table, run_id, {PHOTOS_NOTE: photos_note(folder)})


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


def test_only_the_photo_root_the_day_was_published_from_is_deleted(tmp_path: Path) -> None:
    """The issue's case: 2026-12-06 was published from X; a run of 2026-12-05 with --photos Y
    must not delete Y's 2026-12-06, a folder never read (here a copy of X's, times and all)."""
    run, other = dt.date(2026, 12, 5), dt.date(2026, 12, 6)
    x, y, out = tmp_path / "x", tmp_path / "y", tmp_path / "out"
    sample_x = _photos(x, other)
    shutil.copytree(x, y)  # copy2: the same names, sizes and modification times
    sample_y = dataclasses.replace(sample_x, photos=y / "photos")
    _published(out, other, "a", _ago(40), photos=sample_x.photos)
    from_y = sample_y.config(out, retention_days=30)
    from_x = sample_x.config(out, retention_days=30)
    y_photos = photo_files(from_y.day_folder(other))
    assert due_days(from_y, run, NOW) == []
    assert delete_photos(from_y, [other]) == {}  # asked anyway: checked again, kept
    assert photo_files(from_y.day_folder(other)) == y_photos and y_photos
    assert due_days(from_x, run, NOW) == [other]  # the root it was read from: due
    assert delete_photos(from_x, [other]) == {other: len(y_photos)}
    assert photo_files(from_y.day_folder(other)) == y_photos


@pytest.mark.parametrize("change", ["replaced", "added", "removed"])
def test_photos_changed_since_the_publish_are_kept(tmp_path: Path, change: str) -> None:
    old, out = DAY - dt.timedelta(days=40), tmp_path / "out"
    sample = _photos(tmp_path / "data", old)
    _published(out, old, "a", _ago(31))
    config = sample.config(out, retention_days=30)
    first, *_ = photos = photo_files(config.day_folder(old))
    if change == "replaced":  # another photo under the same name, size and time
        stat = first.stat()
        first.write_bytes(bytes(reversed(first.read_bytes())))
        os.utime(first, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    elif change == "added":
        (first.parent / "new.png").write_bytes(first.read_bytes())
    else:
        first.unlink()
    assert due_days(config, DAY, NOW) == []
    assert delete_photos(config, [old]) == {}
    left = len(photos) + {"added": 1, "removed": -1}.get(change, 0)
    assert len(photo_files(config.day_folder(old))) == left


def test_an_out_path_with_glob_characters_reads_only_itself(tmp_path: Path) -> None:
    """OUT `out[1]` beside `out1`: `[1]` is a glob's class; retention must read OUT literally."""
    old = DAY - dt.timedelta(days=40)
    sample = _photos(tmp_path / "data", old)
    _published(tmp_path / "out1", old, "a", _ago(31))
    mine = sample.config(tmp_path / "out[1]", retention_days=30)
    (tmp_path / "out[1]").mkdir()
    assert due_days(mine, DAY, NOW) == []
    assert due_days(sample.config(tmp_path / "out1", retention_days=30), DAY, NOW) == [old]
