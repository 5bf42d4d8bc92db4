"""The join stage in DuckDB: match receipts to ages, sum purchases, list restricted sales."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Sequence

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from agebatch.config import age_group_labels
from agebatch.duck import sql
from agebatch.reports.compliance import CHECKS_SCHEMA, ComplianceInputs
from agebatch.schema import ReceiptStatus

log = logging.getLogger(__name__)

# The tables the join builds, in order. The internal ones only feed those after them:
# register_clocks, receipt_times and capture_times put receipts and photos on one clock per
# register, receipt_captures pairs them (one photo, one shopper), restricted_sales feeds the
# compliance tables.
STATEMENTS = (
    "register_clocks",
    "receipt_times",
    "capture_times",
    "receipt_captures",
    "receipt_ages",
    "age_group_purchases",
    "age_group_receipts",
    "age_group_shares",
    "restricted_sales",
    "alcohol_checks",
    "cashier_compliance",
    "till_clocks",
)
INTERNAL = (
    "register_clocks",
    "receipt_times",
    "capture_times",
    "receipt_captures",
    "restricted_sales",
)
PUBLISHED = tuple(name for name in STATEMENTS if name not in INTERNAL)
# Published in place of the aggregates: the same tables without cells of fewer than k
# receipts (merged into a 'suppressed' row per store), built from them after the join.
K_ANONYMOUS = {
    "age_group_purchases": "k_anonymous_purchases",
    "age_group_receipts": "k_anonymous_receipts",
    "age_group_shares": "k_anonymous_shares",
}
# till_clocks: shots are set against receipts within this many seconds, in bins this wide.
CLOCK_SEARCH_S = 300.0
CLOCK_BIN_S = 10.0
OFFSET_SCHEMA = pa.schema(
    [("store_id", pa.string()), ("register_id", pa.string()), ("offset_s", pa.float64())]
)


def join_day(
    con: duckdb.DuckDBPyConnection,
    *,
    day: dt.date,
    lines: pa.Table,
    catalog: pa.Table,
    captures: pd.DataFrame | pa.Table,
    model_version: str,
    age_bounds: Sequence[int],
    window_before_s: float,
    window_after_s: float,
    compliance: ComplianceInputs,
    clock_offsets: pa.Table | None = None,
    min_cell_receipts: int = 1,
) -> dict[str, pa.Table]:
    """Match each receipt to its shopper's age, sum purchases per age group and list the
    restricted sales to review, in DuckDB; returns the tables to publish.

    lines may carry paid_at_utc and captures captured_at_utc (naive UTC, null where the
    input had no UTC offset); clock_offsets (store_id, register_id, offset_s) says how many
    seconds a camera's clock runs ahead of its till's. Registers whose camera clock looks off
    (till_clocks.drift_suspected) are logged. min_cell_receipts is k: the aggregates' cells
    of fewer receipts are merged per store (sql/k_anonymous_*.sql; 1: none are).
    """
    groups = age_groups_frame(age_bounds)
    inputs = {
        "lines": _with_nulls(lines, "paid_at_utc"),
        "catalog": catalog,
        "captures": _with_quality(_with_nulls(captures, "captured_at_utc")),
        "clock_offsets": OFFSET_SCHEMA.empty_table() if clock_offsets is None else clock_offsets,
        "age_groups": groups,
        "policy": compliance.store_policies,
        "margins": compliance.error_margins,
        "history": compliance.history,
        "curve": compliance.curve,
        "age_checks": (
            CHECKS_SCHEMA.empty_table() if compliance.age_checks is None else compliance.age_checks
        ),
    }
    for name, table in inputs.items():
        con.register(name, table)
    params = {
        "day": day,
        "before_s": float(window_before_s),
        "after_s": float(window_after_s),
        "model_version": model_version,
        "legal_age": compliance.legal_age,
        "challenge_age": compliance.challenge_age,
        "margin": compliance.margin,
        "days_7d": compliance.days_7d,
        "days_28d": compliance.days_28d,
        "search_s": CLOCK_SEARCH_S,
        "bin_s": CLOCK_BIN_S,
        "flag_threshold": compliance.chosen_threshold,
        "checks_recorded": compliance.age_checks is not None,
        "k": int(min_cell_receipts),
    }
    for name in [*STATEMENTS, *K_ANONYMOUS.values()]:
        statement = sql(name)
        used = {k: v for k, v in params.items() if re.search(rf"\${k}\b", statement)}
        con.execute(f"create or replace table {name} as {statement}", used)
    tables = {
        name: con.table(K_ANONYMOUS.get(name, name)).fetch_arrow_table() for name in PUBLISHED
    }
    for store_id, register_id, lag_s in con.execute(
        "select store_id, register_id, median_lag_s from till_clocks where drift_suspected"
    ).fetchall():
        log.warning(
            "Camera clock at store %s, register %s looks off: photos are taken %.0f s %s "
            "payment (median); set its offset in the clock offsets file",
            store_id,
            register_id,
            abs(lag_s),
            "before" if lag_s > 0 else "after",
        )
    log.info(
        "Joined %d receipts (%d with an age); %d restricted sales to review",
        tables["receipt_ages"].num_rows,
        pc.sum(pc.equal(tables["receipt_ages"]["status"], ReceiptStatus.MATCHED)).as_py() or 0,
        tables["alcohol_checks"].num_rows,
    )
    return tables


def _with_nulls(table: pa.Table | pd.DataFrame, column: str) -> pa.Table | pd.DataFrame:
    """The table with an optional timestamp column added as all nulls when it lacks it."""
    if isinstance(table, pa.Table):
        if column in table.column_names:
            return table
        return table.append_column(column, pa.nulls(table.num_rows, pa.timestamp("us")))
    if column in table.columns:
        return table
    return table.assign(**{column: pd.Series(pd.NaT, index=table.index, dtype="datetime64[us]")})


def _with_quality(table: pa.Table | pd.DataFrame) -> pa.Table | pd.DataFrame:
    """The captures with quality_score and quality_part added as nulls when they lack them
    (captures aged before the quality record, or built by hand)."""
    columns = {"quality_score": pa.float64(), "quality_part": pa.string()}
    if isinstance(table, pa.Table):
        for name, kind in columns.items():
            if name not in table.column_names:
                table = table.append_column(name, pa.nulls(table.num_rows, kind))
        return table
    missing = {
        name: pd.Series(
            pd.NA, index=table.index, dtype="Float64" if name == "quality_score" else "string"
        )
        for name in columns
        if name not in table.columns
    }
    return table.assign(**missing) if missing else table


def age_groups_frame(age_bounds: Sequence[int]) -> pd.DataFrame:
    """The age groups the SQL reads: label, [low, high) as numbers for matching ages, and the
    whole-year bounds published beside each label (0 for the first group, null past the last)."""
    groups = pd.DataFrame(age_group_labels(tuple(age_bounds)), columns=["label", "low", "high"])
    groups["low_years"] = pd.array(groups["low"].clip(lower=0), dtype="Int32")
    groups["high_years"] = pd.array(groups["high"].where(groups["high"] != float("inf")), "Int32")
    return groups
