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

# The tables the join builds, in order; restricted_sales only feeds the two after it.
STATEMENTS = (
    "receipt_ages",
    "age_group_purchases",
    "age_group_shares",
    "restricted_sales",
    "alcohol_checks",
    "cashier_compliance",
)
PUBLISHED = tuple(name for name in STATEMENTS if name != "restricted_sales")


def join_day(
    con: duckdb.DuckDBPyConnection,
    *,
    day: dt.date,
    lines: pa.Table,
    catalog: pa.Table,
    captures: pd.DataFrame,
    model_version: str,
    age_bounds: Sequence[int],
    window_before_s: float,
    window_after_s: float,
    compliance: ComplianceInputs,
) -> dict[str, pa.Table]:
    """Match each receipt to its shopper's age, sum purchases per age group and list the
    restricted sales to review, in DuckDB; returns the tables to publish."""
    groups = pd.DataFrame(age_group_labels(tuple(age_bounds)), columns=["label", "low", "high"])
    inputs = {
        "lines": lines,
        "catalog": catalog,
        "captures": captures,
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
        "flag_threshold": compliance.chosen_threshold,
        "checks_recorded": compliance.age_checks is not None,
    }
    for name in STATEMENTS:
        statement = sql(name)
        used = {k: v for k, v in params.items() if re.search(rf"\${k}\b", statement)}
        con.execute(f"create or replace table {name} as {statement}", used)
    tables = {name: con.table(name).fetch_arrow_table() for name in PUBLISHED}
    log.info(
        "Joined %d receipts (%d with an age); %d restricted sales to review",
        tables["receipt_ages"].num_rows,
        pc.sum(pc.equal(tables["receipt_ages"]["status"], ReceiptStatus.MATCHED)).as_py() or 0,
        tables["alcohol_checks"].num_rows,
    )
    return tables
