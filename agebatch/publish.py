"""Publish a day's tables as hive-partitioned Parquet, swapped in whole or not at all."""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from agebatch.errors import InputError

log = logging.getLogger(__name__)

STAGING = ".staging"
RUNS = "runs"


def partition(out: Path, table: str, day: dt.date) -> Path:
    """Folder of one table's day: OUT/<table>/day=<YYYY-MM-DD>."""
    return out / table / f"day={day.isoformat()}"


def publish_day(
    out: Path,
    day: dt.date,
    tables: Mapping[str, pa.Table],
    run_record: Callable[[], pa.Table],
    run_id: str,
) -> dict[str, Path]:
    """Write every table of `day` to a staging folder, then swap each day folder in.

    Re-publishing a day replaces exactly that day; the `runs` table keeps the day's earlier
    runs and adds this one. If anything fails, the previous version of the day stays.
    """
    out.mkdir(parents=True, exist_ok=True)
    with _day_lock(out, day):
        staging = out / STAGING / f"{day.isoformat()}-{run_id}"
        try:
            for name, table in tables.items():
                _write(partition(staging, name, day), table)
            runs_dir = partition(staging, RUNS, day)
            old_runs = partition(out, RUNS, day)
            if old_runs.is_dir():
                shutil.copytree(old_runs, runs_dir)
            _write(runs_dir, run_record(), f"run-{run_id}.parquet")
            _swap(staging, out, day, [*tables, RUNS])
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    published = {name: partition(out, name, day) for name in [*tables, RUNS]}
    log.info("Published %s to %s", day, out)
    return published


def _write(folder: Path, table: pa.Table, file_name: str = "part-0.parquet") -> None:
    """Write one Parquet file; the day lives in the folder name, not in the file."""
    folder.mkdir(parents=True, exist_ok=True)
    if "day" in table.column_names:
        table = table.drop_columns(["day"])
    pq.write_table(table, folder / file_name, compression="zstd")


def _swap(staging: Path, out: Path, day: dt.date, names: list[str]) -> None:
    """Move each staged day folder into place, keeping the old ones until all have moved."""
    trash = staging / ".previous"
    moved: list[str] = []
    try:
        for name in names:
            target = partition(out, name, day)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                backup = partition(trash, name, day)
                backup.parent.mkdir(parents=True, exist_ok=True)
                os.replace(target, backup)
            moved.append(name)
            os.replace(partition(staging, name, day), target)
    except BaseException:
        log.error("Publishing %s failed; restoring the previous version of the day", day)
        for name in reversed(moved):
            target, backup = partition(out, name, day), partition(trash, name, day)
            if target.exists():  # only this run's version can be there now
                shutil.rmtree(target)
            if backup.exists():
                os.replace(backup, target)
        raise


@contextmanager
def _day_lock(out: Path, day: dt.date) -> Iterator[None]:
    """Let one run at a time publish a given day."""
    locks = out / STAGING / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{day.isoformat()}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"Another run is publishing {day} to {out} right now.") from None
        yield


def new_run_id() -> str:
    """A short unique id for one run."""
    return uuid.uuid4().hex[:12]
