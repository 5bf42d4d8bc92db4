"""The join's edge cases, on tiny inline tables in a real DuckDB."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pytest

from agebatch.config import default_age_bounds
from agebatch.duck import connect
from agebatch.transform.join import join_day
from tests.conftest import DAY, captures_frame, compliance

PAID = dt.datetime(2026, 11, 24, 12, 0, 0)


def _lines(*receipts: tuple[str, str, str, dt.datetime]) -> pa.Table:
    """One line item per receipt: (receipt_id, store_id, register_id, paid_at)."""
    rows = [
        {
            "receipt_id": r,
            "store_id": s,
            "register_id": reg,
            "cashier_id": "C1",
            "paid_at": t,
            "sku": "BEE000",
            "quantity": 1.0,
            "amount": 4.5,
        }
        for r, s, reg, t in receipts
    ]
    return pa.Table.from_pylist(rows)


CATALOG = pa.table({"sku": ["BEE000"], "category": ["beer"], "age_restricted": [True]})


def _join(lines: pa.Table, captures: pd.DataFrame, **options) -> dict[str, pa.Table]:
    with connect() as con:
        return join_day(
            con,
            day=DAY,
            lines=lines,
            catalog=CATALOG,
            captures=captures,
            model_version="m1",
            age_bounds=options.get("age_bounds", default_age_bounds()),
            window_before_s=options.get("before", 120.0),
            window_after_s=options.get("after", 5.0),
            compliance=compliance(),
            min_cell_receipts=1,  # every cell published (k = 1)
        )


def _receipts(lines: pa.Table, captures: pd.DataFrame, **options) -> pd.DataFrame:
    return _join(lines, captures, **options)["receipt_ages"].to_pandas().set_index("receipt_id")


def _one(offset_s: float, register: str = "R1", **options) -> pd.Series:
    """The receipt_ages row of one receipt paid at PAID, with one capture at PAID + offset."""
    captures = captures_frame(
        ("S1/R1/a.jpg", "S1", register, PAID + dt.timedelta(seconds=offset_s), 30.0, "ok")
    )
    return _receipts(_lines(("r1", "S1", "R1", PAID)), captures, **options).loc["r1"]


@pytest.mark.parametrize(
    ("offset_s", "status"),
    [(-120, "matched"), (-121, "no_photo"), (0, "matched"), (5, "matched"), (6, "no_photo")],
)
def test_window_edges(offset_s: float, status: str) -> None:
    row = _one(offset_s)
    assert row["status"] == status
    assert (row["photo"] == "S1/R1/a.jpg") == (status == "matched")


def test_window_is_configurable() -> None:
    assert _one(-121, before=130.0)["status"] == "matched"
    assert _one(3, after=2.0)["status"] == "no_photo"


def test_wrong_register_is_no_photo() -> None:
    row = _one(-10, register="R2")
    assert row["status"] == "no_photo"
    assert pd.isna(row["predicted_age"]) and pd.isna(row["age_group"])


def test_latest_of_two_captures_wins() -> None:
    captures = captures_frame(
        ("early.jpg", "S1", "R1", PAID - dt.timedelta(seconds=60), 50.0, "ok"),
        ("late.jpg", "S1", "R1", PAID - dt.timedelta(seconds=10), 20.0, "ok"),
    )
    row = _receipts(_lines(("r1", "S1", "R1", PAID)), captures).loc["r1"]
    assert (row["photo"], row["predicted_age"], row["age_group"]) == ("late.jpg", 20.0, "18-24")


def test_no_capture_at_all() -> None:
    row = _receipts(_lines(("r1", "S1", "R1", PAID)), captures_frame()).loc["r1"]
    assert row["status"] == "no_photo"


def test_unreadable_photo_is_counted_not_guessed() -> None:
    captures = captures_frame(
        ("bad.jpg", "S1", "R1", PAID - dt.timedelta(seconds=5), None, "unreadable")
    )
    row = _receipts(_lines(("r1", "S1", "R1", PAID)), captures).loc["r1"]
    assert row["status"] == "unreadable"
    assert row["photo"] == "bad.jpg" and pd.isna(row["predicted_age"])


def test_photo_without_a_face_is_no_face_not_guessed() -> None:
    captures = captures_frame(
        ("empty.jpg", "S1", "R1", PAID - dt.timedelta(seconds=5), None, "no_face"),
    )
    tables = _join(_lines(("r1", "S1", "R1", PAID)), captures)
    row = tables["receipt_ages"].to_pandas().set_index("receipt_id").loc["r1"]
    assert (row["status"], row["photo"]) == ("no_face", "empty.jpg")
    assert pd.isna(row["predicted_age"]) and pd.isna(row["age_group"])
    purchases = tables["age_group_purchases"].to_pandas()
    assert purchases["age_group"].tolist() == ["unknown"]
    assert tables["age_group_shares"].num_rows == 0  # only receipts with an age are shared


def test_burst_prefers_the_shot_with_a_face() -> None:
    at = PAID - dt.timedelta(seconds=5)
    captures = captures_frame(
        ("t.jpg", "S1", "R1", at, None, "no_face"),
        ("t_1.jpg", "S1", "R1", at, 52.0, "ok"),
    )
    row = _receipts(_lines(("r1", "S1", "R1", PAID)), captures).loc["r1"]
    assert (row["photo"], row["status"], row["age_group"]) == ("t_1.jpg", "matched", "45-54")


def test_burst_in_one_second_prefers_the_readable_shot() -> None:
    at = PAID - dt.timedelta(seconds=5)
    captures = captures_frame(
        ("t.jpg", "S1", "R1", at, 40.0, "ok"),
        ("t_1.jpg", "S1", "R1", at, None, "unreadable"),
    )
    row = _receipts(_lines(("r1", "S1", "R1", PAID)), captures).loc["r1"]
    assert (row["photo"], row["status"]) == ("t.jpg", "matched")


def test_manifest_receipt_ids_win_over_time() -> None:
    captures = captures_frame(
        # Named for r1 although taken long before and at another register.
        ("named.jpg", "S1", "R9", PAID - dt.timedelta(hours=1), 70.0, "ok", "r1"),
        # Closest in time to r1, but r2's own by name: not used for r1.
        ("r2.jpg", "S1", "R1", PAID - dt.timedelta(seconds=3), 16.0, "ok", "r2"),
        ("free.jpg", "S1", "R1", PAID - dt.timedelta(seconds=20), 33.0, "ok"),
    )
    lines = _lines(("r1", "S1", "R1", PAID), ("r2", "S1", "R1", PAID + dt.timedelta(hours=2)))
    rows = _receipts(lines, captures)
    assert rows.loc["r1", "photo"] == "named.jpg" and rows.loc["r1", "age_group"] == "65+"
    assert rows.loc["r2", "photo"] == "r2.jpg" and rows.loc["r2", "age_group"] == "<18"


@pytest.mark.parametrize(
    ("age", "group"),
    [
        (17.99, "<18"),
        (18.0, "18-24"),
        (24.99, "18-24"),
        (25.0, "25-34"),
        (64.9, "55-64"),
        (65.0, "65+"),
    ],
)
def test_age_group_boundaries(age: float, group: str) -> None:
    captures = captures_frame(("a.jpg", "S1", "R1", PAID, age, "ok"))
    assert _receipts(_lines(("r1", "S1", "R1", PAID)), captures).loc["r1", "age_group"] == group


def test_custom_age_groups() -> None:
    captures = captures_frame(("a.jpg", "S1", "R1", PAID, 40.0, "ok"))
    row = _receipts(_lines(("r1", "S1", "R1", PAID)), captures, age_bounds=(21, 40)).loc["r1"]
    assert row["age_group"] == "40+"


def test_purchases_put_receipts_without_age_in_unknown_and_add_up() -> None:
    captures = captures_frame(("a.jpg", "S1", "R1", PAID - dt.timedelta(seconds=5), 30.0, "ok"))
    lines = _lines(("r1", "S1", "R1", PAID), ("r2", "S1", "R2", PAID))
    tables = _join(lines, captures)
    purchases = tables["age_group_purchases"].to_pandas().set_index("age_group")
    assert purchases.loc["25-34", "category_receipts"] == 1
    assert purchases.loc["unknown", "category_receipts"] == 1
    assert purchases["revenue"].sum() == Decimal("9.00")  # exact: DECIMAL(18, 2)
    assert purchases.loc["25-34", ["age_group_low", "age_group_high"]].tolist() == [25, 35]
    assert purchases.loc["unknown", ["age_group_low", "age_group_high"]].isna().all()
    receipts = tables["age_group_receipts"].to_pandas().set_index("age_group")
    # every age group is published, empty ones as exact zeros (k = 1: nothing withheld)
    assert receipts["receipts"].to_dict() == {
        "<18": 0,
        "18-24": 0,
        "25-34": 1,
        "35-44": 0,
        "45-54": 0,
        "55-64": 0,
        "65+": 0,
        "unknown": 1,
    }
    assert receipts.loc["25-34", "revenue"] == Decimal("4.50")
    assert receipts.loc["unknown", "revenue"] == Decimal("4.50")
    assert receipts["revenue"].sum() == Decimal("9.00") and not receipts["withheld"].any()


def test_purchases_split_a_category_by_age_restriction_and_receipts_add_up() -> None:
    # r1 buys beer and alcohol-free beer (one category, two restrictions) and bread; r2 bread.
    catalog = pa.table(
        {
            "sku": ["BEE000", "BEE001", "BAK000"],
            "category": ["beer", "beer", "bakery"],
            "age_restricted": [True, False, False],
        }
    )
    lines = pa.Table.from_pylist(
        [
            {
                "receipt_id": r,
                "store_id": "S1",
                "register_id": "R1",
                "cashier_id": "C1",
                "paid_at": PAID,
                "sku": sku,
                "quantity": Decimal(q),
                "amount": Decimal(a),
            }
            for r, sku, q, a in [
                ("r1", "BEE000", "2", "9.00"),
                ("r1", "BEE001", "1", "1.10"),
                ("r1", "BAK000", "0.455", "1.37"),
                ("r2", "BAK000", "1", "1.20"),
                ("r2", "SKU404", "1", "0.10"),
            ]
        ]
    )
    with connect() as con:
        tables = join_day(
            con,
            day=DAY,
            lines=lines,
            catalog=catalog,
            captures=captures_frame(),
            model_version="m1",
            age_bounds=default_age_bounds(),
            window_before_s=120.0,
            window_after_s=5.0,
            compliance=compliance(),
            min_cell_receipts=1,  # every cell published (k = 1)
        )
    purchases = tables["age_group_purchases"].to_pylist()
    rows = {(p["category"], p["age_restricted"]): p for p in purchases}
    assert set(rows) == {
        ("beer", True),
        ("beer", False),
        ("bakery", False),
        ("uncategorised", False),
    }
    assert rows[("beer", True)]["revenue"] == Decimal("9.00")
    assert rows[("bakery", False)]["units"] == Decimal("1.455")  # weighed goods stay exact
    assert rows[("bakery", False)]["category_receipts"] == 2
    # Summed over categories the category counts say 5 receipts; the day had 2.
    assert sum(p["category_receipts"] for p in purchases) == 5
    groups = tables["age_group_receipts"].to_pylist()
    assert {r["age_group"] for r in groups if r["receipts"]} == {"unknown"}  # the others are 0
    (receipts,) = [r for r in groups if r["age_group"] == "unknown"]
    assert receipts["receipts"] == 2
    assert receipts["revenue"] == sum(p["revenue"] for p in purchases) == Decimal("12.77")
    assert tables["alcohol_checks"].column("restricted_amount").to_pylist() == [Decimal("9.00")]
