"""Per-store ID policy: the legal and challenge ages a store applies to age-restricted sales."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from agebatch.errors import InputError
from agebatch.inputs.tables import read_table

POLICY_COLUMNS = {"store_id": "varchar", "legal_age": "double", "challenge_age": "double"}
POLICY_SCHEMA = pa.schema(
    [("store_id", pa.string()), ("legal_age", pa.float64()), ("challenge_age", pa.float64())]
)


def read_policy(path: Path) -> pa.Table:
    """Per-store ages from a policy file: store_id,legal_age,challenge_age."""
    table = read_table(path, POLICY_COLUMNS, "policy")
    for row in table.to_pylist():
        if not 0 < row["legal_age"] <= row["challenge_age"]:
            raise InputError(
                f"Policy file {path}: store {row['store_id']} needs 0 < legal_age <= challenge_age."
            )
    return table
