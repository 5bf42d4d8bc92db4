"""What a run did, said for people: the CLI's summary and the Prefect artifacts' tables."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pyarrow as pa

from agebatch.records import Published, RunRecord


def summary_rows(record: RunRecord) -> list[dict[str, object]]:
    """The run as (measure, value) rows: day, id, model, counts, stage seconds, speed."""
    rows = []
    for name, value in dataclasses.asdict(record).items():
        if name in ("started_at", "agebatch_version"):
            continue
        shown = value.isoformat() if hasattr(value, "isoformat") else value
        if isinstance(shown, list):
            shown = ", ".join(shown) or "none"
        rows.append(
            {"measure": name, "value": round(shown, 2) if isinstance(shown, float) else shown}
        )
    return rows


def top_cashiers(compliance: pa.Table, n: int = 10) -> list[dict[str, object]]:
    """The n cashiers with the most missed ID checks on the day when the till recorded checks
    (by missed rate), else with the highest flagged rate of restricted sales."""
    rows = compliance.to_pylist()
    recorded = any(r["missed_receipts"] is not None for r in rows)
    keep = ["store_id", "cashier_id", "restricted_receipts", "flagged_receipts", "flagged_rate"]
    if recorded:
        keep += ["missed_receipts", "missed_rate"]
        rows.sort(key=lambda r: (-(r["missed_rate"] or 0), -r["missed_receipts"]))
    else:
        rows.sort(key=lambda r: (-r["flagged_rate"], -r["flagged_receipts"]))
    rates = ("flagged_rate", "missed_rate")
    return [
        {k: round(r[k], 3) if k in rates and r[k] is not None else r[k] for k in keep}
        for r in rows[:n]
    ]


def print_summary(published: Published, out: Path) -> None:
    """Print the run's figures, where the Parquet went and a query to read it."""
    rows = summary_rows(published.record)
    width = max(len(str(row["measure"])) for row in rows)
    for row in rows:
        print(f"  {row['measure']:<{width}}  {row['value']}")
    print(f"Published {published.record.day} under {out}/:")
    for name, folder in published.folders.items():
        print(f"  {name:<20} {folder}")
    if published.report is not None:
        print(f"Report (open in a browser): {published.report.resolve().as_uri()}")
    print("Read it with DuckDB, e.g.:")
    print(f"  {example_query(out)}")


def example_query(out: Path) -> str:
    """A shell command (Python + DuckDB) that shows the age-group purchases under out."""
    glob = out.resolve() / "age_group_purchases" / "*" / "*.parquet"
    query = (
        "select day, age_group, sum(revenue) as revenue "
        f"from read_parquet('{glob}', hive_partitioning = true) "
        "group by day, age_group, age_group_low order by day, age_group_low nulls last"
    )
    return f'{sys.executable} -c "import duckdb; duckdb.sql(\\"{query}\\").show()"'
