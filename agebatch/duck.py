"""DuckDB for the job: connections that never reach the network, and the statements in sql/."""

from __future__ import annotations

import glob
from functools import cache
from importlib import resources
from pathlib import Path

import duckdb


def connect(threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that never reaches the network (no extension auto-install), with
    `threads` threads (None: DuckDB's own default, one per core)."""
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    if threads is not None:
        con.execute("set threads = $threads", {"threads": int(threads)})
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


def files_under(folder: Path, pattern: str) -> str:
    """A DuckDB glob for the files matching `pattern` under `folder`, the folder taken
    literally: its '[', '*' and '?' are escaped (DuckDB's glob reads '[*]' as '*')."""
    return f"{glob.escape(str(folder))}/{pattern}"
