"""A day's till transactions (one row per line item) and the product catalog, typed and checked."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

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
    return read_table(transactions_file(folder, day), TRANSACTION_COLUMNS, "transactions")


def read_catalog(path: Path) -> pa.Table:
    """The product catalog (sku, category, age_restricted), typed and checked."""
    table = read_table(path, CATALOG_COLUMNS, "catalog")
    counts = table.group_by("sku").aggregate([("sku", "count")])
    repeated = counts.filter(pc.field("sku_count") > 1)
    if repeated.num_rows:
        first = repeated.column("sku")[0].as_py()
        raise InputError(f"Catalog file {path} lists the sku {first!r} more than once.")
    return table
