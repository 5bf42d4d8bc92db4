"""What a run leaves: its row of the `runs` table, and where its day was published."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from agebatch.schema import conform, schema


@dataclass(frozen=True)
class RunRecord:
    """One row of the `runs` table; its fields are the table's columns (see agebatch.schema)."""

    day: dt.date
    run_id: str
    started_at: dt.datetime
    agebatch_version: str
    model_version: str
    device: str
    photos_found: int
    photos_decoded: int
    photos_unreadable: int
    photos_refused: int
    photos_no_face: int
    files_ignored: int
    receipts: int
    receipts_matched: int
    receipts_no_photo: int
    receipts_unreadable: int
    receipts_no_face: int
    receipts_refused: int
    receipts_low_quality: int
    alcohol_checks: int
    receipts_quarantined: int
    quarantine_gate: str
    receipt_key: list[str]
    age_checks_recorded: bool
    missed_checks: int | None
    max_teen_miss: float | None
    flag_threshold: float | None
    expected_teen_miss: float | None
    expected_adult_flag: float | None
    clocks_off: list[str]
    coverage_gate: str
    coverage_over: list[str]
    photos_deleted_days: list[str]  # filled in by publish
    published_at: dt.datetime | None  # filled in by publish
    find_s: float
    predict_s: float
    join_s: float
    publish_s: float
    photos_per_s: float
    shards_total: int | None = None
    shards_reused: int | None = None
    shards_retried: int | None = None
    model_card: str | None = None  # null: a run recorded before the column existed

    def table(self) -> pa.Table:
        """The record as a one-row table of the runs schema."""
        return conform("runs", pa.Table.from_pylist([dataclasses.asdict(self)], schema("runs")))


@dataclass(frozen=True)
class Published:
    """Where a day went, and the record of the run that published it."""

    record: RunRecord
    folders: dict[str, Path]
    report: Path | None = None  # the chain's HTML report page, once written
