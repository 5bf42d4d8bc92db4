"""One day, end to end: STAGES, the one list of the night (find → preflight → predict →
transform → gate → publish → analytics_db → report) that run_day and the flow both run.

Each stage takes the Night so far and returns it with what it made, with its own counts and
seconds; the run record (one row of `runs`) is assembled from those returns.
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
from agebatch.config import Region, RunConfig
from agebatch.errors import CoverageRefused, OutputError
from agebatch.inputs.captures import Captures, check_ties, find_captures
from agebatch.inputs.clocks import name_unknown_cameras, read_clock_offsets
from agebatch.inputs.mapping import CONTRACT, read_format
from agebatch.inputs.regions import RegionKey, read_face_regions, regions_for
from agebatch.inputs.transactions import (
    Transactions,
    keyed_captures,
    read_catalog,
    read_lines,
    receipt_checks,
    unknown_skus,
)
from agebatch.predict.model import AgeModel, compute_device, load_model
from agebatch.predict.paths import PathsUnder
from agebatch.predict.stage import PredictStats, Progress, predict_paths
from agebatch.preflight import (
    Room,
    check_outputs,
    check_owned,
    check_report_places,
    check_settings,
    write_failure,
)
from agebatch.publish import new_run_id, publish_day, publish_split
from agebatch.records import Published, RunRecord
from agebatch.reports.html import ReportPages, write_pages
from agebatch.republish import published_counts, refuse_worse_day
from agebatch.retention import PHOTOS_NOTE, delete_photos, due_days, photos_note
from agebatch.schema import RESTRICTED, ReceiptStatus, conform
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
from agebatch.transform.compliance import ComplianceInputs
from agebatch.transform.coverage import TABLE as STORE_COVERAGE
from agebatch.transform.coverage import Coverage, check_coverage
from agebatch.transform.join import transform_day

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Run:
    """A run's identity: which day, when, with which model, on which device."""

    run_id: str
    day: dt.date
    started_at: dt.datetime
    model_version: str
    device: str
    model_card: str | None = None  # the card's digest, shortened (runs.model_card)


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
    quarantined: pa.Table | None = None  # the receipts a bad line quarantined (none: None)
    receipt_key: tuple[str, ...] = ("receipt_id",)  # the columns that made a receipt
    quarantine_gate: str = "passed"  # or accepted (--accept-quarantine)
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


def start(model: AgeModel, day: dt.date) -> Run:
    """Begin a run of a day: its id, start time, model version and device."""
    return Run(
        run_id=new_run_id(),
        day=day,
        started_at=dt.datetime.now(dt.UTC).replace(microsecond=0),
        model_version=model.version,
        device=compute_device(),
        model_card=model.card.short_digest(),
    )


def find(config: RunConfig, day: dt.date) -> Found:
    """Find the day's photos and read its transactions and catalog (fails fast on bad input)."""
    started = time.perf_counter()
    captures = find_captures(config.day_folder(day), config.timezone)
    fmt = read_format(config.transactions_format) if config.transactions_format else CONTRACT
    transactions = read_lines(config.transactions, day, config.timezone, fmt)
    for row in transactions.quarantined.to_pylist():
        log.warning(
            "Quarantined receipt %s (%s): %s", row["receipt_id"], row["file"], row["detail"]
        )
    quarantine_gate = transactions.gate(config.accept_quarantine)  # refused: exit 3, no decode
    lines = transactions.lines
    captures = keyed_captures(captures, transactions.key)
    catalog = read_catalog(config.catalog)
    if (unlisted := unknown_skus(lines, catalog)) is not None:
        log.warning("Catalog: %s", unlisted)
    refuse_empty_till(config, day, transactions, len(captures.table))
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
    return Found(
        captures,
        lines,
        catalog,
        regions,
        offsets,
        seconds,
        checks,
        transactions.quarantined,
        transactions.key,
        quarantine_gate,
        day,
    )


def refuse_empty_till(
    config: RunConfig, day: dt.date, transactions: Transactions, photos: int
) -> None:
    """Refuse a day whose till file holds no line while its cameras took photos (a failed
    export would publish a day of no sales), unless accept_low_coverage. A day already
    published is left to the worse-day gate (refuse_worse_day names the run it would replace)."""
    if photos == 0 or transactions.lines.num_rows or transactions.quarantined.num_rows:
        return
    if published_counts(config.out, day) is not None:
        return
    if config.accept_low_coverage:
        log.warning("The till file of %s has no line, %d photos: published as told", day, photos)
        return
    raise CoverageRefused(
        f"Refused to publish {day}: its transactions file holds no line but its cameras took "
        f"{photos:,} photos (a till export that failed?). Nothing was published: check the "
        "export, or pass --accept-low-coverage to publish the day anyway."
    )


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
    aged["quality_score"] = pd.array([p.quality for p in predictions], dtype="Float64")
    aged["quality_part"] = pd.array([p.quality_part or None for p in predictions], dtype="string")
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
    ages, counts, verdicts = collect(job, shards, outcomes)
    aged = add_ages(found.captures.table, ages)
    stats = shard_stats(aged, seconds, verdicts)
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


def transform(
    config: RunConfig, day: dt.date, found: Found, predicted: Predicted, model: AgeModel
) -> Joined:
    """Match receipts to ages, sum purchases per age group, list restricted sales to review,
    sum the affinity window (agebatch.transform); every table checked against its schema."""
    started = time.perf_counter()
    tables, compliance = transform_day(
        config,
        model.card,
        model.version,
        day,
        lines=found.lines,
        catalog=found.catalog,
        captures=predicted.captures,
        age_checks=found.age_checks,
        clock_offsets=found.clock_offsets,
        quarantined=found.quarantined,
        verdicts=predicted.stats.verdicts,
    )
    _warn_changed_cameras(tables["cameras"])
    return Joined(tables, time.perf_counter() - started, compliance)


def _warn_changed_cameras(cameras: pa.Table) -> None:
    """One warning naming the cameras read otherwise than on their latest earlier verdict (the
    `cameras` table's `changed`): a camera re-mounted or swapped, for whoever reads the log."""
    changed = [row for row in cameras.to_pylist() if row["changed"]]
    if changed:
        log.warning(
            "%d camera(s) read otherwise than on their latest earlier day (re-mounted or "
            "swapped?): %s; see the cameras table",
            len(changed),
            ", ".join(
                f"{r['store_id']}/{r['register_id']} ({r['saves_before']} on {r['day_before']}"
                f" -> {r['saves']})"
                for r in changed
            ),
        )


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
        receipts_quarantined=joined.tables["quarantined_receipts"].num_rows,
        quarantine_gate=found.quarantine_gate,
        receipt_key=list(found.receipt_key),
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
        model_card=run.model_card,
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
        config.out,
        day,
        folder,
        card=model.card,
        restricted=config.restricted_root(),
        currency=config.currency,
    )


@dataclass(frozen=True)
class Night:
    """One night as it goes through the stages: its run, and what each stage made so far."""

    config: RunConfig
    model: AgeModel
    run: Run
    progress: Callable[[int], Progress] | None = None  # progress(total): a per-photo callback
    found: Found | None = None
    predicted: Predicted | None = None
    joined: Joined | None = None
    gated: Gated | None = None
    published: Published | None = None
    pages: ReportPages | None = None

    @property
    def day(self) -> dt.date:
        """The day the night runs."""
        return self.run.day


def find_stage(night: Night) -> Night:
    """Find the day's photos and read its transactions and catalog (fails fast on bad input)."""
    return dataclasses.replace(night, found=find(night.config, night.day))


def preflight_stage(night: Night) -> Night:
    """Check every output root can take the day before any photo is decoded."""
    preflight(night.config, night.found)
    return night


def predict_stage(night: Night) -> Night:
    """Predict an age for every photo of the day."""
    total = len(night.found.captures.table)
    progress = night.progress and night.progress(total)
    return dataclasses.replace(
        night, predicted=predict(night.config, night.found, night.model, progress)
    )


def transform_stage(night: Night) -> Night:
    """Build the day's tables in DuckDB (agebatch.transform)."""
    joined = transform(night.config, night.day, night.found, night.predicted, night.model)
    return dataclasses.replace(night, joined=joined)


def gate_stage(night: Night) -> Night:
    """Refuse the day when a store's photos or matches collapsed (the coverage gate)."""
    gated = gate(night.config, night.day, night.predicted, night.joined)
    return dataclasses.replace(night, gated=gated)


def publish_stage(night: Night) -> Night:
    """Write the day's Parquet and its run record to the output folder(s), whole or not at
    all."""
    record = run_record(night.run, night.found, night.predicted, night.joined, night.gated)
    published = publish(night.config, night.gated.tables, record)
    return dataclasses.replace(night, published=published)


def analytics_db_stage(night: Night) -> Night:
    """Refresh the DuckDB file analysts' tools open (one view per dataset over the output)."""
    refresh_analytics_db(night.config)
    return night


def report_stage(night: Night) -> Night:
    """Write the day's HTML report: the chain's page and one page per store."""
    pages = write_report(night.config, night.day, night.model)
    published = dataclasses.replace(night.published, report=pages.chain)
    return dataclasses.replace(night, pages=pages, published=published)


@dataclass(frozen=True)
class Stage:
    """One stage of the night: a step from the night so far to the night with what it made."""

    name: str
    step: Callable[[Night], Night]
    io: bool  # it reads inputs or writes outputs: the flow retries it (never the model or SQL)


# The night, in order: run_day and the Prefect flow (flows/nightly.py) both run this list.
STAGES = (
    Stage("find", find_stage, io=True),
    Stage("preflight", preflight_stage, io=True),
    Stage("predict", predict_stage, io=False),
    Stage("transform", transform_stage, io=False),
    Stage("gate", gate_stage, io=True),
    Stage("publish", publish_stage, io=True),
    Stage("analytics_db", analytics_db_stage, io=True),
    Stage("report", report_stage, io=True),
)


def begin(
    config: RunConfig,
    day: dt.date,
    model: AgeModel | None = None,
    progress: Callable[[int], Progress] | None = None,
) -> Night:
    """A night before its first stage: the model loaded (unless given) and the run started."""
    model = model or load_model(config.model)
    return Night(config, model, start(model, day), progress)


def run_stages(
    night: Night, run: Callable[[Stage, Night], Night] = lambda stage, night: stage.step(night)
) -> Night:
    """Take the night through every stage in order; `run(stage, night)` runs one (the flow
    runs each as a Prefect task)."""
    for stage in STAGES:
        night = run(stage, night)
    return night


def run_day(
    config: RunConfig,
    day: dt.date,
    model: AgeModel | None = None,
    progress: Callable[[int], Progress] | None = None,
) -> Published:
    """Run one day through all stages; `progress(total)` returns a per-photo callback."""
    check_settings(config, day)  # inputs, settings files and the card, before the model loads
    return run_stages(begin(config, day, model, progress)).published
