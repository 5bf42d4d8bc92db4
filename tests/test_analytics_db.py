"""The analytics database: one DuckDB view per dataset over OUT, exact types across versions,
descriptions as comments, swapped in whole, and the `agebatch catalog` command."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from agebatch.analytics_db import write_analytics_db
from agebatch.cli import main
from agebatch.dictionary import duckdb_types
from agebatch.errors import InputError
from agebatch.schema import TABLES, conform, schema

OLD, NEW = dt.date(2026, 11, 23), dt.date(2026, 11, 24)


def _publish(out: Path, table: str, day: dt.date, data: pa.Table) -> None:
    folder = out / table / f"day={day}"
    folder.mkdir(parents=True)
    pq.write_table(data, folder / "part-0.parquet")


def _new_purchases(revenue: str) -> pa.Table:
    rows = {
        "day": [NEW],
        "store_id": ["S01"],
        "age_group": ["<18"],
        "age_group_low": [0],
        "age_group_high": [18],
        "category": ["beer"],
        "age_restricted": [True],
        "category_receipts": [2],
        "units": [Decimal("3")],
        "revenue": [Decimal(revenue)],
        "withheld": [False],
    }
    return conform("age_group_purchases", pa.table(rows)).drop_columns(["day"])


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """An output with a day of age_group_purchases as an older version wrote it (doubles, the
    old receipts column, no age_group_low/high or age_restricted) and a day as this one does."""
    out = tmp_path / "out"
    old = pa.table(
        {
            "store_id": ["S01"],
            "age_group": ["<18"],
            "category": ["beer"],
            "receipts": [3],
            "units": [2.0],
            "revenue": [117.30000000000001],
        }
    )
    _publish(out, "age_group_purchases", OLD, old)
    _publish(out, "age_group_purchases", NEW, _new_purchases("5.10"))
    return out


def test_views_have_todays_exact_types_over_older_days(out: Path, tmp_path: Path) -> None:
    db, views = write_analytics_db(out, tmp_path / "a.duckdb")
    assert views == ["age_group_purchases"]  # only datasets that have a published day
    con = duckdb.connect(str(db), read_only=True)
    view = con.sql("select * from age_group_purchases order by day")
    expected = duckdb_types("age_group_purchases")
    assert view.columns == [*expected, "receipts"]  # the old column kept, at the end
    assert [str(t) for t in view.types][: len(expected)] == list(expected.values())
    rows = view.fetchall()
    assert [r[view.columns.index("revenue")] for r in rows] == [Decimal("117.30"), Decimal("5.10")]
    assert [r[view.columns.index("receipts")] for r in rows] == [3, None]
    assert [r[view.columns.index("category_receipts")] for r in rows] == [None, 2]
    assert con.sql("select sum(revenue) from age_group_purchases").fetchone()[0] == Decimal(
        "122.40"
    )
    comments = dict(
        con.sql(
            "select column_name, comment from duckdb_columns() "
            "where table_name = 'age_group_purchases'"
        ).fetchall()
    )
    assert comments["revenue"] == "line totals, net of returns; null: withheld"
    assert "never sum it across categories" in comments["category_receipts"]
    assert (
        "key: day, store_id"
        in con.sql(
            "select comment from duckdb_views() where view_name = 'age_group_purchases'"
        ).fetchone()[0]
    )


def test_a_reader_keeps_its_file_while_the_database_is_rewritten(out: Path, tmp_path: Path) -> None:
    db = tmp_path / "a.duckdb"
    write_analytics_db(out, db)
    reader = duckdb.connect(str(db), read_only=True)
    total = "select sum(revenue) from age_group_purchases"
    assert reader.sql(total).fetchone()[0] == Decimal("122.40")
    _publish(out, "age_group_purchases", NEW + dt.timedelta(days=1), _new_purchases("1.00"))
    # A BI tool in another process holds the file open (DuckDB locks it): the new file is
    # written beside it and renamed over it, never written in place.
    hold = "import duckdb, sys, time; duckdb.connect(sys.argv[1], read_only=True); print('open')"
    tool = subprocess.Popen(
        [sys.executable, "-c", hold + "; sys.stdout.flush(); time.sleep(60)", str(db)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert tool.stdout.readline().strip() == "open"
        write_analytics_db(out, db)
    finally:
        tool.kill()
        tool.wait()
    assert reader.sql(total).fetchone()[0] == Decimal("123.40")  # views read today's files
    assert duckdb.connect(str(db), read_only=True).sql(total).fetchone()[0] == Decimal("123.40")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.duckdb", "out"]  # no scratch left


def test_every_dataset_gets_a_view_typed_as_the_dictionary(tmp_path: Path) -> None:
    out = tmp_path / "out"
    for table in TABLES:
        _publish(out, table, NEW, schema(table).empty_table().drop_columns(["day"]))
    db, views = write_analytics_db(out)
    assert db == (out / "analytics.duckdb").resolve() and views == list(TABLES)
    con = duckdb.connect(str(db), read_only=True)
    for table in TABLES:
        view = con.sql(f"select * from {table}")
        assert dict(zip(view.columns, map(str, view.types), strict=True)) == duckdb_types(table)


def test_nothing_published_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="Nothing is published under"):
        write_analytics_db(tmp_path)


def test_the_catalog_command_and_the_duckdb_cli(
    out: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    db = tmp_path / "views.duckdb"
    assert main(["catalog", "--out", str(out), "--db", str(db)]) == 0
    assert f"duckdb -readonly {db.resolve()}" in capsys.readouterr().out
    # The DuckDB CLI of the pinned release (duckdb-cli, a dev dependency) opens the file.
    cli = Path(sys.executable).with_name("duckdb")
    query = "select sum(revenue) as revenue, count(*) as days from age_group_purchases"
    done = subprocess.run(
        [str(cli), "-readonly", "-csv", str(db), "-c", query],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.splitlines() == ["revenue,days", "122.40,2"]
    version = subprocess.run([str(cli), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.split()[0] == f"v{duckdb.__version__}"
    assert main(["catalog", "--out", str(tmp_path / "empty"), "--db", str(db)]) == 2
