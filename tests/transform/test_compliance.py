"""The alcohol compliance report: exact flags at the boundaries, returns, shots, rolling rates."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from agebatch.config import RunConfig, default_age_bounds
from agebatch.duck import connect
from agebatch.errors import InputError
from agebatch.predict.card import ModelCard
from agebatch.publish import publish_day
from agebatch.transform.compliance import (
    ComplianceInputs,
    compliance_history,
    compliance_inputs,
    error_margins,
)
from agebatch.transform.join import join_day
from tests.conftest import DAY, captures_frame, compliance

PAID = dt.datetime(2026, 11, 24, 18, 0, 0)
CATALOG = pa.table(
    {
        "sku": ["BEER", "WINE", "BREAD"],
        "category": ["beer", "wine", "bakery"],
        "age_restricted": [True, True, False],
    }
)
CARD = ModelCard.from_dict(
    {
        "name": "test",
        "version": "t1",
        "input": {"height": 64, "width": 64},
        "output": {"kind": "age"},
        "error": {"mae_by_band": {"13-17": 4.0, "18-24": 2.0, "25-34": 3.0, "65+": 9.0}},
    }
)


def _day(receipts: list[dict], shots: list[tuple]) -> tuple[pa.Table, pd.DataFrame]:
    """receipts: {id, store, cashier, items: [(sku, qty)]} each at its own register; shots:
    (receipt id, seconds before paying, age, or None if unreadable, or "no_face")."""
    lines = [
        {
            "receipt_id": r["id"],
            "store_id": r.get("store", "S1"),
            "register_id": r["id"],
            "cashier_id": r.get("cashier", "C1"),
            "paid_at": PAID,
            "sku": sku,
            "quantity": float(qty),
            "amount": 5.0 * qty,
        }
        for r in receipts
        for sku, qty in r["items"]
    ]
    stores = {r["id"]: r.get("store", "S1") for r in receipts}
    captures = captures_frame(
        *(
            (
                f"{rid}/{i}.jpg",
                stores[rid],
                rid,
                PAID - dt.timedelta(seconds=before),
                None if age == "no_face" else age,
                "no_face" if age == "no_face" else "ok" if age is not None else "unreadable",
            )
            for i, (rid, before, age) in enumerate(shots)
        )
    )
    return pa.Table.from_pylist(lines), captures


def _report(receipts, shots, policy: ComplianceInputs | None = None, day: dt.date = DAY):
    lines, captures = _day(receipts, shots)
    with connect() as con:
        return join_day(
            con,
            day=day,
            lines=lines,
            catalog=CATALOG,
            captures=captures,
            model_version="t1",
            age_bounds=default_age_bounds(),
            window_before_s=120,
            window_after_s=5,
            compliance=policy or compliance(),
            min_cell_receipts=1,  # every cell published (k = 1)
        )


def _reasons(ages: dict[str, float], policy: ComplianceInputs | None = None) -> dict:
    receipts = [{"id": rid, "items": [("BEER", 1)]} for rid in ages]
    tables = _report(receipts, [(rid, 10, age) for rid, age in ages.items()], policy)
    return {row["receipt_id"]: row["reason"] for row in tables["alcohol_checks"].to_pylist()}


AGES = {"a": 17.9, "b": 18.0, "c": 24.9, "d": 25.0, "e": 27.9, "f": 28.0}


def test_boundaries_without_margin() -> None:
    assert _reasons(AGES) == {
        "a": "under_legal_age",
        "b": "under_challenge_age",
        "c": "under_challenge_age",
    }


def test_boundaries_with_margin_of_one_band_error() -> None:
    # 17.9 and 18.0 fall in bands with MAE 4 and 2; 24.9 in 18-24 (2); 25.0-28.0 in 25-34 (3).
    policy = compliance(margin=1.0, error_margins=error_margins(CARD))
    assert _reasons(AGES, policy) == {
        "a": "under_legal_age",  # 17.9 < 18 + 4
        "b": "under_legal_age",  # 18.0 < 18 + 2
        "c": "under_challenge_age",  # 24.9 < 25 + 2
        "d": "under_challenge_age",  # 25.0 < 25 + 3
        "e": "under_challenge_age",  # 27.9 < 25 + 3
    }  # 28.0 is not under 28


def test_half_margin_and_other_ages() -> None:
    policy = ComplianceInputs(
        legal_age=21, challenge_age=21, margin=0.5, error_margins=error_margins(CARD)
    )
    assert _reasons({"x": 21.9, "y": 22.0, "z": 20.9}, policy) == {
        "x": "under_legal_age",  # 21.9 < 21 + 0.5 * 2
        "z": "under_legal_age",
    }


def test_per_store_policy_overrides_the_default() -> None:
    policy = pa.table({"store_id": ["S2"], "legal_age": [18.0], "challenge_age": [21.0]})
    receipts = [
        {"id": "r1", "store": "S1", "items": [("BEER", 1)]},
        {"id": "r2", "store": "S2", "items": [("BEER", 1)]},
    ]
    tables = _report(
        receipts, [("r1", 5, 23.0), ("r2", 5, 23.0)], compliance(store_policies=policy)
    )
    checks = tables["alcohol_checks"].to_pylist()
    assert [(c["receipt_id"], c["challenge_age"]) for c in checks] == [("r1", 25.0)]


def test_returns_are_not_sales() -> None:
    receipts = [
        {"id": "bought_and_returned", "items": [("BEER", 1), ("BEER", -1)]},
        {"id": "only_return", "items": [("WINE", -2), ("BREAD", 1)]},
        {"id": "net_one", "items": [("BEER", 2), ("BEER", -1), ("BREAD", 3)]},
        {"id": "no_alcohol", "items": [("BREAD", 2)]},
    ]
    shots = [(r["id"], 5, 16.0) for r in receipts]
    tables = _report(receipts, shots)
    checks = tables["alcohol_checks"].to_pylist()
    assert [c["receipt_id"] for c in checks] == ["net_one"]
    assert checks[0]["restricted_units"] == 1 and checks[0]["restricted_amount"] == 5.0
    assert checks[0]["restricted_skus"] == ["BEER"]
    assert tables["cashier_compliance"].to_pylist()[0]["restricted_receipts"] == 1


def test_several_shots_and_unchecked_sales() -> None:
    ids = ("two", "burst", "none", "bad", "faceless")
    receipts = [{"id": rid, "items": [("WINE", 1)]} for rid in ids]
    shots = [
        ("two", 60, 16.0),  # an earlier shot looked young …
        ("two", 10, 40.0),  # … the latest, of the shopper paying, does not
        ("burst", 3, None),  # two shots in the same second: the readable one counts
        ("burst", 3, 19.0),
        ("bad", 3, None),
        ("faceless", 3, "no_face"),  # a frame in which no face was found: unchecked too
    ]
    tables = _report(receipts, shots)
    checks = {c["receipt_id"]: c for c in tables["alcohol_checks"].to_pylist()}
    reasons = {rid: c["reason"] for rid, c in checks.items()}
    assert reasons == {
        "burst": "under_challenge_age",
        "none": "no_photo",
        "bad": "unreadable",
        "faceless": "no_face",
    }
    assert checks["faceless"]["predicted_age"] is None
    row = tables["cashier_compliance"].to_pylist()[0]
    assert (row["restricted_receipts"], row["flagged_receipts"], row["unchecked_receipts"]) == (
        5,
        1,
        3,
    )
    assert row["flagged_rate"] == 0.2


def _config(out: Path, **settings: object) -> RunConfig:
    return RunConfig.build(
        {"photos": out, "transactions": out, "catalog": out, "out": out, **settings}
    )


def _publish(out: Path, day: dt.date, receipts, shots) -> None:
    tables = _report(receipts, shots, compliance_inputs(_config(out), CARD, day), day)
    publish_day(out, day, tables, lambda: pa.table({"run_id": ["r"]}), f"run-{day}")


def _sales(n: int, young: int, cashier: str = "C1") -> tuple[list[dict], list[tuple]]:
    receipts = [
        {"id": f"{cashier}-{i}", "cashier": cashier, "items": [("BEER", 1)]} for i in range(n)
    ]
    shots = [(r["id"], 5, 20.0 if i < young else 40.0) for i, r in enumerate(receipts)]
    return receipts, shots


def test_rolling_rates_over_the_days_that_exist(tmp_path: Path) -> None:
    # 30, 10 and 3 days back: only the last two fall in the 28-day window, one in 7 days.
    _publish(tmp_path, DAY - dt.timedelta(days=30), *_sales(10, 10))
    _publish(tmp_path, DAY - dt.timedelta(days=10), *_sales(4, 1))
    _publish(tmp_path, DAY - dt.timedelta(days=3), *_sales(5, 2))
    _publish(tmp_path, DAY, *_sales(2, 1))
    report = pd.read_parquet(tmp_path / "cashier_compliance" / f"day={DAY}").iloc[0]
    assert (report["restricted_receipts"], report["flagged_receipts"]) == (2, 1)
    assert report["flagged_rate"] == 0.5
    assert (report["restricted_receipts_7d"], report["flagged_receipts_7d"]) == (7, 3)
    assert report["flagged_rate_7d"] == pytest.approx(3 / 7)
    assert (report["restricted_receipts_28d"], report["flagged_receipts_28d"]) == (11, 4)
    assert report["flagged_rate_28d"] == pytest.approx(4 / 11)
    assert (report["days_7d"], report["days_28d"]) == (2, 3)


def test_history_is_empty_on_a_first_day(tmp_path: Path) -> None:
    history, days_7d, days_28d = compliance_history(tmp_path, DAY)
    assert history.num_rows == 0 and (days_7d, days_28d) == (1, 1)


def test_margin_needs_a_card_with_errors(tmp_path: Path) -> None:
    bare = CARD.updated(error={})
    with pytest.raises(InputError, match="error per age band"):
        compliance_inputs(_config(tmp_path, margin=1), bare, DAY)
