"""Tables whose rows name their run, readers that check a day is whole, and a publishing process.

`python -m tests.publishing OUT DAY RUN_ID` publishes one run's tables of the day; it prints
"publishing" just before calling publish_day, so a kill test can time a kill from there.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import duckdb
import pyarrow as pa

from agebatch.publish import RUNS, _Steps, publish_day

# Table name → rows, like the pipeline's tables (their sizes differ so a mix-up would show).
TABLES = {
    "receipt_ages": 5,
    "age_group_purchases": 4,
    "age_group_shares": 3,
    "alcohol_checks": 2,
    "cashier_compliance": 1,
}


def day_tables(run_id: str, names: list[str] | None = None) -> dict[str, pa.Table]:
    """The tables one run publishes: each row names the run."""
    return {
        name: pa.table({"row": list(range(rows)), "run_id": [run_id] * rows})
        for name, rows in TABLES.items()
        if names is None or name in names
    }


def run_record(run_id: str) -> pa.Table:
    """The run's row in `runs`."""
    return pa.table({"run_id": [run_id], "receipts": [TABLES["receipt_ages"]]})


def publish(out: Path, day: dt.date, run_id: str, names: list[str] | None = None) -> None:
    """Publish one run's tables of the day."""
    publish_day(out, day, day_tables(run_id, names), lambda: run_record(run_id), run_id)


def read_day(out: Path, day: dt.date, table: str) -> list[str]:
    """The run id of every row of a table's day, read with DuckDB as the README says."""
    glob = str(out / table / "*" / "*.parquet")
    try:
        rows = duckdb.sql(
            "select run_id from read_parquet($glob, hive_partitioning = true) where day = $day",
            params={"glob": glob, "day": day},
        ).fetchall()
    except duckdb.IOException as error:
        if "No files found" not in str(error):
            raise
        return []  # no readable day of the table at all
    return sorted(run_id for (run_id,) in rows)


def day_view(out: Path, day: dt.date) -> dict[str, str | None]:
    """Which run each table's day comes from (None: the table has no such day).

    Fails if a table's day is partly written or mixes runs.
    """
    view = {}
    for name, count in TABLES.items():
        rows = read_day(out, day, name)
        assert not rows or rows == [rows[0]] * count, f"{name} of {day} is not one run's: {rows}"
        view[name] = rows[0] if rows else None
    return view


def whole_day(out: Path, day: dt.date) -> str | None:
    """The one run every table of the day comes from, None if no table has the day."""
    view = day_view(out, day)
    assert len(set(view.values())) == 1, f"{day} mixes runs: {view}"
    return view["receipt_ages"]


def day_runs(out: Path, day: dt.date) -> list[str]:
    """The run ids in the day's `runs`, sorted, duplicates kept."""
    return read_day(out, day, RUNS)


class Killed(BaseException):
    """A kill, simulated in-process: no `except Exception` of publish_day sees it."""


@contextmanager
def killed_at(step: int) -> Iterator[list[str]]:
    """Stop publish_day as a kill would at its step number `step`; yields the steps passed."""
    passed: list[str] = []
    real = _Steps.__call__

    def stop(self: _Steps, name: str) -> None:
        real(self, name)
        passed.append(name)
        if self.count == step:
            raise Killed(name)

    with mock.patch.object(_Steps, "__call__", stop):
        yield passed


if __name__ == "__main__":
    out, day, run_id = Path(sys.argv[1]), dt.date.fromisoformat(sys.argv[2]), sys.argv[3]
    print("publishing", flush=True)
    publish(out, day, run_id)
