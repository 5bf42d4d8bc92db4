"""The analytics database: a DuckDB file with one view per published dataset over OUT.

The DuckDB CLI, DBeaver, Metabase or Superset open this one file instead of writing Parquet
paths. Each view reads its dataset's day folders (hive partitioning, union by name, so days
published by older versions stay readable), gives every column its exact published type and
carries the data dictionary's descriptions as comments. The file is copied beside its final
place and renamed over it, so a tool that has the old file open keeps a consistent one.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import duckdb

from agebatch.duck import connect, files_under, literal
from agebatch.errors import InputError
from agebatch.schema import ABOUT, TABLES, schema

log = logging.getLogger(__name__)

FILE_NAME = "analytics.duckdb"


def default_path(out: Path) -> Path:
    """Where the analytics database goes when no path is given: OUT/analytics.duckdb."""
    return out / FILE_NAME


def dataset_glob(out: Path, table: str) -> str:
    """The files of one dataset, every day: OUT/<table>/*/*.parquet (as the docs read them),
    OUT and the table taken literally (never a neighbouring folder that a '[' would match)."""
    return files_under(out / table, "*/*.parquet")


def source(out: Path, table: str, *, row_order: bool = False) -> str:
    """The read_parquet call over one dataset's days, as the docs write it for analysts; with
    row_order, each row's filename and file_row_number too (to keep the published order)."""
    order = ", filename = true, file_row_number = true" if row_order else ""
    return (
        f"read_parquet({literal(dataset_glob(out, table))}, hive_partitioning = true, "
        f"union_by_name = true, hive_types = {{'day': date}}{order})"
    )


def view_sql(con: duckdb.DuckDBPyConnection, out: Path, table: str) -> str:
    """`create view <table>` over the dataset's files (see dataset_select)."""
    return f"create view {table} as\n{dataset_select(con, out, table)}"


def dataset_select(
    con: duckdb.DuckDBPyConnection, out: Path, table: str, *, row_order: bool = False
) -> str:
    """The one read of a dataset's published days: the published columns in schema order,
    each cast to its published type (older days may hold doubles or lack a column: null),
    then any column only older days have (with row_order: filename, file_row_number)."""
    found = dict(
        zip(
            *_describe(con, f"select * from {source(out, table, row_order=row_order)}"), strict=True
        )
    )
    con.register("published_schema", schema(table).empty_table())
    wanted = dict(zip(*_describe(con, "select * from published_schema"), strict=True))
    con.unregister("published_schema")
    columns = []
    for name, type_ in wanted.items():
        if name not in found:
            columns.append(f'null::{type_} as "{name}"')
        elif found[name] == type_:
            columns.append(f'"{name}"')
        else:
            columns.append(f'cast("{name}" as {type_}) as "{name}"')
    columns += [f'"{name}"' for name in found if name not in wanted]
    select = ",\n    ".join(columns)
    return f"select\n    {select}\nfrom {source(out, table, row_order=row_order)}"


def _describe(con: duckdb.DuckDBPyConnection, query: str) -> tuple[list[str], list[str]]:
    """Column names and DuckDB type names of a query's result."""
    relation = con.sql(query)
    return relation.columns, [str(type_) for type_ in relation.types]


def is_published(con: duckdb.DuckDBPyConnection, out: Path, table: str) -> bool:
    """Whether the dataset has at least one published day under out."""
    query = "select count(*) from glob($glob)"
    return con.execute(query, {"glob": dataset_glob(out, table)}).fetchone()[0] > 0


def published_tables(out: Path) -> list[str]:
    """The datasets that have at least one published day under out, in schema order."""
    with connect() as con:
        return [table for table in TABLES if is_published(con, out, table)]


def write_analytics_db(out: Path, db: Path | None = None) -> tuple[Path, list[str]]:
    """Write the analytics database for out (default OUT/analytics.duckdb); returns its path
    and the views it holds. Datasets with no published day yet get no view."""
    out = out.resolve()
    db = (db or default_path(out)).resolve()
    tables = published_tables(out)
    if not tables:
        raise InputError(f"Nothing is published under {out} yet: run a day first.")
    db.parent.mkdir(parents=True, exist_ok=True)
    # Built in a folder of its own (DuckDB reads a '?' in a database's path as the start of
    # options, and OUT may hold one), then copied beside its final place and renamed over it.
    with tempfile.TemporaryDirectory(prefix="agebatch-db-") as folder:
        built = Path(folder) / FILE_NAME
        con = duckdb.connect(str(built), config={"autoinstall_known_extensions": False})
        try:
            for table in tables:
                con.execute(view_sql(con, out, table))
                _comment(con, table)
            con.execute("checkpoint")
        finally:
            con.close()
        scratch = db.with_name(f".{db.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            shutil.copyfile(built, scratch)
            os.replace(scratch, db)
        finally:
            scratch.unlink(missing_ok=True)
    log.info("Wrote %s: views %s over %s", db, ", ".join(tables), out)
    return db, tables


def _comment(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """The dataset's grain and key on the view, each column's description on the column."""
    about = ABOUT[table]
    con.execute(
        f"comment on view {table} is "
        + literal(f"One row per {about.grain}; key: {', '.join(about.key)}. See docs/datasets.md.")
    )
    for column in TABLES[table]:
        con.execute(f'comment on column {table}."{column.name}" is {literal(column.description)}')
