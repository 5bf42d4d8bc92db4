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
from agebatch.schema import AgeCheck

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
# Optional: the till's age check on the receipt (id_seen, id_refused, not_asked; empty: not
# recorded). Without the column the day records no age checks at all.
AGE_CHECK = "age_check"
RECORDED_CHECKS = (AgeCheck.ID_SEEN, AgeCheck.ID_REFUSED, AgeCheck.NOT_ASKED)
CHECK_COLUMNS = {AGE_CHECK: "varchar"}
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
    paid_at_utc where the file's time carried a UTC offset (see sql/lines.sql); age_check when
    the file has it.

    Every line is checked (sql/line_faults.sql): a receipt on one store, register and cashier,
    paid on `day`; quantities finite, not 0, of the amount's sign. The first line that is not
    is one sentence naming it (InputError).
    """
    path = transactions_file(folder, day)
    with connect() as con:
        # paid_at parsed below (offsets kept); quantity checked as a number (finite, not 0, of
        # the amount's sign) before it becomes the published DECIMAL
        text = {**TRANSACTION_COLUMNS, "paid_at": "varchar", "quantity": "double"}
        load_table(
            con,
            "lines_raw",
            path,
            text,
            "transactions",
            nullable=("paid_at",),
            optional=CHECK_COLUMNS,
            rows=True,
        )
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
        quantity = f"quantity::{TRANSACTION_COLUMNS['quantity']} as quantity"
        lines = con.sql(
            f"select * exclude ({SOURCE_ROW}) replace ({quantity}) from lines"
        ).to_arrow_table()
    if AGE_CHECK in lines.column_names:
        _check_age_checks(lines, path)
    return lines


def receipt_checks(lines: pa.Table) -> pa.Table | None:
    """One recorded age check per receipt (receipt_id, age_check), receipts with none left out;
    None when the transactions have no age_check column (checks not recorded that day)."""
    if AGE_CHECK not in lines.column_names:
        return None
    recorded = lines.select(["receipt_id", AGE_CHECK]).filter(pc.is_valid(lines[AGE_CHECK]))
    checks = recorded.group_by("receipt_id").aggregate([(AGE_CHECK, "distinct")])
    return pa.table(
        {
            "receipt_id": checks["receipt_id"],
            AGE_CHECK: pc.list_element(checks[f"{AGE_CHECK}_distinct"], 0),
            "outcomes": pc.list_value_length(checks[f"{AGE_CHECK}_distinct"]),
        }
    )


def _check_age_checks(lines: pa.Table, path: Path) -> None:
    """Known outcomes only, and one outcome per receipt (other lines may leave it empty)."""
    found = set(pc.unique(lines[AGE_CHECK].drop_null()).to_pylist())
    unknown = sorted(found - set(RECORDED_CHECKS))
    if unknown:
        raise InputError(
            f"Transactions file {path}: column {AGE_CHECK} holds {unknown[0]!r}; allowed are "
            f"{', '.join(RECORDED_CHECKS)} or empty (not recorded)."
        )
    checks = receipt_checks(lines)
    torn = checks.filter(pc.greater(checks["outcomes"], 1))
    if torn.num_rows:
        receipt = torn["receipt_id"][0].as_py()
        values = sorted(
            lines.filter(pc.equal(lines["receipt_id"], receipt))[AGE_CHECK]
            .drop_null()
            .unique()
            .to_pylist()
        )
        raise InputError(
            f"Transactions file {path}: receipt {receipt} has the age checks "
            f"{' and '.join(values)} on its lines; a receipt records one outcome (other lines "
            "may leave it empty)."
        )


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
    if fault == "quantity_too_large":
        return f"{said} has quantity {line['quantity']:g}; a line holds under 1,000,000,000 units."
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
