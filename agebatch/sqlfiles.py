"""The SQL statements in sql/, shipped as package data and read by name."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def sql(name: str) -> str:
    """The text of sql/<name>.sql (one statement, ending in `select * from final`)."""
    return resources.files("agebatch.sql").joinpath(f"{name}.sql").read_text()
