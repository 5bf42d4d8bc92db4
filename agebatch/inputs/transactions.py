"""A day's till transactions (one row per line item) and the product catalog, typed and checked."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from agebatch.duck import connect, sql
from agebatch.errors import InputError
from agebatch.inputs.tables import load_table, read_table

# Column -> DuckDB type of each input table; every column is required, none may be null.
TRANSACTION_COLUMNS = {
    "receipt_id": "varchar",
    "store_id": "varchar",
    "register_id": "varchar",
    "cashier_id": "varchar",
    "paid_at": "timestamp",
    "sku": "varchar",
    "quantity": "decimal(12, 3)",
    "amount": "decimal(18, 2)",
}
CATALOG_COLUMNS = {"sku": "varchar", "category": "varchar", "age_restricted": "boolean"}


def transactions_file(folder: Path, day: dt.date) -> Path:
    """The day's transactions file: <folder>/<day>.parquet, else <folder>/<day>.csv."""
    if folder.is_file():
        return folder
    for suffix in (".parquet", ".csv"):
        path = folder / f"{day.isoformat()}{suffix}"
        if path.is_file():
            return path
    raise InputError(
        f"No transactions for {day}: expected {folder / day.isoformat()}.parquet or .csv."
    )


def read_transactions(folder: Path, day: dt.date, timezone: str) -> pa.Table:
    """The day's line items, typed and checked; paid_at on the wall clock of `timezone`, and
    paid_at_utc where the file's time carried a UTC offset (see sql/lines.sql)."""
    path = transactions_file(folder, day)
    with connect() as con:
        text = {**TRANSACTION_COLUMNS, "paid_at": "varchar"}  # parsed below, offsets kept
        load_table(con, "lines_raw", path, text, "transactions", nullable=("paid_at",))
        bad, example = con.execute(
            "select count(*), any_value(paid_at) from lines_raw "
            "where try_cast(paid_at as timestamptz) is null"
        ).fetchall()[0]
        if bad:
            raise InputError(
                f"Transactions file {path}: column paid_at has {bad} value(s) that are empty or "
                f"not of type timestamp (e.g. {example!r})."
            )
        return con.sql(sql("lines"), params={"timezone": timezone}).to_arrow_table()


def read_catalog(path: Path) -> pa.Table:
    """The product catalog (sku, category, age_restricted), typed and checked."""
    table = read_table(path, CATALOG_COLUMNS, "catalog")
    counts = table.group_by("sku").aggregate([("sku", "count")])
    repeated = counts.filter(pc.field("sku_count") > 1)
    if repeated.num_rows:
        first = repeated.column("sku")[0].as_py()
        raise InputError(f"Catalog file {path} lists the sku {first!r} more than once.")
    return table
