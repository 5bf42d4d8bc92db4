"""The ranked offers of a published day, read back and said in plain words."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from agebatch.errors import InputError
from agebatch.publish import partition
from agebatch.schema import ItemKind, Level
from agebatch.transform.affinity import REPORT
from agebatch.transform.history import published_days

DASH, TIMES = "\u2013", "\u00d7"  # the en dash of '18-24' in words, the sign of '2.9x'


def read_offers(
    out: Path,
    day: dt.date | None = None,
    store: str | None = None,
    group: str | None = None,
) -> tuple[dt.date, pd.DataFrame]:
    """The day's ranked offers (the latest published day when day is None), for one store
    and/or age group when given; the chain's rows come with every store's unless a store is
    asked for."""
    days = published_days(out, REPORT)
    if not days:
        raise InputError(f"No {REPORT} under {out}: publish a day with this agebatch first.")
    day = day or days[-1]
    if day not in days:
        raise InputError(
            f"{day} has no {REPORT} under {out}; published days: {days[0]} to {days[-1]}."
        )
    table = pq.read_table(partition(out, REPORT, day)).to_pandas()
    stores = sorted(table["store_id"].dropna().unique())
    if store is not None and store not in stores:
        raise InputError(f"Store {store!r} has no rows on {day}; stores: {', '.join(stores)}.")
    groups = list(dict.fromkeys(table["age_group"]))
    group = group.replace(DASH, "-") if group else None
    if group is not None and group not in groups:
        raise InputError(f"Age group {group!r} has no rows on {day}; groups: {', '.join(groups)}.")
    if store is not None:
        table = table[table["store_id"] == store]
    if group is not None:
        table = table[table["age_group"] == group]
    return day, table


def group_order(label: str) -> float:
    """Where an age-group label sorts: by its lower bound, '<18' first."""
    if label.startswith("<"):
        return float("-inf")
    return float(label.rstrip("+").split("-")[0])


def top_offers(table: pd.DataFrame, top: int) -> pd.DataFrame:
    """The first `top` offers of each group and kind of item, stores in order, then the chain."""
    offers = table[table["offer_rank"].notna() & (table["offer_rank"] <= top)]
    chain_last = (offers["level"] == Level.CHAIN.value).astype(int)
    kind_order = (offers["item_kind"] == ItemKind.SKU.value).astype(int)
    return (
        offers.assign(
            _chain=chain_last,
            _store=offers["store_id"].fillna(""),
            _group=offers["age_group"].map(group_order),
            _kind=kind_order,
        )
        .sort_values(["_chain", "_store", "_group", "_kind", "offer_rank"])
        .drop(columns=["_chain", "_store", "_group", "_kind"])
    )


def offer_rows(table: pa.Table, top: int = 3) -> list[dict[str, object]]:
    """The first `top` offers of each store's (and the chain's) groups as rows for a table
    artifact: where, group, rank, item, lift and interval, receipts, in words too."""
    frame = top_offers(table.to_pandas(), top)
    return [
        {
            "store_id": row["store_id"] if row["level"] == Level.STORE.value else "chain",
            "age_group": row["age_group"],
            "item_kind": row["item_kind"],
            "offer_rank": int(row["offer_rank"]),
            "item": row["item"],
            "lift": round(float(row["lift"]), 2),
            "lift_low": round(float(row["lift_low"]), 2),
            "lift_high": round(float(row["lift_high"]), 2),
            "receipts": int(row["receipts"]),
            "in_words": offer_sentence(row),
        }
        for _, row in frame.iterrows()
    ]


def offer_sentence(row: pd.Series | dict) -> str:
    """One offer in words, e.g. '18-24 at S01 buy energy drinks 2.9x as often as the store's
    shoppers (2.3-3.6x, 412 receipts over 28 days)', with an en dash and a times sign."""
    group = str(row["age_group"]).replace("-", DASH)
    where = "across the chain" if row["level"] == Level.CHAIN.value else f"at {row['store_id']}"
    whose = "the chain's" if row["level"] == Level.CHAIN.value else "the store's"
    category = str(row["category"]).replace("_", " ")
    item = (
        category if row["item_kind"] == ItemKind.CATEGORY.value else f"{row['item']} ({category})"
    )
    days = int(row["days_covered"])
    return (
        f"{group} {where} buy {item} {row['lift']:.1f}{TIMES} as often as {whose} shoppers "
        f"({row['lift_low']:.1f}{DASH}{row['lift_high']:.1f}{TIMES}, {int(row['receipts'])} "
        "receipts over "
        f"{days} day{'s' if days != 1 else ''})"
    )


def window_note(table: pd.DataFrame) -> str:
    """How the day's window and intervals were made, from the table's own columns."""
    if table.empty:
        return "no rows"
    first = table.iloc[0]
    return (
        f"{int(first['window_days'])}-day window, {int(first['days_covered'])} of its days "
        f"published; {first['method']}"
    )


def offer_lines(table: pd.DataFrame, top: int) -> list[str]:
    """The offers report: per store, then the chain, the first `top` offers of each group and
    kind of item in words, and the groups that have none."""
    lines = []
    scope = table["store_id"].where(table["level"] == Level.STORE.value, None)
    shown = top_offers(table, top)
    shown_scope = shown["store_id"].where(shown["level"] == Level.STORE.value, None)
    stores = sorted(set(scope.dropna()))
    for store in [*stores, None]:
        rows = table[scope == store] if store else table[scope.isna()]
        if rows.empty:
            continue
        offers = shown[shown_scope == store] if store else shown[shown_scope.isna()]
        lines.append(f"{store}:" if store else "The chain:")
        lines.extend(f"  {offer_sentence(row)}" for _, row in offers.iterrows())
        groups = sorted(set(rows["age_group"]), key=group_order)
        without = [g for g in groups if g not in set(offers["age_group"])]
        if without:
            lines.append(f"  no offers for {', '.join(g.replace('-', DASH) for g in without)}")
    return lines
