"""The one reader of published history: the windows over earlier days (cashier_compliance's 7
and 28 days, the coverage gate's trailing days, age_group_affinity's window, the report's
trend) all read a table's published days through the analytics database's hive read
(agebatch.analytics_db.dataset_select), OUT taken literally."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from agebatch.analytics_db import dataset_select, is_published
from agebatch.duck import connect
from agebatch.publish import partition
from agebatch.schema import schema


def published_days(root: Path, table: str) -> list[dt.date]:
    """The days of a table published under root, in order (the day=YYYY-MM-DD folders that
    are there; a link to a day no longer there is not)."""
    days = []
    for folder in (root / table).glob("day=*"):  # root taken literally: only the pattern globs
        try:
            day = dt.date.fromisoformat(folder.name.removeprefix("day="))
        except ValueError:
            continue
        if partition(root, table, day).is_dir():
            days.append(day)
    return sorted(days)


def read_history(
    roots: Sequence[Path],
    table: str,
    first: dt.date | None,
    last: dt.date | None,
    columns: Sequence[str],
) -> pa.Table:
    """`day` and `columns` of a table's days first..last (None: no bound) as published, in day
    order and each day's published row order; a day comes from the first of roots that has
    it, and a column that day predates reads as null."""
    wanted = pa.schema([schema(table).field("day"), *(schema(table).field(c) for c in columns)])
    taken: dict[Path, list[dt.date]] = {}
    seen: set[dt.date] = set()
    for root in roots:
        for day in published_days(root, table):
            if (
                day not in seen
                and (first is None or day >= first)
                and (last is None or day <= last)
            ):
                taken.setdefault(root, []).append(day)
                seen.add(day)
    if not taken:
        return wanted.empty_table()
    names = ", ".join(f'"{name}"' for name in wanted.names)
    with connect() as con:
        reads = [(root, dates) for root, dates in taken.items() if is_published(con, root, table)]
        if not reads:
            return wanted.empty_table()
        parts = [
            f"select {names}, filename, file_row_number "
            f"from ({dataset_select(con, root, table, row_order=True)}) "
            f"where day in (select unnest($days_{rank}::date[]))"
            for rank, (root, _) in enumerate(reads)
        ]
        query = (
            f"select {names} from ({' union all '.join(parts)}) "
            "order by day, filename, file_row_number"
        )
        params = {f"days_{rank}": dates for rank, (_, dates) in enumerate(reads)}
        return con.execute(query, params).fetch_arrow_table().cast(wanted)
