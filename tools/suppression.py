"""What k-anonymous suppression does to the demo's day: cells before and after, remainders.

    python tools/suppression.py /tmp/suppression [RECEIPTS] [SEED]

Generates the demo's day (400 receipts, seed 7, drawn faces, the bundled model), runs it with
k = 1 (every cell published, as before) and k = 5 (the default), and prints, per k, the
age_group_purchases rows, those holding one receipt and fewer than 5, the remainder rows, the
merged age_group_shares rows and the revenue against the day's sales; then the day's
store_coverage figures.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
from pathlib import Path

import duckdb

from agebatch.pipeline import run_day
from agebatch.predict.model import load_model
from agebatch.sample import make_sample_day

DAY = dt.date(2026, 11, 24)


def query(out: Path, table: str, select: str) -> list[tuple]:
    """Run `select … from t` over one published table of out."""
    glob = str(out / table / "*" / "*.parquet")
    return duckdb.sql(
        f"with t as (select * from read_parquet($glob)) {select}", params={"glob": glob}
    ).fetchall()


def main(work: Path, receipts: int, seed: int) -> None:
    shutil.rmtree(work, ignore_errors=True)
    sample = make_sample_day(work / "data", DAY, receipts=receipts, seed=seed)
    model = load_model()
    for k in (1, 5):
        out = work / f"out-k{k}"
        run_day(sample.config(out, min_cell_receipts=k), DAY, model=model)
        ((rows, ones, small, revenue),) = query(
            out,
            "age_group_purchases",
            "select count(*), count(*) filter (where category_receipts = 1), "
            "count(*) filter (where category_receipts < 5), round(sum(revenue), 2) from t",
        )
        print(
            f"k={k}: age_group_purchases {rows} rows, {ones} of one receipt, {small} under 5;"
            f" revenue {revenue}"
        )
        for store, n, rev in query(
            out,
            "age_group_purchases",
            "select store_id, category_receipts, round(revenue, 2) from t "
            "where age_group = 'suppressed' order by 1",
        ):
            print(f"  remainder {store}: {n} receipts, revenue {rev}")
        for level, store, n, share in query(
            out,
            "age_group_shares",
            "select level, store_id, receipts, round(share, 3) from t "
            "where age_group = 'suppressed' order by 1 desc, 2",
        ):
            print(f"  shares {level} {store or ''}: 'suppressed' {n} receipts ({share})")
    ((sales,),) = duckdb.sql(
        "select round(sum(amount), 2) from read_parquet($p)",
        params={"p": str(sample.transactions / f"{DAY}.parquet")},
    ).fetchall()
    print(f"sales of the day: {sales}")
    for row in query(
        work / "out-k5",
        "store_coverage",
        "select store_id, measure, affected, total, round(share, 3), verdict from t order by 1, 2",
    ):
        print("  store_coverage", *row)


if __name__ == "__main__":
    args = sys.argv[1:]
    main(
        Path(args[0]), int(args[1]) if len(args) > 1 else 400, int(args[2]) if len(args) > 2 else 7
    )
