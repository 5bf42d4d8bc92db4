"""The join stage in DuckDB: load the day's transactions and catalog, match receipts to ages."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from agebatch.errors import InputError
from agebatch.settings import age_group_labels
from agebatch.sqlfiles import sql

log = logging.getLogger(__name__)

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
# The tables the join builds, in order. The internal ones only feed those after them:
# register_clocks, receipt_times and capture_times put receipts and photos on one clock per
# register, receipt_captures pairs them (one photo, one shopper), restricted_sales feeds the
# compliance tables.
STATEMENTS = (
    "register_clocks",
    "receipt_times",
    "capture_times",
    "receipt_captures",
    "receipt_ages",
    "age_group_purchases",
    "age_group_shares",
    "restricted_sales",
    "alcohol_checks",
    "cashier_compliance",
    "till_clocks",
)
INTERNAL = (
    "register_clocks",
    "receipt_times",
    "capture_times",
    "receipt_captures",
    "restricted_sales",
)
# Returned only on request (join_day's with_till_clocks) until the pipeline publishes it.
OPT_IN = ("till_clocks",)
PUBLISHED = tuple(name for name in STATEMENTS if name not in INTERNAL + OPT_IN)
# till_clocks: shots are set against receipts within this many seconds, in bins this wide.
CLOCK_SEARCH_S = 300.0
CLOCK_BIN_S = 10.0


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


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that never reaches the network (no extension auto-install)."""
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    con.execute("set threads to 2")
    return con


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


def read_table(path: Path, columns: dict[str, str], what: str) -> pa.Table:
    """Read a Parquet or CSV file with typed columns, or say in one sentence what is wrong."""
    with connect() as con:
        load_table(con, "loaded", path, columns, what)
        return con.table("loaded").fetch_arrow_table()


def load_table(
    con: duckdb.DuckDBPyConnection, name: str, path: Path, columns: dict[str, str], what: str
) -> None:
    """Load a Parquet or CSV file as table `name` with typed columns, or say what is wrong."""
    if not path.is_file():
        raise InputError(f"{what.capitalize()} file {path} does not exist.")
    try:
        if path.suffix.lower() == ".parquet":
            rel = con.read_parquet(str(path))
        elif path.suffix.lower() == ".csv":
            rel = con.read_csv(str(path), all_varchar=True, header=True)
        else:
            raise InputError(f"{what.capitalize()} file {path} must be .parquet or .csv.")
        found = set(rel.columns)
    except duckdb.Error as error:
        first = str(error).splitlines()[0]
        raise InputError(f"{what.capitalize()} file {path} cannot be read: {first}") from None
    missing = [c for c in columns if c not in found]
    if missing:
        raise InputError(
            f"{what.capitalize()} file {path} lacks the column(s) {', '.join(missing)} "
            f"(expected {', '.join(columns)})."
        )
    con.register(f"{name}_raw", rel)
    for column, type_ in columns.items():
        bad, example = con.execute(
            f'select count(*), any_value("{column}"::varchar) from {name}_raw '
            f'where "{column}" is null or try_cast("{column}" as {type_}) is null'
        ).fetchall()[0]
        if bad:
            shown = "empty" if example is None else repr(example)
            raise InputError(
                f"{what.capitalize()} file {path}: column {column} has {bad} value(s) that are "
                f"empty or not of type {type_} (e.g. {shown})."
            )
    casts = ", ".join(f'cast("{c}" as {t}) as "{c}"' for c, t in columns.items())
    con.execute(f"create or replace table {name} as select {casts} from {name}_raw")
    con.unregister(f"{name}_raw")


@dataclass(frozen=True)
class ComplianceInputs:
    """The ID policy and context the compliance report needs (defaults: no per-store policy,
    no margin, no earlier days)."""

    legal_age: float = 18.0
    challenge_age: float = 25.0
    margin: float = 0.0
    store_policies: pa.Table | None = None  # store_id, legal_age, challenge_age
    error_margins: pa.Table | None = None  # low, high, mae
    history: pa.Table | None = None  # earlier days of cashier_compliance
    days_7d: int = 1
    days_28d: int = 1


def join_day(
    con: duckdb.DuckDBPyConnection,
    *,
    day: dt.date,
    lines: pa.Table,
    catalog: pa.Table,
    captures: pd.DataFrame | pa.Table,
    model_version: str,
    age_bounds: Sequence[int],
    window_before_s: float,
    window_after_s: float,
    compliance: ComplianceInputs | None = None,
    clock_offsets: pa.Table | None = None,
    clock_search_s: float = CLOCK_SEARCH_S,
    with_till_clocks: bool = False,
) -> dict[str, pa.Table]:
    """Match each receipt to its shopper's age, sum purchases per age group and list the
    restricted sales to review, in DuckDB; returns the tables to publish.

    lines may carry paid_at_utc and captures captured_at_utc (naive UTC, null where the
    input had no UTC offset); clock_offsets (store_id, register_id, offset_s) says how many
    seconds a camera's clock runs ahead of its till's. till_clocks is always built and its
    suspected drifts logged; it is returned only with with_till_clocks.
    """
    compliance = compliance or ComplianceInputs()
    groups = pd.DataFrame(age_group_labels(tuple(age_bounds)), columns=["label", "low", "high"])
    inputs = {
        "lines": _with_nulls(lines, "paid_at_utc"),
        "catalog": catalog,
        "captures": _with_nulls(captures, "captured_at_utc"),
        "clock_offsets": _or_empty(clock_offsets, _OFFSET_SCHEMA),
        "age_groups": groups,
        "policy": _or_empty(compliance.store_policies, _POLICY_SCHEMA),
        "margins": _or_empty(compliance.error_margins, _MARGIN_SCHEMA),
        "history": _or_empty(compliance.history, _HISTORY_SCHEMA),
    }
    for name, table in inputs.items():
        con.register(name, table)
    params = {
        "day": day,
        "before_s": float(window_before_s),
        "after_s": float(window_after_s),
        "model_version": model_version,
        "legal_age": compliance.legal_age,
        "challenge_age": compliance.challenge_age,
        "margin": compliance.margin,
        "days_7d": compliance.days_7d,
        "days_28d": compliance.days_28d,
        "search_s": float(clock_search_s),
        "bin_s": CLOCK_BIN_S,
    }
    for name in STATEMENTS:
        statement = sql(name)
        used = {k: v for k, v in params.items() if re.search(rf"\${k}\b", statement)}
        con.execute(f"create or replace table {name} as {statement}", used)
    published = PUBLISHED + OPT_IN if with_till_clocks else PUBLISHED
    tables = {name: con.table(name).fetch_arrow_table() for name in published}
    for store_id, register_id, lag_s in con.execute(
        "select store_id, register_id, median_lag_s from till_clocks where drift_suspected"
    ).fetchall():
        log.warning(
            "Camera clock at store %s, register %s looks off: photos are taken %.0f s %s "
            "payment (median); set its offset in the clock offsets file",
            store_id,
            register_id,
            abs(lag_s),
            "before" if lag_s > 0 else "after",
        )
    log.info(
        "Joined %d receipts (%d with an age); %d restricted sales to review",
        tables["receipt_ages"].num_rows,
        pc.sum(pc.equal(tables["receipt_ages"]["status"], "matched")).as_py() or 0,
        tables["alcohol_checks"].num_rows,
    )
    return tables


_POLICY_SCHEMA = pa.schema(
    [("store_id", pa.string()), ("legal_age", pa.float64()), ("challenge_age", pa.float64())]
)
_MARGIN_SCHEMA = pa.schema([("low", pa.float64()), ("high", pa.float64()), ("mae", pa.float64())])
_HISTORY_SCHEMA = pa.schema(
    [("store_id", pa.string()), ("cashier_id", pa.string())]
    + [(c, pa.int64()) for c in ("restricted_receipts", "flagged_receipts", "unchecked_receipts")]
    + [("day", pa.date32())]
)
_OFFSET_SCHEMA = pa.schema(
    [("store_id", pa.string()), ("register_id", pa.string()), ("offset_s", pa.float64())]
)


def _or_empty(table: pa.Table | None, schema: pa.Schema) -> pa.Table:
    return schema.empty_table() if table is None else table


def _with_nulls(table: pa.Table | pd.DataFrame, column: str) -> pa.Table | pd.DataFrame:
    """The table with an optional timestamp column added as all nulls when it lacks it."""
    if isinstance(table, pa.Table):
        if column in table.column_names:
            return table
        return table.append_column(column, pa.nulls(table.num_rows, pa.timestamp("us")))
    if column in table.columns:
        return table
    return table.assign(**{column: pd.Series(pd.NaT, index=table.index, dtype="datetime64[us]")})
