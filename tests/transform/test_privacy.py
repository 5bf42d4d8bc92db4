"""Withheld, never false: every published aggregate figure is exact or marked withheld, no
withheld cell can be computed back, and the age-free margins are exact (issue #26).

Random small days go through the real join in DuckDB. The truth is computed here from the
lines and the published receipt_ages (each receipt's store and age group), not from another
published table. The attack: every sum the published tables state (a group's revenue over its
categories, a category's over the groups via store_sales, a store's receipts over its groups,
a chain row over the stores, the affinity window's sums) is written as a linear equation in the
withheld cells; a withheld cell is recovered when its unit vector lies in the span of those
equations (rank test). Secondary suppression must leave none.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from agebatch.config import age_group_labels, default_age_bounds
from agebatch.duck import connect
from agebatch.schema import conform
from agebatch.transform.join import join_day
from agebatch.transform.shares import add_corrected_shares
from tests.conftest import DAY, captures_frame, compliance

GROUPS = [label for label, *_ in age_group_labels(default_age_bounds())]
# sku -> category; SKU9 is not in the catalog (its lines are 'uncategorised')
CATALOG = pa.table(
    {
        "sku": ["BEE", "WIN", "BRD", "MLK", "TOY"],
        "category": ["beer", "wine", "bakery", "dairy", "toys"],
        "age_restricted": [True, True, False, False, False],
    }
)
SKUS = [*CATALOG["sku"].to_pylist(), "SKU9"]
NOON = dt.datetime.combine(DAY, dt.time(12))


@st.composite
def days(draw: st.DrawFn) -> tuple[pa.Table, object, int]:
    """A day of up to 60 receipts at up to 3 stores, a photo (an age or unreadable) or none per
    receipt, 1-4 lines each in whole cents (returns too), and a k. Each day draws its shoppers'
    ages and its skus from small pools, so big cells sit beside small ones."""
    stores = draw(st.integers(1, 3))
    ages = draw(
        st.lists(
            st.sampled_from([15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0]),
            min_size=1,
            max_size=4,
            unique=True,
        )
    )
    skus = draw(st.lists(st.sampled_from(SKUS), min_size=1, max_size=4, unique=True))
    n = draw(st.integers(0, 60))
    lines, shots = [], []
    for i in range(n):
        store = f"S{draw(st.integers(1, stores))}"
        receipt, paid = f"r{i:03d}", NOON + dt.timedelta(minutes=i)
        photo = draw(st.sampled_from(["age", "age", "age", "unreadable", "none"]))
        if photo != "none":
            age = draw(st.sampled_from(ages)) if photo == "age" else None
            status = "ok" if photo == "age" else "unreadable"
            shots.append((f"{receipt}.jpg", store, "R1", paid, age, status, receipt))
        for _ in range(draw(st.integers(1, 4))):
            quantity = draw(st.integers(-2, 5).filter(bool))
            cents = quantity * draw(st.integers(1, 2_000))
            sku = draw(st.sampled_from(skus))
            lines.append((receipt, store, "R1", "C1", paid, sku, quantity, cents))
    columns = ["receipt_id", "store_id", "register_id", "cashier_id", "paid_at", "sku", "quantity"]
    table = pa.table(
        {
            **{name: [row[i] for row in lines] for i, name in enumerate(columns)},
            "amount": [row[7] / 100 for row in lines],
        },
        schema=pa.schema(
            [
                *[(c, pa.string()) for c in columns[:4]],
                ("paid_at", pa.timestamp("us")),
                ("sku", pa.string()),
                ("quantity", pa.float64()),
                ("amount", pa.float64()),
            ]
        ),
    )
    return table, captures_frame(*shots), draw(st.integers(1, 7))


def _join(lines: pa.Table, captures, k: int) -> dict[str, pa.Table]:
    with connect() as con:
        tables = join_day(
            con,
            day=DAY,
            lines=lines,
            catalog=CATALOG,
            captures=captures,
            model_version="m1",
            age_bounds=default_age_bounds(),
            window_before_s=120.0,
            window_after_s=5.0,
            compliance=compliance(),
            min_cell_receipts=k,
        )
    # As the pipeline publishes it: corrected shares added, every table conformed.
    tables["age_group_shares"] = add_corrected_shares(
        tables["age_group_shares"], [(30, 30, 1)], "test", default_age_bounds()
    )
    return {name: conform(name, table, GROUPS) for name, table in tables.items()}


def _cents(value: object) -> int:
    return round(Decimal(str(value)) * 100)


COLUMN_OF = {
    sku: (category, restricted)
    for sku, category, restricted in zip(*CATALOG.to_pydict().values(), strict=True)
}


def _truth(lines: pa.Table, receipt_ages: pa.Table) -> dict[str, dict]:
    """The day's figures from the transactions and each receipt's published age group."""
    ages = {r["receipt_id"]: r for r in receipt_ages.to_pylist()}
    cells: dict = defaultdict(lambda: [set(), Decimal(0), 0])  # receipts, units, cents
    groups: dict = defaultdict(lambda: [set(), 0])
    margins: dict = defaultdict(lambda: [set(), Decimal(0), 0])
    units_of: dict = defaultdict(Decimal)  # (receipt, item_kind, item) -> net units
    for line in lines.to_pylist():
        age = ages[line["receipt_id"]]
        store, group = age["store_id"], age["age_group"] or "unknown"
        column = COLUMN_OF.get(line["sku"], ("uncategorised", False))
        cents, units = _cents(line["amount"]), Decimal(str(line["quantity"]))
        for key, into in (
            ((store, group, *column), cells),
            (("store", store, *column), margins),
            (("store", store, "all", None), margins),
            (("chain", None, *column), margins),
            (("chain", None, "all", None), margins),
        ):
            into[key][0].add(line["receipt_id"])
            into[key][1] += units
            into[key][2] += cents
        groups[(store, group)][0].add(line["receipt_id"])
        groups[(store, group)][1] += cents
        units_of[(line["receipt_id"], "sku", line["sku"])] += units
        units_of[(line["receipt_id"], "category", column[0])] += units
    items: dict = defaultdict(int)
    matched: dict = defaultdict(int)
    for age in ages.values():
        if age["status"] == "matched":
            matched[(age["store_id"], age["age_group"])] += 1
            items[(age["store_id"], age["age_group"], "all", "all")] += 1
    for (receipt, kind, item), units in units_of.items():
        age = ages[receipt]
        if age["status"] == "matched" and units > 0:
            items[(age["store_id"], age["age_group"], kind, item)] += 1
    return {
        "cells": {key: (len(v[0]), v[1], v[2]) for key, v in cells.items()},
        "groups": {key: (len(v[0]), v[1]) for key, v in groups.items()},
        "margins": {key: (len(v[0]), v[1], v[2]) for key, v in margins.items()},
        "matched": dict(matched),
        "items": dict(items),
    }


@settings(max_examples=60, deadline=None, derandomize=True)
@given(day=days())
def test_every_published_figure_is_exact_or_withheld_and_none_can_be_recovered(day) -> None:
    lines, captures, k = day
    published = _join(lines, captures, k)
    truth = _truth(lines, published["receipt_ages"])
    stores = sorted(set(published["receipt_ages"]["store_id"].to_pylist()))
    _check_margins(truth, published["store_sales"])
    _check_purchases(truth, published["age_group_purchases"], k)
    _check_groups(truth, published, stores, k)
    _check_items(truth, published["age_group_item_receipts"], k)
    _check_not_recoverable(published)


def _check_margins(truth: dict, sales: pa.Table) -> None:
    """store_sales: every store x category and every store's and the chain's day, exact."""
    rows = {
        (r["level"], r["store_id"], r["category"], r["age_restricted"]): r
        for r in sales.to_pylist()
    }
    assert set(rows) == set(truth["margins"])
    for key, (receipts, units, cents) in truth["margins"].items():
        assert (rows[key]["receipts"], rows[key]["units"], _cents(rows[key]["revenue"])) == (
            receipts,
            units,
            cents,
        )


def _check_purchases(truth: dict, purchases: pa.Table, k: int) -> None:
    rows = {
        (r["store_id"], r["age_group"], r["category"], r["age_restricted"]): r
        for r in purchases.to_pylist()
    }
    assert set(truth["cells"]) <= set(rows)  # every cell: published or marked withheld
    for key, row in rows.items():
        figures = (row["category_receipts"], row["units"], row["revenue"])
        if row["withheld"]:
            assert figures == (None, None, None)
            assert key[1] != "unknown"  # receipts without an age tell no one's age
            continue
        receipts, units, cents = truth["cells"][key]
        assert (figures[0], figures[1], _cents(figures[2])) == (receipts, units, cents)
        assert receipts >= k or key[1] == "unknown"  # no published cell under k
    # nothing is folded: the published cells and the withheld ones are the day's sales
    assert sum(_cents(r["revenue"]) for r in rows.values() if not r["withheld"]) == sum(
        cents for key, (_, _, cents) in truth["cells"].items() if not rows[key]["withheld"]
    )


def _check_groups(truth: dict, published: dict, stores: list[str], k: int) -> None:
    """age_group_receipts and age_group_shares: every group of every store, exact or withheld
    (the same groups in both); chain rows exact sums, withheld where a store withholds."""
    receipts = {
        (r["store_id"], r["age_group"]): r for r in published["age_group_receipts"].to_pylist()
    }
    shares = published["age_group_shares"].to_pylist()
    store_shares = {(r["store_id"], r["age_group"]): r for r in shares if r["level"] == "store"}
    for store in stores:
        matched = sum(n for (s, _), n in truth["matched"].items() if s == store)
        for group in [*GROUPS, "unknown"]:
            count, cents = truth["groups"].get((store, group), (0, 0))
            if group == "unknown":
                if count:
                    row = receipts[(store, group)]
                    assert not row["withheld"] and row["receipts"] == count
                    assert _cents(row["revenue"]) == cents
                continue
            row, share = receipts[(store, group)], store_shares.get((store, group))
            if share is None:  # no photographed shopper at the store: no shares, every group 0
                assert not matched and row["receipts"] == 0 and not row["withheld"]
                continue
            assert row["withheld"] == share["withheld"]
            if row["withheld"]:
                assert (row["receipts"], row["revenue"], share["receipts"], share["share"]) == (
                    None,
                    None,
                    None,
                    None,
                )
                assert share["corrected_share"] is None
                continue
            assert (
                row["receipts"]
                == count
                == share["receipts"]
                == truth["matched"].get((store, group), 0)
            )
            assert count == 0 or count >= k
            assert _cents(row["revenue"]) == cents
            assert abs(share["share"] - count / matched) < 1e-12
    chain = {r["age_group"]: r for r in shares if r["level"] == "chain"}
    for group, row in chain.items():
        withheld_somewhere = any(
            store_shares[(s, group)]["withheld"] for s in stores if (s, group) in store_shares
        )
        assert row["withheld"] == withheld_somewhere
        if not row["withheld"]:
            assert row["receipts"] == sum(truth["matched"].get((s, group), 0) for s in stores)


def _check_items(truth: dict, items: pa.Table, k: int) -> None:
    rows = {
        (r["store_id"], r["age_group"], r["item_kind"], r["item"]): r for r in items.to_pylist()
    }
    assert {key for key, n in truth["items"].items() if n} <= set(rows)
    for key, row in rows.items():
        if row["withheld"]:
            assert row["receipts"] is None
            continue
        assert row["receipts"] == truth["items"].get(key, 0)
        assert key[2] == "all" or row["receipts"] == 0 or row["receipts"] >= k


class Equations:
    """Linear equations over withheld figures: which unknowns each published sum adds up."""

    def __init__(self) -> None:
        self.unknowns: dict[tuple, int] = {}
        self.rows: list[set[int]] = []

    def unknown(self, key: tuple) -> int:
        return self.unknowns.setdefault(key, len(self.unknowns))

    def add(self, keys: list[tuple]) -> None:
        """A published figure that is the sum of these figures (published ones are constants:
        pass only the withheld ones)."""
        self.rows.append({self.unknown(key) for key in keys})

    def recovered(self, targets: list[tuple]) -> list[tuple]:
        """The targets whose value the equations fix (the unit vector in their span)."""
        if not self.rows:
            return []
        a = np.zeros((len(self.rows), len(self.unknowns)))
        for i, row in enumerate(self.rows):
            a[i, list(row)] = 1.0
        rank = np.linalg.matrix_rank(a)
        found = []
        for key in targets:
            unit = np.zeros((1, len(self.unknowns)))
            unit[0, self.unknowns[key]] = 1.0
            if np.linalg.matrix_rank(np.vstack([a, unit])) == rank:
                found.append(key)
        return found


def _check_not_recoverable(published: dict) -> None:
    """Solve every published sum for each withheld figure: none may be fixed by them."""
    purchases = published["age_group_purchases"].to_pylist()
    groups = published["age_group_receipts"].to_pylist()
    shares = published["age_group_shares"].to_pylist()
    items = published["age_group_item_receipts"].to_pylist()
    affinity = published["age_group_affinity"].to_pylist()
    stores = sorted({r["store_id"] for r in groups})
    # Money and units: the cells of a group add up to its revenue (age_group_receipts), those
    # of a column to store_sales, the groups to the store's day (store_sales 'all').
    for measure in ("revenue", "units", "category_receipts"):
        eq = Equations()
        targets = []
        for store in stores:
            cells = [r for r in purchases if r["store_id"] == store]
            for row in cells:
                if row["withheld"]:
                    targets.append(
                        key := (store, row["age_group"], row["category"], row["age_restricted"])
                    )
                    eq.unknown(key)
            for column in {(r["category"], r["age_restricted"]) for r in cells}:
                eq.add(
                    [
                        (store, r["age_group"], *column)
                        for r in cells
                        if r["withheld"] and (r["category"], r["age_restricted"]) == column
                    ]
                )
            if measure != "revenue":
                continue
            mine = [r for r in groups if r["store_id"] == store]
            for group in mine:
                own = [
                    (store, r["age_group"], r["category"], r["age_restricted"])
                    for r in cells
                    if r["withheld"] and r["age_group"] == group["age_group"]
                ]
                if group["withheld"]:
                    targets.append(total := (store, group["age_group"]))
                    eq.add([*own, total])  # 0 = cells - the group's total: both unknown
                else:
                    eq.add(own)
            eq.add([(store, g["age_group"]) for g in mine if g["withheld"]])
        assert eq.recovered(targets) == [], measure
    # Receipts of age groups: each store's add up to its matched receipts (public: store_sales
    # minus 'unknown'); chain rows over the stores; the 'all' items and the affinity's window
    # (one day here) state them again; the affinity's all_receipts sums a scope.
    eq = Equations()
    withheld = {(r["store_id"], r["age_group"]) for r in groups if r["withheld"]}
    for store in stores:
        eq.add([key for key in withheld if key[0] == store])
    for row in shares:
        if row["level"] == "chain" and not row["withheld"]:
            eq.add([(s, row["age_group"]) for s in stores if (s, row["age_group"]) in withheld])
    for row in items:
        key = (row["store_id"], row["age_group"])
        if row["item_kind"] == "all" and not row["withheld"]:
            eq.add([key] if key in withheld else [])
    for row in affinity:
        scope = stores if row["level"] == "chain" else [row["store_id"]]
        if row["group_receipts"] is not None:
            eq.add([(s, row["age_group"]) for s in scope if (s, row["age_group"]) in withheld])
        if row["all_receipts"] is not None:
            eq.add([key for key in withheld if key[0] in scope])
    assert eq.recovered(sorted(withheld)) == []
    # An item's receipts per group: the affinity's receipts and buyer_receipts sum them.
    eq = Equations()
    hidden = {
        (r["store_id"], r["age_group"], r["item_kind"], r["item"])
        for r in items
        if r["withheld"] and r["item_kind"] != "all"
    }
    for key in hidden:
        eq.unknown(key)
    for row in affinity:
        scope = stores if row["level"] == "chain" else [row["store_id"]]
        item = (row["item_kind"], row["item"])
        if row["receipts"] is not None:
            eq.add(
                [
                    key
                    for key in hidden
                    if key[0] in scope and key[1] == row["age_group"] and key[2:] == item
                ]
            )
        if row["buyer_receipts"] is not None:
            eq.add([key for key in hidden if key[0] in scope and key[2:] == item])
    assert eq.recovered(sorted(hidden)) == []
