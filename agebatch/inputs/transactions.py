"""A day's till transactions (one row per line item) and the product catalog, typed and checked."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from agebatch.duck import connect
from agebatch.errors import InputError
from agebatch.inputs.tables import read_table

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


def read_transactions(folder: Path, day: dt.date) -> pa.Table:
    """The day's line items, typed and checked."""
    path = transactions_file(folder, day)
    lines = read_table(path, TRANSACTION_COLUMNS, "transactions")
    _refuse_time_zones(path)
    return lines


# An offset or zone after the time: 10:15:00+01:00, 10:15:00Z, 10:15:00 UTC.
ZONED = r"(\d:\d\d(\.\d+)?\s*([+-]\d\d(:?\d\d)?|Z|[A-Za-z]{2,}[A-Za-z/_]*))$"


def _refuse_time_zones(path: Path) -> None:
    """paid_at must be the store's local wall clock, as the cameras' times are: a time with an
    offset or zone would be matched (and published) on another clock, so it is refused."""
    with connect() as con:
        if path.suffix.lower() == ".parquet":
            kind = str(con.read_parquet(str(path)).select("paid_at").types[0])
            example = "a TIMESTAMP WITH TIME ZONE column" if "TIME ZONE" in kind else None
        else:
            example = con.execute(
                "select any_value(paid_at) from read_csv($path, all_varchar = true, header = true)"
                " where regexp_matches(trim(paid_at), $zoned)",
                {"path": str(path), "zoned": ZONED},
            ).fetchone()[0]
    if example:
        raise InputError(
            f"Transactions file {path}: paid_at carries a time zone ({example!s}); give the "
            "store's local wall-clock time without one, as the cameras' capture times are."
        )


def read_catalog(path: Path) -> pa.Table:
    """The product catalog (sku, category, age_restricted), typed and checked."""
    table = read_table(path, CATALOG_COLUMNS, "catalog")
    counts = table.group_by("sku").aggregate([("sku", "count")])
    repeated = counts.filter(pc.field("sku_count") > 1)
    if repeated.num_rows:
        first = repeated.column("sku")[0].as_py()
        raise InputError(f"Catalog file {path} lists the sku {first!r} more than once.")
    return table
