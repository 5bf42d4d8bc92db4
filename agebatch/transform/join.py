"""The transform stage in DuckDB: match receipts to ages, sum purchases, list restricted sales,
sum the affinity window; the declared models, run by the one runner."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from agebatch.config import (
    COMPLIANCE_LONG_DAYS,
    COMPLIANCE_SHORT_DAYS,
    RunConfig,
    age_group_labels,
)
from agebatch.duck import connect
from agebatch.inputs.transactions import QUARANTINE_SCHEMA
from agebatch.predict.cameras import Verdict
from agebatch.predict.card import ModelCard
from agebatch.schema import ReceiptStatus, conform
from agebatch.transform.affinity import AffinityInputs, add_affinity, affinity_inputs
from agebatch.transform.cameras import CameraInputs, camera_inputs
from agebatch.transform.compliance import CHECKS_SCHEMA, ComplianceInputs, compliance_inputs
from agebatch.transform.models import MODELS
from agebatch.transform.runner import run_models
from agebatch.transform.shares import add_corrected_shares

log = logging.getLogger(__name__)

PUBLISHED = tuple(model.name for model in MODELS if model.published)
# till_clocks: shots are set against receipts within this many seconds, in bins this wide.
CLOCK_SEARCH_S = 300.0
CLOCK_BIN_S = 10.0
OFFSET_SCHEMA = pa.schema(
    [("store_id", pa.string()), ("register_id", pa.string()), ("offset_s", pa.float64())]
)
K = RunConfig.model_fields["min_cell_receipts"].default  # k, from its one place: the config


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
    affinity: AffinityInputs | None = None,
    clock_offsets: pa.Table | None = None,
    min_cell_receipts: int = K,
    quarantined: pa.Table | None = None,
    cameras: CameraInputs | None = None,
) -> dict[str, pa.Table]:
    """Match each receipt to its shopper's age, sum purchases per age group, list the
    restricted sales to review and sum the affinity window: every declared model
    (agebatch.transform.models) run in DuckDB; returns the published tables.

    lines may carry paid_at_utc and captures captured_at_utc (naive UTC, null where the
    input had no UTC offset); clock_offsets (store_id, register_id, offset_s) says how many
    seconds a camera's clock runs ahead of its till's. Registers whose camera clock looks off
    (till_clocks.drift_suspected) are logged. min_cell_receipts is k: the aggregates' cells
    of fewer receipts are merged per store (sql/small_cells.sql; 1: none are). affinity
    defaults to the run config's settings with no earlier days. lines may carry operator_id
    (who keyed a line, where not its receipt's cashier; default none); quarantined is the
    reader's quarantined receipts (agebatch.inputs.transactions.QUARANTINE_SCHEMA; default
    none); cameras is the photo kind, auto's verdicts and the earlier days of the cameras
    table (agebatch.transform.cameras; default auto with no verdict and no history).
    """
    groups = age_groups_frame(age_bounds)
    labels = tuple(groups["label"])
    affinity = affinity or AffinityInputs(groups=labels)
    cameras = cameras or CameraInputs()
    inputs = {  # the declared INPUTS of agebatch.transform.models
        "lines": _with_text(_with_nulls(lines, "paid_at_utc"), "operator_id"),
        "catalog": _with_text(catalog, "name"),
        "captures": _with_quality(_with_nulls(captures, "captured_at_utc")),
        "clock_offsets": OFFSET_SCHEMA.empty_table() if clock_offsets is None else clock_offsets,
        "age_groups": groups,
        "policy": compliance.store_policies,
        "margins": compliance.error_margins,
        "curve": compliance.curve,
        "age_checks": (
            CHECKS_SCHEMA.empty_table() if compliance.age_checks is None else compliance.age_checks
        ),
        "compliance_history": compliance.history,
        "affinity_history": affinity.history,
        "quarantine": QUARANTINE_SCHEMA.empty_table() if quarantined is None else quarantined,
        "camera_verdicts": cameras.verdicts,
        "cameras_history": cameras.history,
    }
    for name, table in inputs.items():
        con.register(name, table)
    params = {
        "day": day,
        "before_s": float(window_before_s),
        "after_s": float(window_after_s),
        "model_version": model_version,
        "k": int(min_cell_receipts),
        "legal_age": compliance.legal_age,
        "challenge_age": compliance.challenge_age,
        "margin": compliance.margin,
        "flag_threshold": compliance.chosen_threshold,
        "checks_recorded": compliance.age_checks is not None,
        "short_days": COMPLIANCE_SHORT_DAYS,
        "long_days": COMPLIANCE_LONG_DAYS,
        "days_7d": compliance.days_7d,
        "days_28d": compliance.days_28d,
        "search_s": CLOCK_SEARCH_S,
        "bin_s": CLOCK_BIN_S,
        "affinity_days": affinity.affinity_days,
        "days_covered": affinity.days_covered,
        "photo_kind": str(cameras.photo_kind),
    }
    run_models(con, MODELS, inputs, params)  # a read of an input not registered: an error
    tables = {name: con.table(name).fetch_arrow_table() for name in PUBLISHED}
    tables["age_group_affinity"] = add_affinity(tables["age_group_affinity"], affinity)
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


def _with_text(table: pa.Table | pd.DataFrame, column: str) -> pa.Table | pd.DataFrame:
    """The table with an optional text column added as all nulls where it lacks it: the lines'
    operator_id (who keyed a line that is not its receipt's cashier; null: the cashier), the
    catalog's name (a product's name; null: none given)."""
    if isinstance(table, pa.Table):
        if column in table.column_names:
            return table
        return table.append_column(column, pa.nulls(table.num_rows, pa.string()))
    if column in table.columns:
        return table
    return table.assign(**{column: pd.Series(None, index=table.index, dtype="string")})


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


def transform_day(
    config: RunConfig,
    card: ModelCard,
    model_version: str,
    day: dt.date,
    *,
    lines: pa.Table,
    catalog: pa.Table,
    captures: pd.DataFrame,
    age_checks: pa.Table | None,
    clock_offsets: pa.Table | None,
    quarantined: pa.Table | None = None,
    verdicts: Sequence[Verdict] = (),
) -> tuple[dict[str, pa.Table], ComplianceInputs]:
    """The day's tables to publish from its lines, catalog and aged captures (and, under
    auto, each camera's verdict): the declared models, the corrected shares, every table
    conformed to its published schema; and the compliance inputs they were built with (for the
    run record)."""
    compliance = compliance_inputs(config, card, day, age_checks)
    with connect(config.duckdb_threads) as con:
        tables = join_day(
            con,
            day=day,
            lines=lines,
            catalog=catalog,
            captures=captures,
            model_version=model_version,
            age_bounds=config.age_groups,
            window_before_s=config.window_before_s,
            window_after_s=config.window_after_s,
            compliance=compliance,
            affinity=affinity_inputs(config, card, day),
            clock_offsets=clock_offsets,
            min_cell_receipts=config.min_cell_receipts,
            quarantined=quarantined,
            cameras=camera_inputs(config.out, day, config.photo_kind, verdicts),
        )
    confusion = card.age_confusion
    tables["age_group_shares"] = add_corrected_shares(
        tables["age_group_shares"],
        confusion.counts if confusion else None,
        f"{model_version} on {confusion.split if confusion else '?'}",
        config.age_groups,
    )
    groups = [label for label, *_ in age_group_labels(config.age_groups)]
    return {name: conform(name, table, groups) for name, table in tables.items()}, compliance
