"""Inputs of the alcohol compliance report: the ID policy, the model's error margins, history."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from agebatch.errors import InputError
from agebatch.join import ComplianceInputs, read_table
from agebatch.predict.model import ModelCard
from agebatch.publish import partition

POLICY_COLUMNS = {"store_id": "varchar", "legal_age": "double", "challenge_age": "double"}
REPORT = "cashier_compliance"
HISTORY_COLUMNS = [
    "store_id",
    "cashier_id",
    "restricted_receipts",
    "flagged_receipts",
    "unchecked_receipts",
]


def compliance_inputs(
    *,
    legal_age: float,
    challenge_age: float,
    margin: float,
    policy_file: Path | None,
    card: ModelCard,
    out: Path,
    day: dt.date,
) -> ComplianceInputs:
    """Check the ID policy and gather what the report needs: per-store ages, margins, history."""
    if not 0 < legal_age <= challenge_age:
        raise InputError("The legal age must be positive and at most the challenge age.")
    if margin < 0:
        raise InputError("The margin must be >= 0 (a multiple of the model's error).")
    margins = error_margins(card)
    if margin > 0 and margins.num_rows == 0:
        raise InputError(
            f"--margin needs the model's error per age band, and the card of {card.name} has none."
        )
    history, days_7d, days_28d = compliance_history(out, day)
    return ComplianceInputs(
        legal_age=legal_age,
        challenge_age=challenge_age,
        margin=margin,
        store_policies=store_policies(policy_file) if policy_file else None,
        error_margins=margins,
        history=history,
        days_7d=days_7d,
        days_28d=days_28d,
    )


def store_policies(path: Path) -> pa.Table:
    """Per-store ages from a policy file: store_id,legal_age,challenge_age."""
    table = read_table(path, POLICY_COLUMNS, "policy")
    for row in table.to_pylist():
        if not 0 < row["legal_age"] <= row["challenge_age"]:
            raise InputError(
                f"Policy file {path}: store {row['store_id']} needs 0 < legal_age <= challenge_age."
            )
    return table


def error_margins(card: ModelCard) -> pa.Table:
    """The card's MAE per band of age as (low, high, mae) rows; empty if it has none."""
    rows = []
    for band, mae in (card.error.get("mae_by_band") or {}).items():
        low, _, high = band.rstrip("+").partition("-")
        upper = float(high) + 1 if high else float("inf")
        rows.append({"low": float(low), "high": upper, "mae": float(mae)})
    schema = pa.schema([("low", pa.float64()), ("high", pa.float64()), ("mae", pa.float64())])
    return pa.Table.from_pylist(rows, schema=schema)


def compliance_history(out: Path, day: dt.date) -> tuple[pa.Table, int, int]:
    """The report's 27 earlier days as published under out, and the days each window covers."""
    frames, found = [], []
    for back in range(1, 28):
        earlier = day - dt.timedelta(days=back)
        folder = partition(out, REPORT, earlier)
        if folder.is_dir():
            table = pq.read_table(folder, columns=HISTORY_COLUMNS)
            days = pa.array([earlier] * table.num_rows, pa.date32())
            frames.append(table.append_column("day", days))
            found.append(back)
    history = pa.concat_tables(frames) if frames else None
    return history, 1 + sum(1 for back in found if back < 7), 1 + len(found)
