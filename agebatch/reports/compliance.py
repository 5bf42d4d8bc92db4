"""What the alcohol compliance report needs besides the day: the ID policy, the model's error
margins, and the earlier days of cashier_compliance already published."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pyarrow as pa
import pyarrow.parquet as pq

from agebatch.config import RunConfig
from agebatch.errors import InputError
from agebatch.inputs.policy import POLICY_SCHEMA, read_policy
from agebatch.predict.card import ModelCard
from agebatch.publish import partition
from agebatch.schema import schema

REPORT = "cashier_compliance"
# The columns of earlier days the rolling 7- and 28-day figures are summed from.
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
        )
    ]
)
MARGIN_SCHEMA = pa.schema([("low", pa.float64()), ("high", pa.float64()), ("mae", pa.float64())])


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


def compliance_inputs(config: RunConfig, card: ModelCard, day: dt.date) -> ComplianceInputs:
    """The policy of the run's config and what the report needs: per-store ages, margins,
    history of the 27 days before `day` where cashier_compliance is published (the
    restricted root; days published before it was set, under config.out)."""
    margins = error_margins(card)
    if config.margin > 0 and margins.num_rows == 0:
        raise InputError(
            f"--margin needs the model's error per age band, and the card of {card.name} has none."
        )
    history, days_7d, days_28d = compliance_history(config.restricted_root(), day, config.out)
    return ComplianceInputs(
        **{name: getattr(config, name) for name in ComplianceInputs.POLICY},
        store_policies=read_policy(config.policy) if config.policy else POLICY_SCHEMA.empty_table(),
        error_margins=margins,
        history=history,
        days_7d=days_7d,
        days_28d=days_28d,
    )


def error_margins(card: ModelCard) -> pa.Table:
    """The card's MAE per band of age as (low, high, mae) rows; empty if it has none."""
    rows = []
    for band, mae in card.error.mae_by_band.items():
        low, _, high = band.rstrip("+").partition("-")
        upper = float(high) + 1 if high else float("inf")
        rows.append({"low": float(low), "high": upper, "mae": float(mae)})
    return pa.Table.from_pylist(rows, schema=MARGIN_SCHEMA)


def compliance_history(out: Path, day: dt.date, *older: Path) -> tuple[pa.Table, int, int]:
    """The report's 27 earlier days as published under out (or, for a day out lacks, the
    first of the older roots that has it), and the days each window covers."""
    frames, found = [], []
    columns = HISTORY_SCHEMA.names[1:]  # the day lives in the folder name
    for back in range(1, 28):
        earlier = day - dt.timedelta(days=back)
        folders = [partition(root, REPORT, earlier) for root in (out, *older)]
        folder = next((f for f in folders if f.is_dir()), None)
        if folder is not None:
            table = pq.read_table(folder, columns=columns)
            days = pa.array([earlier] * table.num_rows, pa.date32())
            frames.append(table.add_column(0, "day", days).cast(HISTORY_SCHEMA))
            found.append(back)
    history = pa.concat_tables(frames) if frames else HISTORY_SCHEMA.empty_table()
    return history, 1 + sum(1 for back in found if back < 7), 1 + len(found)
