"""One day, end to end: find → predict → join → publish. The CLI and the flow call these.

Each stage takes what the stages before it returned and returns what it made, with its own
counts and seconds; the run record (one row of `runs`) is assembled from those returns.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from agebatch import __version__
from agebatch.analytics_db import write_analytics_db
from agebatch.config import Region, RunConfig, age_group_labels
from agebatch.duck import connect
from agebatch.errors import OutputError
from agebatch.inputs.captures import Captures, check_ties, find_captures
from agebatch.inputs.clocks import name_unknown_cameras, read_clock_offsets
from agebatch.inputs.regions import RegionKey, read_face_regions, regions_for
from agebatch.inputs.transactions import read_catalog, read_transactions, receipt_checks
from agebatch.join import join_day
from agebatch.predict.model import AgeModel, compute_device, load_model
from agebatch.predict.paths import PathsUnder
from agebatch.predict.stage import PredictStats, Progress, predict_paths
from agebatch.preflight import (
    Room,
    check_outputs,
    check_owned,
    check_report_places,
    write_failure,
)
from agebatch.publish import new_run_id, publish_day, publish_split
from agebatch.reports.affinity import affinity_inputs, affinity_tables
from agebatch.reports.compliance import ComplianceInputs, compliance_inputs
from agebatch.reports.coverage import TABLE as STORE_COVERAGE
from agebatch.reports.coverage import Coverage, check_coverage
from agebatch.reports.html import ReportPages, write_pages
from agebatch.reports.shares import add_corrected_shares
from agebatch.republish import refuse_worse_day
from agebatch.retention import PHOTOS_NOTE, delete_photos, due_days, photos_note
from agebatch.schema import RESTRICTED, ReceiptStatus, conform, schema
from agebatch.shards import (
    Shard,
    ShardCounts,
    ShardJob,
    ShardOutcome,
    add_ages,
    collect,
    discard,
    plan,
)
from agebatch.shards import stats_of as shard_stats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Run:
    """A run's identity: which day, when, with which model, on which device."""

    run_id: str
    day: dt.date
    started_at: dt.datetime
    model_version: str
    device: str


@dataclass(frozen=True)
class Found:
    """Everything read for one day before any photo is decoded, checked up front."""

    captures: Captures
    lines: pa.Table
    catalog: pa.Table
    face_regions: dict[RegionKey, Region] | None  # per camera, from face_regions
    clock_offsets: pa.Table | None  # per camera, from clock_offsets
    seconds: float
    age_checks: pa.Table | None  # receipt_id, age_check; None: the day records none
    day: dt.date | None = None  # the day these are of


@dataclass(frozen=True)
class Predicted:
    """The day's captures with predicted_age and status (ok / unreadable / no_face / refused)."""

    captures: pd.DataFrame
    stats: PredictStats
    shards: ShardCounts | None = None  # None: predicted in one process, without shards


@dataclass(frozen=True)
class Joined:
    """The day's tables to publish, in the order they are built."""

    tables: dict[str, pa.Table]
    seconds: float
    compliance: ComplianceInputs  # the policy, threshold and checks the report used


@dataclass(frozen=True)
class Gated:
    """The day's tables to publish, store_coverage included, once the coverage gate let them."""

    tables: dict[str, pa.Table]
    coverage: Coverage


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
    alcohol_checks: int
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

    def table(self) -> pa.Table:
        """The record as a one-row table of the runs schema."""
        return conform("runs", pa.Table.from_pylist([dataclasses.asdict(self)], schema("runs")))


@dataclass(frozen=True)
class Published:
    """Where a day went, and the record of the run that published it."""

    record: RunRecord
    folders: dict[str, Path]
    report: Path | None = None  # the chain's HTML report page, once written


def start(model: AgeModel, day: dt.date) -> Run:
    """Begin a run of a day: its id, start time, model version and device."""
    return Run(
        run_id=new_run_id(),
        day=day,
        started_at=dt.datetime.now(dt.UTC).replace(microsecond=0),
        model_version=model.version,
        device=compute_device(),
    )


def find(config: RunConfig, day: dt.date) -> Found:
    """Find the day's photos and read its transactions and catalog (fails fast on bad input)."""
    started = time.perf_counter()
    captures = find_captures(config.day_folder(day), config.timezone)
    lines = read_transactions(config.transactions, day, config.timezone)
    catalog = read_catalog(config.catalog)
    regions = read_face_regions(config.face_regions) if config.face_regions else None
    offsets = read_clock_offsets(config.clock_offsets) if config.clock_offsets else None
    check_ties(captures, lines)  # a manifest ties photos to receipts of their own store only
    if offsets is not None:
        name_unknown_cameras(config.clock_offsets, offsets, captures.table)
    log.info("Read %d transaction lines and %d catalog items", lines.num_rows, catalog.num_rows)
    checks = receipt_checks(lines)
    if checks is None:
        log.info("No age_check column in the transactions: missed ID checks are not counted")
    seconds = time.perf_counter() - started
    return Found(captures, lines, catalog, regions, offsets, seconds, checks, day)


def preflight(config: RunConfig, found: Found) -> Room:
    """Before any photo is decoded: every output root writable, with room for the day."""
    room = check_outputs(config, len(pc.unique(found.lines["receipt_id"])))
    if found.day is not None:
        check_owned(config, found.day)  # nothing agebatch did not write is in the day's way
        check_report_places(config, found.day)  # the pages and the database can be written
    log.info("Output folders writable; the day needs about %d bytes", room.needed)
    return room


def predict(
    config: RunConfig,
    found: Found,
    model: AgeModel,
    progress: Progress | None = None,
) -> Predicted:
    """The day's captures with predicted_age and status (ok / unreadable / no_face / refused)
    added."""
    captures = found.captures.table
    paths = PathsUnder(found.captures.folder, captures["photo"].tolist())  # made when read
    regions = regions_for(
        list(captures["store_id"]),
        list(captures["register_id"]),
        found.face_regions,
        config.face_region,
    )
    cameras = list(zip(captures["store_id"], captures["register_id"], strict=True))
    predictions, stats = predict_paths(
        paths,
        model,
        config,
        regions=regions,
        cameras=cameras,
        progress=progress,
        inside=found.captures.folder,
    )
    aged = captures.copy()
    aged["predicted_age"] = pd.array([p.age for p in predictions], dtype="Float64")
    aged["status"] = pd.array([str(p.status) for p in predictions], dtype="string")
    log.info(
        "Predicted %d photos (%d unreadable, %d refused, %d without a face) at %.1f photos/s",
        stats.photos,
        stats.unreadable,
        stats.refused,
        stats.no_face,
        stats.photos_per_s,
    )
    return Predicted(aged, stats)


def plan_shards(config: RunConfig, found: Found, run: Run) -> tuple[ShardJob, list[Shard]]:
    """The day's photos in shards for a Dask cluster (agebatch.shards), with their regions."""
    captures = found.captures.table
    regions = regions_for(
        list(captures["store_id"]),
        list(captures["register_id"]),
        found.face_regions,
        config.face_region,
    )
    return plan(
        config,
        captures,
        found.captures.folder,
        regions,
        run.day.isoformat(),
        run.model_version,
        run.run_id,
    )


def from_shards(
    found: Found,
    job: ShardJob,
    shards: list[Shard],
    outcomes: list[ShardOutcome],
    seconds: float,
) -> Predicted:
    """The day's captures with the ages every shard staged, once all of them succeeded."""
    ages, counts = collect(job, shards, outcomes)
    aged = add_ages(found.captures.table, ages)
    stats = shard_stats(aged, seconds)
    log.info(
        "Predicted %d photos in %d shards (%d unreadable, %d refused, %d without a face) at "
        "%.1f photos/s",
        stats.photos,
        counts.total,
        stats.unreadable,
        stats.refused,
        stats.no_face,
        stats.photos_per_s,
    )
    return Predicted(aged, stats, counts)


def join(
    config: RunConfig, day: dt.date, found: Found, predicted: Predicted, model: AgeModel
) -> Joined:
    """Match receipts to ages, sum purchases per age group, list restricted sales to review,
    sum the affinity window; every table checked against its published schema."""
    started = time.perf_counter()
    compliance = compliance_inputs(config, model.card, day, found.age_checks)
    with connect() as con:
        tables = join_day(
            con,
            day=day,
            lines=found.lines,
            catalog=found.catalog,
            captures=predicted.captures,
            model_version=model.version,
            age_bounds=config.age_groups,
            window_before_s=config.window_before_s,
            window_after_s=config.window_after_s,
            compliance=compliance,
            clock_offsets=found.clock_offsets,
            min_cell_receipts=config.min_cell_receipts,
        )
        tables |= affinity_tables(con, day, affinity_inputs(config, model.card, day))
    confusion = model.card.age_confusion
    tables["age_group_shares"] = add_corrected_shares(
        tables["age_group_shares"],
        confusion.counts if confusion else None,
        f"{model.version} on {confusion.split if confusion else '?'}",
        config.age_groups,
    )
    groups = [label for label, *_ in age_group_labels(config.age_groups)]
    tables = {name: conform(name, table, groups) for name, table in tables.items()}
    return Joined(tables, time.perf_counter() - started, compliance)


def gate(config: RunConfig, day: dt.date, predicted: Predicted, joined: Joined) -> Gated:
    """The coverage gate: raises CoverageRefused when a store's photos or matches collapsed
    (unless accept_low_coverage); else the tables to publish, store_coverage added."""
    coverage = check_coverage(config, day, predicted.captures, joined.tables["receipt_ages"])
    coverage = refuse_worse_day(
        config, day, predicted.captures, joined.tables["receipt_ages"], coverage
    )
    return Gated(
        {**joined.tables, STORE_COVERAGE: conform(STORE_COVERAGE, coverage.table)}, coverage
    )


def run_record(
    run: Run, found: Found, predicted: Predicted, joined: Joined, gated: Gated
) -> RunRecord:
    """The run's row of `runs`, from what each stage returned (publish fills in the rest)."""
    stats = predicted.stats
    status = joined.tables["receipt_ages"].column("status")
    receipts = {
        f"receipts_{value}": pc.sum(pc.equal(status, value)).as_py() or 0 for value in ReceiptStatus
    }
    checks = joined.tables["alcohol_checks"]
    compliance = joined.compliance
    recorded = compliance.age_checks is not None
    expected_teen_miss, expected_adult_flag = compliance.expected(compliance.flag_threshold)
    return RunRecord(
        day=run.day,
        run_id=run.run_id,
        started_at=run.started_at,
        agebatch_version=__version__,
        model_version=run.model_version,
        device=run.device,
        photos_found=len(found.captures.table),
        photos_decoded=stats.decoded,
        photos_unreadable=stats.unreadable,
        photos_refused=stats.refused,
        photos_no_face=stats.no_face,
        files_ignored=found.captures.ignored,
        receipts=len(status),
        **receipts,
        alcohol_checks=checks.num_rows,
        age_checks_recorded=recorded,
        missed_checks=(pc.sum(checks["missed_check"]).as_py() or 0) if recorded else None,
        max_teen_miss=compliance.max_teen_miss,
        flag_threshold=compliance.flag_threshold,
        expected_teen_miss=expected_teen_miss,
        expected_adult_flag=expected_adult_flag,
        clocks_off=[
            f"{row['store_id']}/{row['register_id']}"
            for row in joined.tables["till_clocks"].to_pylist()
            if row["drift_suspected"]
        ],
        coverage_gate=gated.coverage.gate.value,
        coverage_over=gated.coverage.over,
        photos_deleted_days=[],
        published_at=None,
        find_s=round(found.seconds, 3),
        predict_s=round(stats.seconds, 3),
        join_s=round(joined.seconds, 3),
        publish_s=0.0,
        photos_per_s=round(stats.photos_per_s, 2),
        shards_total=predicted.shards and predicted.shards.total,
        shards_reused=predicted.shards and predicted.shards.reused,
        shards_retried=predicted.shards and predicted.shards.retried,
    )


def publish(config: RunConfig, tables: Mapping[str, pa.Table], record: RunRecord) -> Published:
    """Write the day's tables and its run record to the output folder(s), whole or not at all;
    then delete the day's staged shard ages (under either root: they are in receipt_ages now)
    and the photos of days past their retention (listed in the record)."""
    started = time.perf_counter()
    due = due_days(config, record.day, dt.datetime.now(dt.UTC))
    final: list[RunRecord] = []

    def record_table() -> pa.Table:
        # Asked for once the tables are written, so publish_s covers writing them.
        final.append(
            dataclasses.replace(
                record,
                photos_deleted_days=[day.isoformat() for day in due],
                published_at=dt.datetime.now(dt.UTC).replace(microsecond=0),
                publish_s=round(time.perf_counter() - started, 3),
            )
        )
        return final[0].table()

    roots = [config.out, config.restricted_root()]
    notes = {PHOTOS_NOTE: photos_note(config.day_folder(record.day))}  # what retention may delete
    try:
        if config.restricted_out and config.restricted_out.resolve() != config.out.resolve():
            folders = publish_split(
                config.out,
                config.restricted_out,
                record.day,
                tables,
                RESTRICTED,
                record_table,
                record.run_id,
                notes,
            )
        else:
            folders = publish_day(
                config.out, record.day, tables, record_table, record.run_id, notes
            )
    except OSError as error:
        failure = write_failure(error, record.day, roots)
        if failure is None:
            raise
        raise failure from None
    for root in dict.fromkeys(roots):  # a Dask run killed earlier may have staged under OUT
        discard(root, record.day.isoformat())
    try:
        delete_photos(config, due)
    except OSError as error:  # the day is published; the photos stay due for the next run
        raise OutputError(
            f"Published {record.day}, but could not delete the photos of "
            f"{', '.join(day.isoformat() for day in due)} ({error}): the next run tries again."
        ) from None
    return Published(final[0], folders)


def refresh_analytics_db(config: RunConfig) -> Path:
    """Rewrite the analytics database (one DuckDB view per dataset) over the output root."""
    return write_analytics_db(config.out, config.analytics_db)[0]


def write_report(config: RunConfig, day: dt.date, model: AgeModel) -> ReportPages:
    """Write the published day's HTML report: the chain's page and one page per store; with a
    restricted root, pages an earlier run of the day left under OUT (they list cashiers) go."""
    folder = config.reports_folder(day)
    under_out = config.out / "reports" / day.isoformat()
    if config.reports is None and under_out.resolve() != folder.resolve() and under_out.is_dir():
        shutil.rmtree(under_out)
    return write_pages(
        config.out, day, folder, card=model.card, restricted=config.restricted_root()
    )


def run_day(
    config: RunConfig,
    day: dt.date,
    model: AgeModel | None = None,
    progress: Callable[[int], Progress] | None = None,
) -> Published:
    """Run one day through all stages; `progress(total)` returns a per-photo callback."""
    model = model or load_model(config.model)
    run = start(model, day)
    found = find(config, day)
    preflight(config, found)
    predicted = predict(config, found, model, progress and progress(len(found.captures.table)))
    joined = join(config, day, found, predicted, model)
    gated = gate(config, day, predicted, joined)
    published = publish(config, gated.tables, run_record(run, found, predicted, joined, gated))
    refresh_analytics_db(config)
    pages = write_report(config, day, model)
    return dataclasses.replace(published, report=pages.chain)
