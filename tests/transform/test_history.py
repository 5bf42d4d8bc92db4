"""The one reader of published history: windows, roots in order, older days' missing columns,
and OUT taken literally by every reader of published days (history, retention, catalog)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from agebatch.analytics_db import write_analytics_db
from agebatch.schema import schema
from agebatch.transform.coverage import coverage_history
from agebatch.transform.history import published_days, read_history

DAY = dt.date(2026, 11, 24)
COVERAGE = "store_coverage"


def _write(out: Path, table: str, day: dt.date, rows: list[dict[str, object]]) -> None:
    """One published day of a table as the readers find it: OUT/<table>/day=<day>/."""
    fields = [f for f in schema(table) if f.name != "day" and f.name in rows[0]]
    folder = out / table / f"day={day.isoformat()}"
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, pa.schema(fields)), folder / "part-0.parquet")


def _coverage(share: float) -> list[dict[str, object]]:
    return [{"store_id": "S01", "measure": "photos_unreadable", "share": share, "total": 40}]


def _published(out: Path, share: float, at: dt.datetime) -> None:
    """A day of store_coverage and its run record under out."""
    _write(out, COVERAGE, DAY, _coverage(share))
    _write(out, "runs", DAY, [{"run_id": "r1", "published_at": at}])


@pytest.mark.parametrize(
    ("name", "neighbour"),
    [("out[1]", "out1"), ("out*", "out-next"), ("out?", "outA"), ("o[u]t*?", "ou-x")],
)
def test_every_reader_takes_out_literally(tmp_path: Path, name: str, neighbour: str) -> None:
    out, other = tmp_path / name, tmp_path / neighbour
    _published(out, 0.25, dt.datetime(2026, 11, 25, 3, 0, tzinfo=dt.UTC))
    _published(other, 0.75, dt.datetime(2026, 11, 26, 3, 0, tzinfo=dt.UTC))

    history = read_history([out], COVERAGE, None, None, ["share"])
    assert history.to_pylist() == [{"day": DAY, "share": 0.25}]
    assert coverage_history(out, DAY + dt.timedelta(days=1), 28)["share"].to_pylist() == [0.25]
    # retention reads OUT's own version pointers, literally too: tests/test_retention.py
    db, views = write_analytics_db(out)
    assert views == [COVERAGE, "runs"]
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.sql(f"select share from {COVERAGE}").fetchall() == [(0.25,)]
        assert con.sql("select count(*) from runs").fetchone() == (1,)


def test_a_window_reads_its_days_only_in_day_order(tmp_path: Path) -> None:
    for back, share in [(3, 0.3), (1, 0.1), (2, 0.2), (0, 0.0)]:
        _write(tmp_path, COVERAGE, DAY - dt.timedelta(days=back), _coverage(share))
    first, last = DAY - dt.timedelta(days=2), DAY - dt.timedelta(days=1)
    got = read_history([tmp_path], COVERAGE, first, last, ["share", "total"])
    assert got.to_pylist() == [
        {"day": DAY - dt.timedelta(days=2), "share": 0.2, "total": 40},
        {"day": DAY - dt.timedelta(days=1), "share": 0.1, "total": 40},
    ]
    assert got.schema.field("total").type == schema(COVERAGE).field("total").type
    assert published_days(tmp_path, COVERAGE) == [DAY - dt.timedelta(days=b) for b in (3, 2, 1, 0)]


def test_a_day_comes_from_the_first_root_that_has_it(tmp_path: Path) -> None:
    first_root, second_root = tmp_path / "restricted", tmp_path / "out"
    _write(first_root, COVERAGE, DAY, _coverage(0.1))
    _write(second_root, COVERAGE, DAY, _coverage(0.9))
    _write(second_root, COVERAGE, DAY - dt.timedelta(days=1), _coverage(0.5))
    got = read_history([first_root, second_root], COVERAGE, None, None, ["share"])
    assert got.to_pylist() == [
        {"day": DAY - dt.timedelta(days=1), "share": 0.5},
        {"day": DAY, "share": 0.1},
    ]


def test_a_column_a_day_predates_reads_as_null(tmp_path: Path) -> None:
    _write(tmp_path, COVERAGE, DAY - dt.timedelta(days=1), [{"store_id": "S01", "total": 7}])
    _write(tmp_path, COVERAGE, DAY, _coverage(0.4))
    got = read_history([tmp_path], COVERAGE, None, None, ["total", "share"])
    assert got["share"].to_pylist() == [None, 0.4]
    assert got["total"].to_pylist() == [7, 40]


def test_nothing_published_is_an_empty_table_of_the_columns(tmp_path: Path) -> None:
    got = read_history([tmp_path / "none"], COVERAGE, None, DAY, ["share"])
    assert got.num_rows == 0 and got.column_names == ["day", "share"]
