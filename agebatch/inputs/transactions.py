"""A day's till transactions (one row per line item) and the product catalog, typed and checked."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from agebatch.duck import connect, sql
from agebatch.errors import InputError
from agebatch.inputs.tables import SOURCE_ROW, load_table, read_table, where

# Column -> DuckDB type of each input table; every column is required, none may be null.
TRANSACTION_COLUMNS = {
    "receipt_id": "varchar",
    "store_id": "varchar",
    "register_id": "varchar",
    "cashier_id": "varchar",
    "paid_at": "timestamp",
    "sku": "varchar",
    "quantity": "double",
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
    paid_at_utc where the file's time carried a UTC offset (see sql/lines.sql).

    Every line is checked (sql/line_faults.sql): a receipt on one store, register and cashier,
    paid on `day`; quantities finite, not 0, of the amount's sign. The first line that is not
    is one sentence naming it (InputError).
    """
    path = transactions_file(folder, day)
    with connect() as con:
        text = {**TRANSACTION_COLUMNS, "paid_at": "varchar"}  # parsed below, offsets kept
        load_table(con, "lines_raw", path, text, "transactions", nullable=("paid_at",), rows=True)
        found = con.execute(
            f"select count(*) over (), paid_at, {SOURCE_ROW} from lines_raw "
            f"where try_cast(paid_at as timestamptz) is null order by {SOURCE_ROW} limit 1"
        ).fetchall()
        if found:
            bad, example, row = found[0]
            raise InputError(
                f"Transactions file {path}: column paid_at has {bad} value(s) that are empty or "
                f"not of type timestamp (first: {example!r} on {where(path, row)})."
            )
        con.execute(f"create table lines as {sql('lines')}", {"timezone": timezone})
        fault = con.execute(sql("line_faults"), {"day": day})
        names = [column[0] for column in fault.description]
        first = fault.fetchone()
        if first is not None:
            raise InputError(_fault_sentence(path, day, dict(zip(names, first, strict=True))))
        return con.sql(f"select * exclude ({SOURCE_ROW}) from lines").to_arrow_table()


def _fault_sentence(path: Path, day: dt.date, line: dict[str, Any]) -> str:
    """The sentence that names a line of sql/line_faults.sql and says what is wrong with it."""
    receipt, fault = repr(line["receipt_id"]), line["fault"]
    said = f"Transactions file {path}, {where(path, line['source_row'])}: receipt {receipt}"
    if fault in ("store", "register", "cashier"):
        first = f"{where(path, line['first_row'])}"
        return (
            f"{said} is at {fault} {line[f'{fault}_id']!r} but at {fault} "
            f"{line[f'first_{fault}_id']!r} on {first}; a receipt is rung up at one store, "
            "register and cashier (receipt ids must be unique for the day)."
        )
    if fault == "receipt_day":
        return (
            f"{said} is paid at {line['receipt_paid_at']} (the store's wall clock), not on {day}; "
            "a day's file holds the receipts paid that day."
        )
    if fault == "line_day":
        return (
            f"{said} has a line paid at {line['paid_at']}, neither on {day} nor the day before "
            "(only a receipt rung up over midnight has lines of the day before)."
        )
    if fault == "quantity_not_finite":
        return f"{said} has quantity {line['quantity']}, not a finite number."
    if fault == "quantity_zero":
        return (
            f"{said} has quantity 0; a line sells (positive quantity) or takes back (negative) "
            "at least some units."
        )
    return (
        f"{said} has quantity {line['quantity']:g} with amount {line['amount']}: the signs "
        "disagree (a return has both negative; an amount of 0 goes with either)."
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
