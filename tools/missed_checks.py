"""What the compliance report finds on a generated day of real labelled faces (not shipped).

The day's shoppers are real faces matched to generated ages (agebatch.sample, with the till's
age checks drawn from CHECK_MIX), so each sale's true age and recorded check are known. For
each --max-teen-miss (none: the challenge age) the day is run with the bundled model and the
listed missed checks are compared with the true ones:

    python -m tools.missed_checks --faces ../shared/faces/utkface-dev --receipts 3000 \
        --max-teen-miss none 0.15 0.10

Faces are copied into a temporary folder and deleted afterwards; nothing of them is printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
from pathlib import Path

import pandas as pd

from agebatch.pipeline import run_day
from agebatch.predict.model import load_model
from agebatch.sample import make_sample_day

DAY = dt.date(2026, 11, 24)
NO_CHECK = ("not_asked", "not_recorded")


def measure(faces: Path, receipts: int, seed: int, targets: list[float | None]) -> pd.DataFrame:
    """One row per target: true and listed missed checks, found, false alarms, teens found."""
    model = load_model()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sample = make_sample_day(Path(tmp) / "day", DAY, receipts=receipts, seed=seed, faces=faces)
        truth = sample.truth.set_index("receipt_id")
        truth["check"] = truth["age_check"].fillna("not_recorded")
        for target in targets:
            out = Path(tmp) / f"out-{target}"
            config = sample.config(out, photo_kind="crops", max_teen_miss=target)
            record = run_day(config, DAY, model=model).record
            checks = pd.read_parquet(out / "alcohol_checks").set_index("receipt_id")
            sold = pd.read_parquet(out / "cashier_compliance")["restricted_receipts"].sum()
            listed = checks.index[checks["missed_check"].fillna(False)]
            seen = truth["status"] == "matched"
            sales = truth.index.isin(_sold(sample))
            unasked = sales & seen & truth["check"].isin(NO_CHECK)
            true_missed = truth.index[unasked & (truth["true_age"] < 25)]
            teens = truth.index[unasked & (truth["true_age"] < 18)]
            rows.append(
                {
                    "max_teen_miss": target,
                    "flag_threshold": record.flag_threshold,
                    "restricted_sales": int(sold),
                    "listed_for_review": len(checks),
                    "true_missed_under_25": len(true_missed),
                    "listed_missed": len(listed),
                    "found": len(listed.intersection(true_missed)),
                    "listed_but_25_plus": int((truth.loc[listed, "true_age"] >= 25).sum()),
                    "teens_unasked": len(teens),
                    "teens_found": len(listed.intersection(teens)),
                }
            )
    return pd.DataFrame(rows)


def _sold(sample) -> pd.Index:
    """Receipts that sold restricted units, net of returns and voids."""
    lines = pd.read_parquet(sample.transactions / f"{DAY}.parquet").merge(
        pd.read_csv(sample.catalog), on="sku"
    )
    units = lines[lines["age_restricted"]].groupby("receipt_id")["quantity"].sum()
    return units[units > 0].index


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, required=True)
    parser.add_argument("--receipts", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-teen-miss", nargs="+", default=["none", "0.10"])
    args = parser.parse_args()
    targets = [None if t == "none" else float(t) for t in args.max_teen_miss]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(measure(args.faces, args.receipts, args.seed, targets).to_string(index=False))


if __name__ == "__main__":
    main()
