"""Read a CSV or Parquet input with typed columns, or say in one sentence what is wrong."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import duckdb
import pyarrow as pa

from agebatch.duck import connect
from agebatch.errors import InputError


def read_table(
    path: Path,
    columns: dict[str, str],
    what: str,
    nullable: Iterable[str] = (),
    optional: dict[str, str] | None = None,
) -> pa.Table:
    """Read a Parquet or CSV file with typed columns (column -> DuckDB type); every column must
    be there, and only those in `nullable` may have empty values; `optional` columns are kept
    when the file has them, empty values as null."""
    with connect() as con:
        load_table(con, "loaded", path, columns, what, nullable, optional)
        return con.table("loaded").fetch_arrow_table()


def load_table(
    con: duckdb.DuckDBPyConnection,
    name: str,
    path: Path,
    columns: dict[str, str],
    what: str,
    nullable: Iterable[str] = (),
    optional: dict[str, str] | None = None,
) -> None:
    """Load a Parquet or CSV file as table `name` with typed columns, or say what is wrong;
    optional columns (may be absent, may be empty) follow the required ones when present."""
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
        empty = "false" if column in nullable else f'"{column}" is null'
        bad, example = con.execute(
            f'select count(*), any_value("{column}"::varchar) from {name}_raw '
            f'where {empty} or (try_cast("{column}" as {type_}) is null and "{column}" is not null)'
        ).fetchall()[0]
        if bad:
            shown = "empty" if example is None else repr(example)
            raise InputError(
                f"{what.capitalize()} file {path}: column {column} has {bad} value(s) that are "
                f"empty or not of type {type_} (e.g. {shown})."
            )
    present = {c: t for c, t in (optional or {}).items() if c in found}
    for column, type_ in present.items():
        value = f"nullif(trim(\"{column}\"::varchar), '')"
        bad, example = con.execute(
            f"select count(*), any_value({value}) from {name}_raw "
            f"where {value} is not null and try_cast({value} as {type_}) is null"
        ).fetchall()[0]
        if bad:
            raise InputError(
                f"{what.capitalize()} file {path}: column {column} has {bad} value(s) that are "
                f"not of type {type_} (e.g. {example!r})."
            )
    casts = [f'cast("{c}" as {t}) as "{c}"' for c, t in columns.items()]
    casts += [
        f'cast(nullif(trim("{c}"::varchar), \'\') as {t}) as "{c}"' for c, t in present.items()
    ]
    con.execute(f"create or replace table {name} as select {', '.join(casts)} from {name}_raw")
    con.unregister(f"{name}_raw")
