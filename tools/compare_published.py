"""Compare every table published under two output roots, row for row (order aside).

    .venv/bin/python tools/compare_published.py BEFORE_OUT AFTER_OUT

Each table is read the one way the analytics database reads it (agebatch.analytics_db), every
day of both roots; the columns that differ between any two runs of the same days (a run's id,
its clock times and durations) are left out. Prints one line per table and exits 1 when any
table differs or is published under one root only. docs/development.md says how it checks
that a change leaves the published rows as they were.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agebatch.analytics_db import dataset_select, is_published
from agebatch.duck import connect
from agebatch.schema import TABLES

# The columns a re-run of the same days legitimately changes.
VARYING = {
    "runs": (
        "run_id",
        "started_at",
        "published_at",
        "find_s",
        "predict_s",
        "join_s",
        "publish_s",
        "photos_per_s",
    ),
}


def compare(before: Path, after: Path) -> dict[str, str]:
    """Per table published under either root: 'same (N rows)' or what differs."""
    verdicts = {}
    with connect() as con:
        for table in TABLES:
            published = [is_published(con, root, table) for root in (before, after)]
            if not any(published):
                continue
            if not all(published):
                verdicts[table] = f"published under {'after' if published[1] else 'before'} only"
                continue
            kept = [c.name for c in TABLES[table] if c.name not in VARYING.get(table, ())]
            names = ", ".join(f'"{name}"' for name in kept)
            reads = [
                f"select {names} from ({dataset_select(con, r, table)})" for r in (before, after)
            ]
            rows = [con.execute(f"select count(*) from ({read})").fetchone()[0] for read in reads]
            only = [
                con.execute(f"select count(*) from ({a} except all {b})").fetchone()[0]
                for a, b in (reads, reads[::-1])
            ]
            verdicts[table] = (
                f"same ({rows[0]} rows)"
                if only == [0, 0]
                else f"differs: {only[0]} of {rows[0]} rows before only, "
                f"{only[1]} of {rows[1]} after only"
            )
    return verdicts


def main(argv: list[str] | None = None) -> int:
    """Print each table's verdict; 0 when every table is the same, else 1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    verdicts = compare(args.before.resolve(), args.after.resolve())
    for table, verdict in verdicts.items():
        print(f"{table:<24} {verdict}")
    return 0 if verdicts and all(v.startswith("same") for v in verdicts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
