"""The published schema: one definition per table, checked before anything is published."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

from agebatch.pipeline import RunRecord
from agebatch.schema import TABLES, Reason, ReceiptStatus, SchemaError, conform, schema

DAY = dt.date(2026, 11, 24)


def _receipts(**changes: list) -> pa.Table:
    columns = {
        "day": [DAY, DAY],
        "receipt_id": ["r1", "r2"],
        "store_id": ["S1", "S1"],
        "register_id": ["R1", "R1"],
        "cashier_id": ["C1", "C1"],
        "paid_at": [dt.datetime(2026, 11, 24, 12), dt.datetime(2026, 11, 24, 13)],
        "photo": ["a.jpg", None],
        "predicted_age": [30.5, None],
        "age_group": ["25-34", None],
        "age_group_low": [25, None],
        "age_group_high": [35, None],
        "status": ["matched", "no_photo"],
        "quality_score": [1.8, None],
        "quality_part": ["contrast", None],
        "model_version": ["m1", "m1"],
        **changes,
    }
    return pa.table(columns)


def test_a_good_table_gets_its_exact_types_and_descriptions() -> None:
    table = conform("receipt_ages", _receipts(), ["<18", "25-34"])
    assert table.schema.equals(schema("receipt_ages"), check_metadata=True)
    assert table.schema.field("paid_at").type == pa.timestamp("us")
    assert b"local wall clock" in table.schema.field("paid_at").metadata[b"description"]
    assert not table.schema.field("receipt_id").nullable


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (_receipts().drop_columns(["photo"]), "has columns"),
        (_receipts().select([1, 0, *range(2, 13)]), "has columns"),  # order matters
        (_receipts(status=["matched", "lost"]), r"status holds \['lost'\]"),
        (_receipts(age_group=["25-34", "30s"]), r"age_group holds \['30s'\]"),
        (_receipts(receipt_id=["r1", None]), "receipt_id has 1 null"),
        (_receipts(predicted_age=["old", None]), "does not cast"),
    ],
)
def test_a_table_off_its_schema_is_refused(table: pa.Table, message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        conform("receipt_ages", table, ["<18", "25-34"])


def test_purchases_also_allow_the_unknown_group() -> None:
    table = pa.table(
        {
            "day": [DAY],
            "store_id": ["S1"],
            "age_group": ["unknown"],
            "age_group_low": pa.array([None], pa.int32()),
            "age_group_high": pa.array([None], pa.int32()),
            "category": ["beer"],
            "age_restricted": [True],
            "category_receipts": [1],
            "units": [Decimal("1.5")],
            "revenue": [Decimal("4.5")],
            "withheld": [False],
        }
    )
    conformed = conform("age_group_purchases", table, ["<18"])
    assert conformed.schema.field("revenue").type == pa.decimal128(18, 2)
    assert conformed.column("units").to_pylist() == [Decimal("1.500")]
    with pytest.raises(SchemaError, match="unknown"):
        conform("age_group_shares", _shares("unknown"), ["<18"])


def _shares(group: str) -> pa.Table:
    return pa.table(
        {
            "day": [DAY],
            "level": ["chain"],
            "store_id": pa.array([None], pa.string()),
            "age_group": [group],
            "age_group_low": [0],
            "age_group_high": [18],
            "receipts": [1],
            "share": [1.0],
            "withheld": [False],
            "corrected_share": pa.array([None], pa.float64()),
            "correction": ["none"],
        }
    )


def test_the_run_record_is_the_runs_table() -> None:
    assert [f.name for f in dataclasses.fields(RunRecord)] == schema("runs").names
    for status in ReceiptStatus:
        assert f"receipts_{status}" in schema("runs").names


def test_every_column_is_described_and_statuses_are_enumerated() -> None:
    for table, columns in TABLES.items():
        for column in columns:
            assert len(column.description) > 3, (table, column.name)
    reasons = next(c for c in TABLES["alcohol_checks"] if c.name == "reason").allowed
    assert reasons == tuple(Reason)
    # Every receipt status but matched is also a reason to review a restricted sale.
    assert {s.value for s in ReceiptStatus} - {"matched"} <= set(reasons)


def test_every_table_has_its_grain_and_key() -> None:
    from agebatch.schema import ABOUT

    assert set(ABOUT) == set(TABLES)
    for table, about in ABOUT.items():
        # A grain in words and a key of distinct columns of the table, never an empty one.
        assert len(about.grain.split()) >= 1 and about.key, table
        assert len(set(about.key)) == len(about.key), table
        assert set(about.key) <= {column.name for column in TABLES[table]}, table
