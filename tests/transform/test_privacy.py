"""No published aggregate cell of fewer than k receipts, and sales still add up (issue #12).

Random small days go through the real join in DuckDB twice: with k = 1 (every cell, as before
suppression) and with k. Against the first, the second must publish every cell of k or more
receipts unchanged, move the rest into one remainder row per store that covers at least k
receipts and at least two cells (so no suppressed cell can be read off it), and keep revenue and
units equal to the day's sales to the cent. age_group_shares likewise, with chain rows that are
sums of published store rows.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from agebatch.config import age_group_labels, default_age_bounds
from agebatch.duck import connect
from agebatch.schema import SUPPRESSED, conform
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


def _cents(values) -> int:
    return sum(round(v * 100) for v in values)


@settings(max_examples=50, deadline=None, derandomize=True)
@given(day=days())
def test_suppressed_aggregates_keep_sales_whole_and_no_cell_under_k(day) -> None:
    lines, captures, k = day
    every = _join(lines, captures, 1)
    published = _join(lines, captures, k)
    _check_purchases(lines, every["age_group_purchases"], published["age_group_purchases"], k)
    _check_shares(every["age_group_shares"], published["age_group_shares"], k)
    _check_receipts(lines, every, published, k)


def _check_purchases(lines: pa.Table, every: pa.Table, published: pa.Table, k: int) -> None:
    sales = defaultdict(int)  # store -> cents
    store_receipts = defaultdict(set)
    for row in lines.to_pylist():
        sales[row["store_id"]] += round(row["amount"] * 100)
        store_receipts[row["store_id"]].add(row["receipt_id"])
    key = ("store_id", "age_group", "category", "age_restricted")
    cells = {tuple(r[c] for c in key): r for r in every.to_pylist()}
    rows = published.to_pylist()
    # Revenue and units add up to the day's sales, store by store, to the cent.
    assert _cents(r["revenue"] for r in rows) == sum(sales.values())
    for store, cents in sales.items():
        assert _cents(r["revenue"] for r in rows if r["store_id"] == store) == cents
    assert sum(r["units"] for r in rows) == sum(lines["quantity"].to_pylist())
    for store, receipts in store_receipts.items():
        mine = [r for r in rows if r["store_id"] == store]
        kept = [r for r in mine if r["age_group"] != SUPPRESSED]
        remainder = [r for r in mine if r["age_group"] == SUPPRESSED]
        # Published cells are the real cells, unchanged, and none is under k.
        for row in kept:
            assert row == cells[tuple(row[c] for c in key)]
            assert row["category_receipts"] >= k
        suppressed = [c for key, c in cells.items() if key[0] == store]
        suppressed = [c for c in suppressed if c not in kept]
        if not suppressed:
            assert not remainder
            continue
        (rest,) = remainder
        assert rest["category"] == SUPPRESSED and rest["age_restricted"] is None
        if len(receipts) < k:  # a store smaller than k: its day's total, one row
            assert mine == [rest] and rest["category_receipts"] == len(receipts)
            continue
        # The remainder cannot give a cell away: it covers k receipts and two cells at least.
        assert rest["category_receipts"] >= k and len(suppressed) >= 2
        assert _cents([rest["revenue"]]) == _cents(c["revenue"] for c in suppressed)


def _check_receipts(lines: pa.Table, every: dict, published: dict, k: int) -> None:
    """age_group_receipts: no group under k, receipts and sales add up store by store, and a
    group's revenue is what its published purchase cells already say (nothing to subtract)."""
    true = {(r["store_id"], r["age_group"]): r for r in every["age_group_receipts"].to_pylist()}
    rows = published["age_group_receipts"].to_pylist()
    cells = published["age_group_purchases"].to_pylist()
    for store in {s for s, _ in true}:
        mine = {r["age_group"]: r for r in rows if r["store_id"] == store}
        assert sum(r["receipts"] for r in mine.values()) == sum(
            r["receipts"] for (s, _), r in true.items() if s == store
        )
        sales = sum(round(r["amount"] * 100) for r in lines.to_pylist() if r["store_id"] == store)
        assert _cents(r["revenue"] for r in mine.values()) == sales
        for group, row in mine.items():
            if group == SUPPRESSED:
                # merged groups of k receipts, a store under k, or only suppressed cells' sales
                assert row["receipts"] >= k or len(mine) == 1 or row["receipts"] == 0
                continue
            assert row["receipts"] == true[(store, group)]["receipts"] >= k
            own = [c for c in cells if c["store_id"] == store and c["age_group"] == group]
            assert _cents([row["revenue"]]) == _cents(c["revenue"] for c in own)


def _check_shares(every: pa.Table, published: pa.Table, k: int) -> None:
    true = {
        (r["store_id"], r["age_group"]): r["receipts"]
        for r in every.to_pylist()
        if r["level"] == "store"
    }
    rows = published.to_pylist()
    stores = sorted({store for store, _ in true})
    regular = []
    for store in stores:
        mine = {r["age_group"]: r for r in rows if r["level"] == "store" and r["store_id"] == store}
        total = sum(n for (s, _), n in true.items() if s == store)
        assert sum(r["receipts"] for r in mine.values()) == total
        assert abs(sum(r["share"] for r in mine.values()) - 1) < 1e-9
        merged = [g for g in GROUPS if g not in mine]
        if total < k:  # fewer than k photographed shoppers: one row, no group
            assert list(mine) == [SUPPRESSED]
            continue
        regular.append(store)
        for group, row in mine.items():
            if group != SUPPRESSED:
                assert row["receipts"] == true[(store, group)]
                assert row["receipts"] == 0 or row["receipts"] >= k
        if merged:
            assert mine[SUPPRESSED]["receipts"] >= k and len(merged) >= 2
            assert mine[SUPPRESSED]["corrected_share"] is None
            assert all(true[(store, g)] > 0 for g in merged)
    chain = {r["age_group"]: r["receipts"] for r in rows if r["level"] == "chain"}
    if not regular:
        assert not chain
        return
    # Chain rows add nothing to the store rows: published groups are sums of published cells.
    for group, receipts in chain.items():
        if group != SUPPRESSED:
            assert receipts == sum(true[(s, group)] for s in regular)
            assert all(
                group in {r["age_group"] for r in rows if r["store_id"] == s} for s in regular
            )
    assert sum(chain.values()) == sum(n for (s, _), n in true.items() if s in regular)
