"""The join stage in DuckDB: load the day's transactions and catalog, match receipts to ages."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
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
# The tables the join produces, in the order they are built.
OUTPUT_TABLES = ("receipt_ages", "age_group_purchases")


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
        ).fetchone()
        if bad:
            shown = "empty" if example is None else repr(example)
            raise InputError(
                f"{what.capitalize()} file {path}: column {column} has {bad} value(s) that are "
                f"empty or not of type {type_} (e.g. {shown})."
            )
    casts = ", ".join(f'cast("{c}" as {t}) as "{c}"' for c, t in columns.items())
    con.execute(f"create or replace table {name} as select {casts} from {name}_raw")
    con.unregister(f"{name}_raw")


def join_day(
    con: duckdb.DuckDBPyConnection,
    *,
    day: dt.date,
    lines: pa.Table,
    catalog: pa.Table,
    captures: pd.DataFrame,
    model_version: str,
    age_bounds: Sequence[int],
    window_before_s: float,
    window_after_s: float,
) -> dict[str, pa.Table]:
    """Match each receipt to its shopper's age and sum purchases per age group, in DuckDB."""
    con.register("lines", lines)
    con.register("catalog", catalog)
    con.register("captures", captures)
    groups = pd.DataFrame(age_group_labels(tuple(age_bounds)), columns=["label", "low", "high"])
    con.register("age_groups", groups)
    params = {
        "day": day,
        "before_s": float(window_before_s),
        "after_s": float(window_after_s),
        "model_version": model_version,
    }
    tables: dict[str, pa.Table] = {}
    for name in OUTPUT_TABLES:
        statement = sql(name)
        used = {k: v for k, v in params.items() if f"${k}" in statement}
        con.execute(f"create or replace table {name} as {statement}", used)
        tables[name] = con.table(name).fetch_arrow_table()
    log.info(
        "Joined %d receipts (%d with an age)",
        tables["receipt_ages"].num_rows,
        con.execute("select count(*) from receipt_ages where status = 'matched'").fetchone()[0],
    )
    return tables
