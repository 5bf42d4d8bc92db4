"""DuckDB for the job: connections that never reach the network, and the statements in sql/."""

from __future__ import annotations

from functools import cache
from importlib import resources

import duckdb

THREADS = 2


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that never reaches the network (no extension auto-install)."""
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    con.execute(f"set threads to {THREADS}")
    # Times with a UTC offset are converted explicitly; the session zone must not leak in.
    con.execute("set TimeZone = 'UTC'")
    return con


@cache
def sql(name: str) -> str:
    """The text of sql/<name>.sql (one statement, ending in `select * from final`), shipped as
    package data agebatch.sql."""
    return resources.files("agebatch.sql").joinpath(f"{name}.sql").read_text()


def literal(text: str) -> str:
    """A SQL string literal, for the places DuckDB cannot bind a parameter (a view's body)."""
    return "'" + text.replace("'", "''") + "'"
