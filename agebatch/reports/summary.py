"""What a run did, said for people: the CLI's summary and the Prefect artifact's table."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa

from agebatch.pipeline import RunSummary


def summary_rows(summary: RunSummary) -> list[dict[str, object]]:
    """The run as (measure, value) rows: counts, stage seconds, speed, model."""
    rows: list[dict[str, object]] = [
        {"measure": "day", "value": summary.day.isoformat()},
        {"measure": "run_id", "value": summary.run_id},
        {"measure": "model_version", "value": summary.model_version},
        {"measure": "device", "value": summary.device},
    ]
    rows += [{"measure": k, "value": v} for k, v in summary.counts.items()]
    rows += [{"measure": f"{k}_s", "value": round(v, 2)} for k, v in summary.seconds.items()]
    rows.append({"measure": "photos_per_s", "value": round(summary.photos_per_s, 1)})
    return rows


def top_cashiers(compliance: pa.Table, n: int = 10) -> list[dict[str, object]]:
    """The n cashiers with the highest flagged rate of restricted sales on the day."""
    rows = sorted(
        compliance.to_pylist(),
        key=lambda r: (-r["flagged_rate"], -r["flagged_receipts"], r["store_id"], r["cashier_id"]),
    )
    keep = ("store_id", "cashier_id", "restricted_receipts", "flagged_receipts", "flagged_rate")
    return [{k: round(r[k], 3) if k == "flagged_rate" else r[k] for k in keep} for r in rows[:n]]


def print_summary(summary: RunSummary, out: Path) -> None:
    """Print the run's figures, where the Parquet went and a query to read it."""
    width = max(len(str(row["measure"])) for row in summary_rows(summary))
    for row in summary_rows(summary):
        print(f"  {row['measure']:<{width}}  {row['value']}")
    print(f"Published {summary.day} under {out}/:")
    for name, folder in summary.published.items():
        print(f"  {name:<20} {folder}")
    print("Read it with DuckDB, e.g.:")
    print(f"  {example_query(out)}")


def example_query(out: Path) -> str:
    """A shell command (Python + DuckDB) that shows the age-group purchases under out."""
    glob = out.resolve() / "age_group_purchases" / "*" / "*.parquet"
    query = (
        "select day, age_group, sum(units) as units, round(sum(revenue), 2) as revenue "
        f"from read_parquet('{glob}', hive_partitioning = true) group by all order by all"
    )
    return f'{sys.executable} -c "import duckdb; duckdb.sql(\\"{query}\\").show()"'
