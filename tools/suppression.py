"""What the small-cell rule withholds on a generated day: the share of cells, receipts and
revenue withheld, with k = 1 (nothing withheld) against k = 5 (the default).

    python tools/suppression.py /tmp/suppression [RECEIPTS] [SEED]

Generates a demo-like day (RECEIPTS receipts at 3 stores, default the demo's, seed 7, drawn
faces, the bundled model), runs it with k = 1 and k = 5, and prints, per k, the
age_group_purchases cells and those withheld, the revenue they hold (from the k = 1 run: a
withheld cell's figure is not published), the age groups withheld per store (and the receipts
in them) and the chain's groups withheld; then the day's sales and store_coverage.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
from pathlib import Path

import duckdb

from agebatch.cli.demo import DEMO_RECEIPTS, registers_for
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
    registers = registers_for(receipts)
    sample = make_sample_day(work / "data", DAY, receipts=receipts, seed=seed, registers=registers)
    model = load_model()
    for k in (1, 5):
        out = work / f"out-k{k}"
        # k = 1 is refused for a run (config.K_FLOOR: a cell of one receipt names a shopper); this
        # developer tool sets it past the check into its own scratch folder, to measure what k = 5
        # withholds against every cell.
        config = sample.config(out).model_copy(update={"min_cell_receipts": k})
        run_day(config, DAY, model=model)
        ((rows, ones, small, withheld, revenue),) = query(
            out,
            "age_group_purchases",
            "select count(*), count(*) filter (where category_receipts = 1), "
            "count(*) filter (where category_receipts < 5), count(*) filter (where withheld), "
            "round(sum(revenue), 2) from t",
        )
        print(
            f"k={k}: age_group_purchases {rows} rows, {ones} of one receipt, {small} under 5, "
            f"{withheld} withheld; revenue {revenue}"
        )
    every, some = work / "out-k1", work / "out-k5"
    glob = "read_parquet($g)"
    ((hidden, total),) = duckdb.sql(
        f"select sum(a.revenue) filter (where b.withheld), sum(a.revenue) from {glob} a "
        f"join read_parquet($h) b using (store_id, age_group, category, age_restricted)",
        params={
            "g": str(every / "age_group_purchases" / "*" / "*.parquet"),
            "h": str(some / "age_group_purchases" / "*" / "*.parquet"),
        },
    ).fetchall()
    print(f"k=5: withheld purchase cells hold {hidden or 0} of {total} revenue")
    ((groups, held, matched, held_receipts),) = duckdb.sql(
        f"select count(*), count(*) filter (where b.withheld), sum(a.receipts), "
        f"sum(a.receipts) filter (where b.withheld) from {glob} a join read_parquet($h) b "
        "using (level, store_id, age_group) where a.level = 'store'",
        params={
            "g": str(every / "age_group_shares" / "*" / "*.parquet"),
            "h": str(some / "age_group_shares" / "*" / "*.parquet"),
        },
    ).fetchall()
    print(
        f"k=5: {held} of {groups} store age groups withheld, {held_receipts or 0} of "
        f"{matched} matched receipts"
    )
    chain = query(
        some, "age_group_shares", "select age_group from t where level = 'chain' and withheld"
    )
    print(f"k=5: chain groups withheld: {', '.join(g for (g,) in chain) or 'none'}")
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
        Path(args[0]),
        int(args[1]) if len(args) > 1 else DEMO_RECEIPTS,
        int(args[2]) if len(args) > 2 else 7,
    )
