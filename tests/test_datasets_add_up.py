"""On generated busy days the published figures add up exactly: revenue to the day's sales in
every dataset, receipts to the day's receipts, category_receipts to what each category saw."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest

from agebatch.config import default_age_bounds
from agebatch.duck import connect
from agebatch.transform.join import join_day
from tests.conftest import DAY, captures_frame, compliance

# sku -> (category, age_restricted); SKU9 is not in the catalog (uncategorised), and "beer"
# holds a restricted and an unrestricted sku.
SKUS = {
    "BEE0": ("beer", True),
    "BEE1": ("beer", False),
    "WIN0": ("wine", True),
    "PRO0": ("produce", False),
    "BAK0": ("bakery", False),
}
CATALOG = pa.table(
    {
        "sku": list(SKUS),
        "category": [c for c, _ in SKUS.values()],
        "age_restricted": [r for _, r in SKUS.values()],
    }
)

LINES = pa.schema(
    [
        *((name, pa.string()) for name in ("receipt_id", "store_id", "register_id", "cashier_id")),
        ("paid_at", pa.timestamp("us")),
        ("sku", pa.string()),
        ("quantity", pa.decimal128(12, 3)),
        ("amount", pa.decimal128(18, 2)),
    ]
)


def _day(seed: int) -> tuple[pa.Table, list[tuple]]:
    """A busy day: lines (weighed goods, returns, unknown skus) and captures (some unreadable,
    some receipts without a photo)."""
    rng = np.random.default_rng(seed)
    lines, captures = [], []
    start = dt.datetime.combine(DAY, dt.time(8))
    for n in range(int(rng.integers(50, 300))):
        store, register = f"S{rng.integers(1, 4)}", f"R{rng.integers(1, 3)}"
        paid = start + dt.timedelta(seconds=600 * n + int(rng.integers(0, 60)))
        for _ in range(int(rng.integers(1, 6))):
            sku = str(rng.choice([*SKUS, "SKU9"]))
            weighed = sku == "PRO0"
            qty = (
                Decimal(int(rng.integers(1, 2500))) / 1000
                if weighed
                else Decimal(int(rng.integers(1, 4)))
            )
            qty = -qty if rng.random() < 0.05 else qty
            amount = (qty * Decimal(int(rng.integers(50, 2000))) / 100).quantize(Decimal("0.01"))
            lines.append((f"r{n}", store, register, "C1", paid, sku, qty, amount))
        if rng.random() < 0.9:
            age = float(rng.uniform(14, 80))
            status = "unreadable" if rng.random() < 0.05 else "ok"
            shot = paid - dt.timedelta(seconds=int(rng.integers(1, 60)))
            captures.append(
                (f"{n}.jpg", store, register, shot, None if status != "ok" else age, status)
            )
    table = pa.Table.from_pylist(
        [dict(zip(LINES.names, row, strict=True)) for row in lines],
        schema=LINES,
    )
    return table, captures


@pytest.mark.parametrize("seed", range(6))
def test_every_dataset_adds_up_to_the_day(seed: int) -> None:
    lines, captures = _day(seed)
    with connect() as con:
        tables = join_day(
            con,
            day=DAY,
            lines=lines,
            catalog=CATALOG,
            captures=captures_frame(*captures),
            model_version="m1",
            age_bounds=default_age_bounds(),
            window_before_s=120.0,
            window_after_s=5.0,
            compliance=compliance(),
            min_cell_receipts=1,  # every cell published (k = 1)
        )
    items = lines.to_pylist()
    sales = sum(item["amount"] for item in items)
    purchases = tables["age_group_purchases"].to_pylist()
    receipts = tables["age_group_receipts"].to_pylist()
    assert sum(p["revenue"] for p in purchases) == sales == sum(r["revenue"] for r in receipts)
    assert sum(p["units"] for p in purchases) == sum(item["quantity"] for item in items)
    # store_sales: every store x category (and the chain's) to the cent, from the lines
    margins = {
        (r["level"], r["store_id"], r["category"], r["age_restricted"]): r["revenue"]
        for r in tables["store_sales"].to_pylist()
    }
    expected: dict[tuple, Decimal] = {}
    for item in items:
        column = SKUS.get(item["sku"], ("uncategorised", False))
        for key in (
            ("store", item["store_id"], *column),
            ("store", item["store_id"], "all", None),
            ("chain", None, *column),
            ("chain", None, "all", None),
        ):
            expected[key] = expected.get(key, Decimal(0)) + item["amount"]
    assert margins == expected
    assert sum(r["receipts"] for r in receipts) == len({item["receipt_id"] for item in items})
    # Every receipt is in exactly one age group: a store's groups add up to its receipts.
    ages = {r["receipt_id"]: r for r in tables["receipt_ages"].to_pylist()}
    for row in receipts:
        mine = [
            i
            for i in items
            if i["store_id"] == row["store_id"]
            and (ages[i["receipt_id"]]["age_group"] or "unknown") == row["age_group"]
        ]
        assert row["receipts"] == len({i["receipt_id"] for i in mine})
        assert row["revenue"] == sum(i["amount"] for i in mine)
    # category_receipts: the receipts with a line of that category and restriction.
    for row in purchases:
        category, restricted = row["category"], row["age_restricted"]
        seen = {
            i["receipt_id"]
            for i in items
            if i["store_id"] == row["store_id"]
            and (ages[i["receipt_id"]]["age_group"] or "unknown") == row["age_group"]
            and SKUS.get(i["sku"], ("uncategorised", False)) == (category, restricted)
        }
        assert row["category_receipts"] == len(seen)
    assert sum(p["category_receipts"] for p in purchases) >= sum(r["receipts"] for r in receipts)
    # Shares' store rows add up to the matched receipts, the chain's to the same.
    shares = tables["age_group_shares"].to_pylist()
    matched = sum(1 for r in ages.values() if r["status"] == "matched")
    for level in ("store", "chain"):
        assert sum(s["receipts"] for s in shares if s["level"] == level) == matched
