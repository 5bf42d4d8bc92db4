"""Planted preferences: how often age_group_affinity finds them, with and without the correction.

Developer tool, not part of the nightly job. Each seed generates days (agebatch.sample, no
photos) on which some ages buy a planted item more often, reads every shopper's age as a model
would (drawn from a model card's age confusion: true year -> predicted year), and runs the
pipeline's affinity code (sql/age_group_item_receipts.sql, sql/age_group_affinity.sql,
agebatch.transform.affinity) with the correction off and on. It prints, per planted item, how
often it is its group's first offer and in its top 3 (per store and for the chain), how often
it shows as an offer of another group, and the same for days without the plants (control).

    python -m tools.affinity_bench --seeds 100 --receipts 3000
    python -m tools.affinity_bench --seeds 100 --receipts 400 --days 28
    python -m tools.affinity_bench --noise-model /tmp/holdout/age_v1.keras   # other faces

The correction always uses the bundled card's confusion (what a run uses); --noise-model draws
the ages from another card's confusion (e.g. `agebatch evaluate --split holdout
--write-confusion` on a copy of the model), so the correction is not tested on its own data.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from agebatch.config import RunConfig, default_age_bounds
from agebatch.predict.card import ModelCard
from agebatch.predict.model import bundled_model_path
from agebatch.publish import partition
from agebatch.sample import DEMO_PREFERENCES, NoPhotos, Preference, confused_ages, make_sample_day
from agebatch.schema import ReceiptStatus
from agebatch.transform.affinity import DAILY, REPORT, AffinityInputs, affinity_of
from agebatch.transform.shares import EM_ITERATIONS, group_confusion, group_of

DAY = dt.date(2026, 11, 24)


def parse_preference(text: str) -> Preference:
    """'18-24:NRG002:3' or '65+:SNK002:3' -> a Preference."""
    ages, item, factor = text.split(":")
    low, _, high = ages.rstrip("+").partition("-")
    return Preference(float(low), float(high) + 1 if high else 200.0, item, float(factor))


def simulate_days(
    root: Path,
    seed: int,
    *,
    days: int,
    receipts: int,
    stores: int,
    preferences: tuple[Preference, ...],
    noise: Sequence[Sequence[int]] | None,
    bounds: tuple[int, ...],
    shuffle: bool = False,
    faces: Path | None = None,
) -> list[tuple[dt.date, pd.DataFrame, pd.DataFrame, pd.DataFrame]]:
    """Generated days (day, lines, catalog, receipt_ages), ages read through the noise (and,
    with shuffle, dealt to the day's receipts at random: a day where age tells nothing).
    With faces, each receipt's photo is a real labelled face near its shopper's age and the
    ages are the bundled model's, through the pipeline (agebatch.pipeline.run_day)."""
    rng = np.random.default_rng(10_000 + seed)
    out = []
    for back in range(days - 1, -1, -1):
        day = DAY - dt.timedelta(days=back)
        sample = make_sample_day(
            root / f"{seed}-{back}",
            day,
            stores=stores,
            receipts=receipts,
            seed=seed * 1000 + back,
            writer=NoPhotos(),
            preferences=preferences,
            faces=faces,
        )
        truth = sample.truth
        if faces is not None:
            out.append((day, *_read_by_the_model(sample, day, root / f"{seed}-{back}-out")))
            continue
        matched = truth["status"] == ReceiptStatus.MATCHED.value
        ages = truth["true_age"].to_numpy(float)
        if shuffle:
            ages = rng.permutation(ages)
        read = confused_ages(ages, noise, rng) if noise is not None else ages
        receipt_ages = pd.DataFrame(
            {
                "receipt_id": truth["receipt_id"],
                "store_id": truth["store_id"],
                "age_group": np.where(matched, group_of(read, bounds), None),
                "status": truth["status"],
            }
        )
        lines = pd.read_parquet(sample.transactions / f"{day}.parquet")
        catalog = pd.read_csv(sample.catalog)
        out.append((day, lines, catalog, receipt_ages))
    return out


def _read_by_the_model(sample, day: dt.date, out: Path) -> tuple[pd.DataFrame, ...]:
    """Run the day through the pipeline with the bundled model; its lines, catalog and the
    published receipt_ages."""
    from agebatch.pipeline import run_day

    run_day(sample.config(out, photo_kind="crops"), day, model=_model())
    receipt_ages = pq.read_table(partition(out, "receipt_ages", day)).to_pandas()
    lines = pd.read_parquet(sample.transactions / f"{day}.parquet")
    return lines, pd.read_csv(sample.catalog), receipt_ages


@functools.cache
def _model():
    """The bundled model, loaded once."""
    from agebatch.predict.model import load_model

    return load_model()


def window_affinity(
    days: list[tuple[dt.date, pd.DataFrame, pd.DataFrame, pd.DataFrame]], inputs: AffinityInputs
) -> pd.DataFrame:
    """The last day's age_group_affinity over all the days, as a run after the others gives."""
    daily = []
    for day, lines, catalog, receipt_ages in days[:-1]:
        daily.append(affinity_of(lines, catalog, receipt_ages, day, inputs)[DAILY])
    day, lines, catalog, receipt_ages = days[-1]
    history = pa.concat_tables(daily) if daily else inputs.history
    inputs = replace(inputs, history=history, days_covered=len(days), affinity_days=len(days))
    return affinity_of(lines, catalog, receipt_ages, day, inputs)[REPORT].to_pandas()


def planted_ranks(
    table: pd.DataFrame, preferences: Sequence[Preference], bounds: tuple[int, ...]
) -> list[dict[str, object]]:
    """Per planted item and scope: its offer rank in its group, and whether another group has
    it as an offer."""
    rows = []
    for preference in preferences:
        group = group_of([preference.low], bounds)[0]
        item = table[table["item"] == preference.item]
        for (level, store), scope in item.groupby(["level", item["store_id"].fillna("chain")]):
            own = scope[scope["age_group"] == group]
            rank = own["offer_rank"].iloc[0] if len(own) else pd.NA
            others = scope[(scope["age_group"] != group) & scope["offer_rank"].notna()]
            rows.append(
                {
                    "item": f"{group}:{preference.item}",
                    "level": level,
                    "store": store,
                    "rank": rank,
                    "elsewhere": len(others) > 0,
                }
            )
    return rows


def null_offers(table: pd.DataFrame, min_receipts: int) -> list[dict[str, object]]:
    """Offers per list (scope, group, kind of item) and the items it weighs."""
    keys = ["level", table["store_id"].fillna("chain"), "age_group", "item_kind"]
    lists = table.groupby(keys)
    return [
        {"level": level, "item_kind": kind, "offers": offers, "weighed": weighed}
        for (level, _, _, kind), offers, weighed in zip(
            lists.groups,
            lists["offer_rank"].count(),
            lists["receipts"].apply(lambda r: int((r >= min_receipts).sum())),
            strict=True,
        )
    ]


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Hit rates per item, level and correction."""
    rank = rows["rank"].astype("Float64")
    rows = rows.assign(first=(rank == 1).fillna(False), top3=(rank <= 3).fillna(False))
    return (
        rows.groupby(["plants", "correction", "item", "level"])
        .agg(
            n=("first", "size"),
            first=("first", "mean"),
            top3=("top3", "mean"),
            elsewhere=("elsewhere", "mean"),
        )
        .round(3)
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the measurement and print the hit rates."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--receipts", type=int, default=3000, help="per day, all stores")
    parser.add_argument("--stores", type=int, default=3)
    parser.add_argument("--days", type=int, default=1, help="days in the window")
    parser.add_argument(
        "--plant",
        action="append",
        type=parse_preference,
        help="AGES:ITEM:FACTOR, e.g. 18-24:NRG002:3 (default: the demo's)",
    )
    parser.add_argument(
        "--noise-model", type=Path, help="a model whose card's confusion reads the ages"
    )
    parser.add_argument("--no-noise", action="store_true", help="ages read exactly")
    parser.add_argument(
        "--faces",
        type=Path,
        help="labelled faces (labels.csv + final_files/): photos of real faces, aged by the "
        "bundled model through the pipeline, instead of drawn ages",
    )
    defaults = RunConfig.model_fields
    parser.add_argument("--min-receipts", type=int, default=defaults["min_receipts"].default)
    parser.add_argument("--confidence", type=float, default=defaults["affinity_confidence"].default)
    parser.add_argument(
        "--null",
        action="store_true",
        help="deal the ages to receipts at random (age tells nothing): count the offers found",
    )
    parser.add_argument("--csv", type=Path, help="also write every rank to this file")
    args = parser.parse_args(argv)
    if args.null and args.faces:
        parser.error("--null deals drawn ages at random; it cannot be used with --faces")

    bounds = default_age_bounds()
    groups = tuple(group_of([b - 1 for b in bounds] + [bounds[-1]], bounds))
    card = ModelCard.read(bundled_model_path())
    noise_card = ModelCard.read(args.noise_model) if args.noise_model else card
    noise = None if args.no_noise else noise_card.age_confusion.counts
    preferences = tuple(args.plant or DEMO_PREFERENCES)
    common = {
        "groups": groups,
        "min_receipts": args.min_receipts,
        "confidence": args.confidence,
    }
    inputs = {
        "none": AffinityInputs(**common),
        "confusion": AffinityInputs(
            **common,
            confusion=group_confusion(card.age_confusion.counts, bounds),
            correction=f"EM ({EM_ITERATIONS} iterations)",
        ),
    }
    read_by = (
        f"the bundled model on real faces from {args.faces}"
        if args.faces
        else "nothing (exact)"
        if noise is None
        else f"the confusion of {noise_card.version} on {noise_card.age_confusion.split}"
    )
    print(
        f"{args.seeds} seeds x {args.days} day(s) x {args.receipts} receipts, {args.stores} "
        f"stores; ages read through {read_by}; "
        f"plants: {', '.join(f'{p.low:g}-{p.high:g} {p.item} x{p.factor:g}' for p in preferences)}"
    )
    started = time.perf_counter()
    rows = []
    if args.null:
        with tempfile.TemporaryDirectory() as scratch:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                days = simulate_days(
                    Path(scratch),
                    seed,
                    days=args.days,
                    receipts=args.receipts,
                    stores=args.stores,
                    preferences=(),
                    noise=noise,
                    bounds=bounds,
                    shuffle=True,
                    faces=args.faces,
                )
                for name, settings in inputs.items():
                    table = window_affinity(days, settings)
                    for row in null_offers(table, args.min_receipts):
                        rows.append({"seed": seed, "correction": name, **row})
        frame = pd.DataFrame(rows).assign(any=lambda f: f["offers"] > 0)
        with pd.option_context("display.width", 200):
            print(
                frame.groupby(["correction", "level", "item_kind"])
                .agg(
                    lists=("offers", "size"),
                    items_weighed=("weighed", "mean"),
                    offers_per_list=("offers", "mean"),
                    lists_with_an_offer=("any", "mean"),
                )
                .round(3)
                .to_string()
            )
        print(f"({time.perf_counter() - started:.0f} s)")
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for plants in ("planted", "control"):
                days = simulate_days(
                    Path(scratch) / plants,
                    seed,
                    days=args.days,
                    receipts=args.receipts,
                    stores=args.stores,
                    preferences=preferences if plants == "planted" else (),
                    noise=noise,
                    bounds=bounds,
                    faces=args.faces,
                )
                for name, settings in inputs.items():
                    table = window_affinity(days, settings)
                    for row in planted_ranks(table, preferences, bounds):
                        rows.append({"seed": seed, "plants": plants, "correction": name, **row})
    frame = pd.DataFrame(rows)
    if args.csv:
        frame.to_csv(args.csv, index=False)
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print(summarise(frame).to_string())
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
