"""What the alcohol compliance report needs besides the day: the ID policy, the model's error
margins and operating curve (the flag threshold and what it is expected to miss and flag), the
till's age checks, and the earlier days of cashier_compliance already published."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from agebatch.config import COMPLIANCE_LONG_DAYS, COMPLIANCE_SHORT_DAYS, RunConfig
from agebatch.errors import InputError
from agebatch.inputs.policy import POLICY_SCHEMA, read_policy
from agebatch.predict.card import CurvePoint, ModelCard
from agebatch.schema import schema
from agebatch.transform.history import read_history

REPORT = "cashier_compliance"
# The columns of earlier days the rolling 7- and 28-day figures are summed from (read as
# published: a column a day predates reads as null).
HISTORY_SCHEMA = pa.schema(
    [
        schema(REPORT).field(name)
        for name in (
            "day",
            "store_id",
            "cashier_id",
            "restricted_receipts",
            "flagged_receipts",
            "unchecked_receipts",
            "missed_receipts",  # null on days that record no checks, or published before them
        )
    ]
)
MARGIN_SCHEMA = pa.schema([("low", pa.float64()), ("high", pa.float64()), ("mae", pa.float64())])
CURVE_SCHEMA = pa.schema(
    [("threshold", pa.float64()), ("teen_miss", pa.float64()), ("adult_flag", pa.float64())]
)
CHECKS_SCHEMA = pa.schema([("receipt_id", pa.string()), ("age_check", pa.string())])


@dataclass(frozen=True)
class ComplianceInputs:
    """The ID policy and context the compliance SQL reads (tables empty when there are none)."""

    POLICY: ClassVar[tuple[str, ...]] = ("legal_age", "challenge_age", "margin")  # from config
    legal_age: float
    challenge_age: float
    margin: float
    store_policies: pa.Table = field(default_factory=POLICY_SCHEMA.empty_table)
    error_margins: pa.Table = field(default_factory=MARGIN_SCHEMA.empty_table)
    history: pa.Table = field(default_factory=HISTORY_SCHEMA.empty_table)
    days_7d: int = 1  # published days each window really covers, this one included
    days_28d: int = 1
    max_teen_miss: float | None = None  # asked for; chose chosen_threshold
    chosen_threshold: float | None = None  # replaces challenge_age + margin as flag threshold
    curve: pa.Table = field(default_factory=CURVE_SCHEMA.empty_table)  # the card's, if valid
    age_checks: pa.Table | None = None  # receipt_id, age_check; None: the day records none

    @property
    def flag_threshold(self) -> float | None:
        """The flag threshold of stores without their own policy; None when a margin makes it
        vary with the predicted age."""
        if self.chosen_threshold is not None:
            return self.chosen_threshold
        return self.challenge_age if self.margin == 0 else None

    def expected(self, threshold: float | None) -> tuple[float | None, float | None]:
        """(teen miss, adult flag share) the card's curve measured at exactly this threshold."""
        if threshold is None:
            return None, None
        rows = self.curve.filter(pc.equal(self.curve["threshold"], threshold))
        if rows.num_rows == 0:
            return None, None
        return rows["teen_miss"][0].as_py(), rows["adult_flag"][0].as_py()


def compliance_inputs(
    config: RunConfig, card: ModelCard, day: dt.date, age_checks: pa.Table | None = None
) -> ComplianceInputs:
    """The policy of the run's config and what the report needs: per-store ages, margins, the
    flag threshold --max-teen-miss chooses, the card's curve, the day's age checks (None: not
    recorded), and the long window's earlier days where cashier_compliance is published (the
    restricted root; days published before it was set, under config.out)."""
    margins = error_margins(card)
    if config.margin > 0 and margins.num_rows == 0:
        raise InputError(
            f"--margin needs the model's error per age band, and the card of {card.name} has none."
        )
    chosen = None
    if config.max_teen_miss is not None:
        chosen = choose_threshold(card, config.max_teen_miss).threshold
    history, days_7d, days_28d = compliance_history(config.restricted_root(), day, config.out)
    return ComplianceInputs(
        **{name: getattr(config, name) for name in ComplianceInputs.POLICY},
        store_policies=read_policy(config.policy) if config.policy else POLICY_SCHEMA.empty_table(),
        error_margins=margins,
        history=history,
        days_7d=days_7d,
        days_28d=days_28d,
        max_teen_miss=config.max_teen_miss,
        chosen_threshold=chosen,
        curve=curve_table(card),
        age_checks=None if age_checks is None else age_checks.select(CHECKS_SCHEMA.names),
    )


def choose_threshold(card: ModelCard, max_teen_miss: float) -> CurvePoint:
    """The lowest flag threshold of the card's curve whose measured teen miss is at most
    max_teen_miss (the fewest adults flagged for that miss), or say why there is none."""
    curve = card.curve
    if curve is None:
        measured = card.operating_curve
        why = (
            f"it was measured with test_time_augmentation {measured.test_time_augmentation!r} "
            f"and the card now says {card.test_time_augmentation!r}"
            if measured
            else "it has none"
        )
        raise InputError(
            f"--max-teen-miss needs the operating curve in the card of {card.name}, and {why}: "
            "measure it with agebatch evaluate --faces DIR --write-curve."
        )
    point = curve.lowest_within(max_teen_miss)
    if point is None:
        last = curve.points[-1]
        raise InputError(
            f"No flag threshold of the curve of {card.name} misses at most {max_teen_miss:.1%} "
            f"of 13-17-year-olds; the highest, {last.threshold:g}, misses {last.teen_miss:.1%}."
        )
    return point


def curve_table(card: ModelCard) -> pa.Table:
    """The card's operating curve as (threshold, teen_miss, adult_flag) rows; empty if it has
    none measured with its own flip setting."""
    points = card.curve.points if card.curve else []
    rows = [{name: getattr(p, name) for name in CURVE_SCHEMA.names} for p in points]
    return pa.Table.from_pylist(rows, schema=CURVE_SCHEMA)


def error_margins(card: ModelCard) -> pa.Table:
    """The card's MAE per band of age as (low, high, mae) rows; empty if it has none."""
    rows = []
    for band, mae in card.error.mae_by_band.items():
        low, _, high = band.rstrip("+").partition("-")
        upper = float(high) + 1 if high else float("inf")
        rows.append({"low": float(low), "high": upper, "mae": float(mae)})
    return pa.Table.from_pylist(rows, schema=MARGIN_SCHEMA)


def compliance_history(out: Path, day: dt.date, *older: Path) -> tuple[pa.Table, int, int]:
    """The report's earlier days of its long window as published under out (or, for a day out
    lacks, the first of the older roots that has it), and the days each window covers."""
    first = day - dt.timedelta(days=COMPLIANCE_LONG_DAYS - 1)
    history = read_history(
        [out, *older], REPORT, first, day - dt.timedelta(days=1), HISTORY_SCHEMA.names[1:]
    )
    days = set(history["day"].to_pylist())
    short = 1 + sum(1 for d in days if (day - d).days < COMPLIANCE_SHORT_DAYS)
    return history, short, 1 + len(days)
