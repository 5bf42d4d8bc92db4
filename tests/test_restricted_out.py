"""With --restricted-out the analysts' folder holds aggregates only (issue #12).

The finding: 34 of 155 age_group_purchases cells of the demo day held exactly one receipt, and
with receipt_ages that one shopper's whole basket and age were recovered. Now the tables that
name a receipt or a cashier go to the restricted root, and no aggregate cell under OUT covers
fewer than k receipts.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from agebatch.pipeline import run_day
from agebatch.sample import make_sample_day
from agebatch.schema import RESTRICTED, TABLES
from tests.conftest import DAY
from tests.pictures import SolidFaces

IDS = {"receipt_id", "cashier_id", "photo"}


def test_only_restricted_tables_name_receipts_cashiers_or_photos() -> None:
    for table, columns in TABLES.items():
        named = IDS & {column.name for column in columns}
        assert bool(named) == (table in RESTRICTED), (table, named)


def _columns(root: Path) -> dict[str, set[str]]:
    """Every table published under a root and its columns, read from the Parquet files."""
    found: dict[str, set[str]] = {}
    for part in root.glob("*/day=*/*.parquet"):
        found.setdefault(part.parent.parent.name, set()).update(pq.read_schema(part).names)
    return found


def test_a_run_with_a_restricted_root_leaves_aggregates_only_under_out(
    tmp_path: Path, brightness_model
) -> None:
    out, private = tmp_path / "out", tmp_path / "private"
    for day in (DAY - dt.timedelta(days=1), DAY):
        sample = make_sample_day(tmp_path / "data", day, receipts=120, writer=SolidFaces(), seed=3)
        run_day(sample.config(out, restricted_out=private), day, model=brightness_model)
    analysts, confined = _columns(out), _columns(private)
    assert set(confined) == {*RESTRICTED, "runs"}
    assert set(analysts) == {*TABLES} - set(RESTRICTED)
    assert all(not (IDS & columns) for columns in analysts.values())
    assert private.stat().st_mode & 0o777 == 0o700

    glob = str(out / "age_group_purchases" / "*" / "*.parquet")
    small = duckdb.sql(
        "select count(*) from read_parquet($g, hive_partitioning = true) "
        "where category_receipts < 5 and age_group != 'unknown'",
        params={"g": glob},
    ).fetchall()[0][0]
    assert small == 0
    margins = str(out / "store_sales" / "*" / "*.parquet")
    revenue = duckdb.sql(
        "select sum(revenue), count(*) from read_parquet($g, hive_partitioning = true) "
        "where day = $day and level = 'store' and category = 'all'",
        params={"g": margins, "day": DAY},
    ).fetchall()[0]
    sales = pq.read_table(sample.transactions / f"{DAY}.parquet").column("amount").to_pylist()
    # every store's day exact in store_sales (revenue is DECIMAL(18, 2))
    assert (float(revenue[0]), revenue[1]) == (round(sum(sales), 2), 3)

    # The compliance report's history is read from the restricted root.
    (yesterday, today) = [
        pq.read_table(private / "cashier_compliance" / f"day={d}").to_pandas()
        for d in (DAY - dt.timedelta(days=1), DAY)
    ]
    assert set(today["days_7d"]) == {2}
    both = today.merge(yesterday, on=["store_id", "cashier_id"], suffixes=("", "_y"))
    assert len(both) > 0
    assert (
        both["restricted_receipts_7d"]
        == both["restricted_receipts"] + both["restricted_receipts_y"]
    ).all()


def test_a_switch_to_a_restricted_root_leaves_no_per_receipt_files_under_out(
    tmp_path: Path, brightness_model
) -> None:
    # Found by attack: report pages of an earlier run (cashier ids) and the ages staged by a
    # killed Dask run stayed under OUT after the day was published with --restricted-out.
    out, private = tmp_path / "out", tmp_path / "private"
    sample = make_sample_day(tmp_path / "data", DAY, receipts=60, writer=SolidFaces(), seed=5)
    run_day(sample.config(out), DAY, model=brightness_model)
    assert (out / "reports" / DAY.isoformat() / "index.html").is_file()
    staged = out / ".shards" / DAY.isoformat() / "m" / "k.parquet"
    staged.parent.mkdir(parents=True)
    staged.write_bytes(b"ages of a killed sharded run")

    run_day(sample.config(out, restricted_out=private), DAY, model=brightness_model)
    assert not (out / "reports" / DAY.isoformat()).exists()
    assert not (out / ".shards" / DAY.isoformat()).exists()
    assert (private / "reports" / DAY.isoformat() / "index.html").is_file()
