"""Missed ID checks from the till's age checks, the flag threshold chosen from a card's curve,
and the rolling missed-check figures, on exact small days and generated busy days."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from agebatch.config import RunConfig, default_age_bounds
from agebatch.duck import connect
from agebatch.errors import InputError
from agebatch.inputs.transactions import read_lines, read_transactions, receipt_checks
from agebatch.predict.card import ModelCard
from agebatch.publish import partition, publish_day
from agebatch.transform.compliance import (
    ComplianceInputs,
    choose_threshold,
    compliance_history,
    compliance_inputs,
    curve_table,
    error_margins,
)
from agebatch.transform.join import join_day
from tests.conftest import DAY, captures_frame, compliance

PAID = dt.datetime(2026, 11, 24, 18, 0, 0)
CATALOG = pa.table(
    {"sku": ["BEER", "BREAD"], "category": ["beer", "bakery"], "age_restricted": [True, False]}
)
# A curve like a real model's: teen miss falls and adult flags rise with the threshold.
CURVE = {
    "faces": "generated",
    "split": "all",
    "test_time_augmentation": "none",
    "n_teens": 100,
    "n_under_18": 400,
    "n_adults": 1000,
    "points": [
        {"threshold": t, "teen_miss": miss, "under_18_miss": miss / 3, "adult_flag": flag}
        for t, miss, flag in [
            (20, 0.5, 0.01),
            (25, 0.21, 0.09),
            (26, 0.18, 0.13),
            (27, 0.10, 0.17),
            (28, 0.08, 0.21),
            (35, 0.02, 0.5),
        ]
    ],
}
CARD = ModelCard.from_dict(
    {
        "name": "test",
        "version": "t1",
        "input": {"height": 64, "width": 64},
        "output": {"kind": "age"},
        "error": {"mae_by_band": {"13-17": 4.0, "18-24": 2.0, "25-34": 3.0}},
        "operating_curve": CURVE,
    }
)
NO_CHECK = ("not_asked", None)  # None: the receipt's age_check was empty


def _report(
    sales: list[tuple],
    policy: ComplianceInputs | None = None,
    checks_column: bool = True,
    day: dt.date = DAY,
) -> dict[str, pa.Table]:
    """sales: (receipt id, predicted age or None for no photo, age_check or None, cashier[,
    units of beer]) each at its own register; the till's age_check column is left out when
    checks_column is False."""
    lines, shots, checks = [], [], []
    for sale in sales:
        rid, age, check, cashier, units = (*sale, 1)[:5]
        for sku, quantity in (("BEER", units), ("BREAD", 1)):
            lines.append(
                {
                    "receipt_id": rid,
                    "store_id": "S1",
                    "register_id": rid,
                    "cashier_id": cashier,
                    "paid_at": PAID,
                    "sku": sku,
                    "quantity": float(quantity),
                    "amount": 5.0 * quantity,
                }
            )
        if age is not None:
            shots.append((f"{rid}.jpg", "S1", rid, PAID - dt.timedelta(seconds=5), age, "ok"))
        if check is not None:
            checks.append({"receipt_id": rid, "age_check": check})
    base = policy or compliance()
    inputs = ComplianceInputs(
        **{**base.__dict__, "age_checks": _checks(checks) if checks_column else None}
    )
    with connect() as con:
        return join_day(
            con,
            day=day,
            lines=pa.Table.from_pylist(lines),
            catalog=CATALOG,
            captures=captures_frame(*shots),
            model_version="t1",
            age_bounds=default_age_bounds(),
            window_before_s=120,
            window_after_s=5,
            compliance=inputs,
            min_cell_receipts=1,  # every cell published (k = 1)
        )


def _checks(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(
        rows, pa.schema([("receipt_id", pa.string()), ("age_check", pa.string())])
    )


def _rows(tables: dict[str, pa.Table]) -> dict[str, dict]:
    return {row["receipt_id"]: row for row in tables["alcohol_checks"].to_pylist()}


def test_every_outcome_on_a_young_and_an_older_shopper() -> None:
    sales = [
        ("young_seen", 19.0, "id_seen", "C1"),
        ("young_not_asked", 19.0, "not_asked", "C1"),
        ("young_empty", 22.0, None, "C1"),
        ("young_refused_sold", 16.0, "id_refused", "C1"),
        ("older_not_asked", 40.0, "not_asked", "C1"),
        ("older_refused_sold", 40.0, "id_refused", "C1"),
        ("unseen_not_asked", None, "not_asked", "C1"),
    ]
    rows = _rows(_report(sales))
    got = {rid: (r["reason"], r["age_check"], r["missed_check"]) for rid, r in rows.items()}
    assert got == {
        "young_seen": ("under_challenge_age", "id_seen", False),  # checked: not missed
        "young_not_asked": ("under_challenge_age", "not_asked", True),
        "young_empty": ("under_challenge_age", "not_recorded", True),
        "young_refused_sold": ("sold_after_refusal", "id_refused", False),
        "older_refused_sold": ("sold_after_refusal", "id_refused", False),
        "unseen_not_asked": ("no_photo", "not_asked", False),  # unchecked, not a missed check
    }  # older_not_asked: looked 40, nobody had to ask
    (cashier,) = _report(sales)["cashier_compliance"].to_pylist()
    assert (cashier["restricted_receipts"], cashier["flagged_receipts"]) == (7, 4)
    assert (cashier["unchecked_receipts"], cashier["missed_receipts"]) == (1, 2)
    assert cashier["missed_rate"] == 0.5 and cashier["sold_after_refusal_receipts"] == 2


def test_a_refusal_that_took_the_items_off_is_not_a_sale() -> None:
    rows = _rows(_report([("voided", 16.0, "id_refused", "C1", 0)]))
    assert rows == {}


def test_without_the_column_the_report_is_as_before_and_says_so() -> None:
    sales = [("a", 17.0, None, "C1"), ("b", 24.0, None, "C1"), ("c", 30.0, None, "C1")]
    tables = _report(sales, checks_column=False)
    got = {
        rid: (r["reason"], r["age_check"], r["missed_check"]) for rid, r in _rows(tables).items()
    }
    assert got == {"a": ("under_legal_age", None, None), "b": ("under_challenge_age", None, None)}
    (cashier,) = tables["cashier_compliance"].to_pylist()
    assert cashier["flagged_receipts"] == 2
    assert cashier["missed_receipts"] is None and cashier["missed_rate"] is None
    assert cashier["sold_after_refusal_receipts"] is None


@pytest.mark.parametrize("seed", range(8))
def test_generated_busy_days_follow_the_rule(seed: int) -> None:
    """On random days: the column changes no age reason, adds only sold_after_refusal rows,
    and missed_check is exactly 'looked under the threshold and no check recorded'."""
    rng = np.random.default_rng(seed)
    outcomes = ["id_seen", "id_refused", "not_asked", None]
    sales = [
        (
            f"r{i:03d}",
            None if rng.random() < 0.1 else float(np.round(rng.uniform(10, 60), 1)),
            outcomes[int(rng.integers(4))],
            f"C{int(rng.integers(3))}",
            int(rng.integers(-1, 3)),  # -1 and 0: no restricted sale on the receipt
        )
        for i in range(120)
    ]
    policy = compliance(legal_age=18, challenge_age=float(rng.integers(21, 30)))
    before = _rows(_report(sales, policy, checks_column=False))
    after_tables = _report(sales, policy)
    after = _rows(after_tables)
    expected_missed: dict[str, int] = {}
    for rid, age, check, cashier, units in sales:
        if units <= 0:
            assert rid not in after
            continue
        young = age is not None and age < policy.challenge_age
        listed = young or age is None or check == "id_refused"
        assert (rid in after) == listed
        if rid in before:
            assert before[rid]["missed_check"] is None
            assert after[rid]["reason"] == (
                "sold_after_refusal" if check == "id_refused" else before[rid]["reason"]
            )
        if listed:
            assert after[rid]["missed_check"] == (young and check in NO_CHECK)
            assert after[rid]["age_check"] == (check or "not_recorded")
        expected_missed[cashier] = expected_missed.get(cashier, 0) + (young and check in NO_CHECK)
    report = {r["cashier_id"]: r for r in after_tables["cashier_compliance"].to_pylist()}
    assert {c: r["missed_receipts"] for c, r in report.items()} == {
        c: n for c, n in expected_missed.items() if c in report
    }
    for row in report.values():
        flagged = row["flagged_receipts"]
        assert row["missed_rate"] == (row["missed_receipts"] / flagged if flagged else None)


# --- the flag threshold chosen from the card's curve ---


@pytest.mark.parametrize(
    ("max_teen_miss", "threshold"),
    [(0.5, 20), (0.3, 25), (0.21, 25), (0.2099, 26), (0.10, 27), (0.09, 28), (0.02, 35)],
)
def test_the_lowest_threshold_within_the_teen_miss(max_teen_miss: float, threshold: int) -> None:
    assert choose_threshold(CARD, max_teen_miss).threshold == threshold


@pytest.mark.parametrize("seed", range(20))
def test_the_choice_is_the_lowest_threshold_that_meets_it(seed: int) -> None:
    rng = np.random.default_rng(seed)
    misses = np.sort(rng.uniform(0, 0.6, 16))[::-1]  # falling, as a measured curve does
    points = [
        {"threshold": 20 + i, "teen_miss": m, "under_18_miss": m / 2, "adult_flag": i / 20}
        for i, m in enumerate(misses)
    ]
    card = CARD.updated(operating_curve={**CURVE, "points": points})
    target = float(rng.uniform(misses[-1], 0.6))
    chosen = choose_threshold(card, target)
    assert chosen.teen_miss <= target
    assert all(p["teen_miss"] > target for p in points if p["threshold"] < chosen.threshold)


def test_no_threshold_or_no_curve_is_one_sentence() -> None:
    with pytest.raises(InputError, match=r"the highest, 35, misses 2\.0%"):
        choose_threshold(CARD, 0.01)
    bare = CARD.updated(operating_curve=None)
    with pytest.raises(InputError, match=r"needs the operating curve .* it has none"):
        choose_threshold(bare, 0.1)
    # A curve measured without flip averaging says nothing about the model run with it.
    flipped = CARD.updated(test_time_augmentation="flip")
    with pytest.raises(InputError, match="measured with test_time_augmentation 'none'"):
        choose_threshold(flipped, 0.1)
    assert curve_table(flipped).num_rows == 0


def _config(out: Path, **settings: object) -> RunConfig:
    return RunConfig.build(
        {"photos": out, "transactions": out, "catalog": out, "out": out, **settings}
    )


def test_the_chosen_threshold_replaces_the_challenge_age(tmp_path: Path) -> None:
    policy = compliance_inputs(_config(tmp_path, max_teen_miss=0.10), CARD, DAY)
    assert policy.flag_threshold == 27 and policy.expected(27) == (0.10, 0.17)
    store_21 = pa.table({"store_id": ["S1"], "legal_age": [18.0], "challenge_age": [21.0]})
    policy = ComplianceInputs(**{**policy.__dict__, "store_policies": store_21})
    sales = [("a", 26.9, "not_asked", "C1"), ("b", 27.0, "not_asked", "C1")]
    rows = _rows(_report(sales, policy))
    assert list(rows) == ["a"]  # 26.9 < 27 although the store challenges under 21 only
    row = rows["a"]
    assert (row["reason"], row["missed_check"], row["challenge_age"]) == (
        "under_challenge_age",
        True,
        21.0,
    )
    assert (row["flag_threshold"], row["expected_teen_miss"], row["expected_adult_flag"]) == (
        27.0,
        0.10,
        0.17,
    )


def test_expected_rates_at_the_challenge_age_and_none_off_the_curve(tmp_path: Path) -> None:
    sales = [("a", 20.0, "id_seen", "C1")]
    plain = compliance_inputs(_config(tmp_path), CARD, DAY)
    row = _rows(_report(sales, plain))["a"]
    assert (row["flag_threshold"], row["expected_teen_miss"]) == (25.0, 0.21)
    assert plain.flag_threshold == 25 and plain.expected(25) == (0.21, 0.09)
    # With a margin the threshold moves with the band's error (20 is in 18-24: 2 years), and
    # the curve, measured for one threshold at every age, says nothing (27 is on it, unread).
    margin = ComplianceInputs(
        **{**plain.__dict__, "margin": 1.0, "error_margins": error_margins(CARD)}
    )
    row = _rows(_report(sales, margin))["a"]
    assert (row["flag_threshold"], row["expected_teen_miss"]) == (27.0, None)
    assert margin.flag_threshold is None and margin.expected(None) == (None, None)


def test_margin_and_max_teen_miss_do_not_mix(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="give one of max_teen_miss and margin"):
        _config(tmp_path, max_teen_miss=0.1, margin=1)


# --- the till's age_check column ---


def test_reading_the_optional_column(tmp_path: Path) -> None:
    base = "receipt_id,store_id,register_id,cashier_id,paid_at,sku,quantity,amount"
    line = "S1,R1,C1,2026-11-24 10:00:00,BEER,1,5.00"
    (tmp_path / f"{DAY}.csv").write_text(f"{base}\nr1,{line}\n")
    assert receipt_checks(read_transactions(tmp_path, DAY, "Europe/London")) is None
    rows = [f"r1,{line},id_seen", f"r1,{line},", f"r2,{line}, not_asked ", f"r3,{line},"]
    (tmp_path / f"{DAY}.csv").write_text(f"{base},age_check\n" + "\n".join(rows) + "\n")
    checks = receipt_checks(read_transactions(tmp_path, DAY, "Europe/London")).to_pylist()
    assert {r["receipt_id"]: r["age_check"] for r in checks} == {
        "r1": "id_seen",  # other lines of the receipt may leave it empty
        "r2": "not_asked",
    }  # r3: empty, not recorded


@pytest.mark.parametrize(
    ("values", "rule"),
    [(["ID"], "age_check"), (["id_seen", "not_asked"], "age_check_outcomes")],
)
def test_bad_age_checks_quarantine_their_receipt(
    tmp_path: Path, values: list[str], rule: str
) -> None:
    frame = pd.DataFrame(
        {
            "receipt_id": ["r1"] * len(values),
            "store_id": "S1",
            "register_id": "R1",
            "cashier_id": "C1",
            "paid_at": pd.Timestamp(PAID),
            "sku": "BEER",
            "quantity": 1.0,
            "amount": 5.0,
            "age_check": values,
        }
    )
    ok = frame.iloc[:1].assign(receipt_id="r2", age_check="id_seen")
    pd.concat([frame, ok]).to_parquet(tmp_path / f"{DAY}.parquet")
    read = read_lines(tmp_path, DAY, "Europe/London")
    listed = read.quarantined.select(["receipt_id", "rule"]).to_pylist()
    assert listed == [{"receipt_id": "r1", "rule": rule}]
    assert read.lines["receipt_id"].to_pylist() == ["r2"]


# --- rolling missed-check figures from earlier published days ---


def _publish(out: Path, day: dt.date, sales: list[tuple], checks_column: bool = True) -> None:
    policy = compliance_inputs(_config(out), CARD, day)
    tables = _report(sales, policy, checks_column=checks_column, day=day)
    publish_day(out, day, tables, lambda: pa.table({"run_id": ["r"]}), f"run-{day}")


def _day_of(young_missed: int, young_seen: int, unseen: int, older: int = 1) -> list[tuple]:
    sales = [(f"m{i}", 20.0, "not_asked", "C1") for i in range(young_missed)]
    sales += [(f"s{i}", 20.0, "id_seen", "C1") for i in range(young_seen)]
    sales += [(f"u{i}", None, "not_asked", "C1") for i in range(unseen)]
    return sales + [(f"o{i}", 50.0, "not_asked", "C1") for i in range(older)]


def test_rolling_missed_and_unchecked_over_the_days_that_record_checks(tmp_path: Path) -> None:
    back = lambda days: DAY - dt.timedelta(days=days)  # noqa: E731
    _publish(tmp_path, back(30), _day_of(9, 0, 9))  # outside both windows
    _publish(tmp_path, back(20), _day_of(2, 2, 1))  # 28 days only
    _publish(tmp_path, back(10), _day_of(5, 0, 2), checks_column=False)  # no checks recorded
    _publish(tmp_path, back(3), _day_of(1, 3, 1))
    _publish(tmp_path, DAY, _day_of(1, 1, 0))
    row = pd.read_parquet(partition(tmp_path, "cashier_compliance", DAY)).iloc[0]
    assert (row["missed_receipts"], row["flagged_receipts"], row["missed_rate"]) == (1, 2, 0.5)
    assert (row["days_7d"], row["days_28d"]) == (2, 4)
    assert (row["unchecked_receipts_7d"], row["unchecked_receipts_28d"]) == (1, 1 + 2 + 1)
    assert (row["flagged_receipts_7d"], row["flagged_receipts_28d"]) == (2 + 4, 2 + 4 + 5 + 4)
    assert row["missed_receipts_7d"] == 1 + 1
    assert row["missed_rate_7d"] == pytest.approx(2 / 6)
    # The day without records adds to neither part of the rate: 4 missed of 10 flagged.
    assert row["missed_receipts_28d"] == 1 + 1 + 2
    assert row["missed_rate_28d"] == pytest.approx(4 / 10)


def test_days_published_before_age_checks_read_as_not_recorded(tmp_path: Path) -> None:
    _publish(tmp_path, DAY - dt.timedelta(days=1), _day_of(2, 1, 1))
    folder = partition(tmp_path, "cashier_compliance", DAY - dt.timedelta(days=1))
    (path,) = folder.glob("*.parquet")
    old = pq.read_table(path)
    pq.write_table(old.drop_columns([c for c in old.column_names if "missed" in c]), path)
    history, days_7d, _ = compliance_history(tmp_path, DAY)
    assert history["missed_receipts"].to_pylist() == [None] and days_7d == 2
    assert history["flagged_receipts"].to_pylist() == [3]
    _publish(tmp_path, DAY, _day_of(1, 1, 0))
    row = pd.read_parquet(partition(tmp_path, "cashier_compliance", DAY)).iloc[0]
    assert (row["missed_receipts_7d"], row["flagged_receipts_7d"]) == (1, 5)
    assert row["missed_rate_7d"] == 0.5
