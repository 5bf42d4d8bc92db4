"""One day, end to end: find → predict → join → publish. The CLI and the flow call these."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa

from agebatch import __version__
from agebatch.config import Settings
from agebatch.inputs.captures import Captures, find_captures
from agebatch.inputs.regions import RegionKey, read_face_regions, regions_for
from agebatch.join import connect, join_day, read_catalog, read_transactions
from agebatch.predict.faces import Region
from agebatch.predict.model import AgeModel, compute_device, load_model
from agebatch.predict.stage import Progress, predict_paths
from agebatch.publish import new_run_id, publish_day
from agebatch.reports.compliance import compliance_inputs
from agebatch.reports.shares import add_corrected_shares

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DayInputs:
    """Everything read for one day before any photo is decoded, checked up front."""

    captures: Captures
    lines: pa.Table
    catalog: pa.Table
    face_regions: dict[RegionKey, Region] | None = None  # per camera, from --face-regions


@dataclass
class RunSummary:
    """What one run did: counts, timings, where it published."""

    run_id: str
    day: dt.date
    started_at: dt.datetime = field(
        default_factory=lambda: dt.datetime.now().replace(microsecond=0)
    )
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    model_version: str = ""
    device: str = ""
    photos_per_s: float = 0.0
    published: dict[str, Path] = field(default_factory=dict)

    def record(self) -> pa.Table:
        """This run as one row of the `runs` table."""
        row = {
            "run_id": self.run_id,
            "started_at": self.started_at,
            "agebatch_version": __version__,
            "model_version": self.model_version,
            "device": self.device,
            **{k: self.counts.get(k, 0) for k in RUN_COUNTS},
            **{f"{k}_s": round(self.seconds.get(k, 0.0), 3) for k in STAGES},
            "photos_per_s": round(self.photos_per_s, 2),
        }
        return pa.Table.from_pylist([row])


RUN_COUNTS = (
    "photos_found",
    "photos_decoded",
    "photos_unreadable",
    "photos_no_face",
    "files_ignored",
    "receipts",
    "receipts_matched",
    "receipts_no_photo",
    "receipts_unreadable",
    "receipts_no_face",
    "alcohol_checks",
)
STAGES = ("find", "predict", "join", "publish")


def start(settings: Settings, model: AgeModel) -> RunSummary:
    """Begin a run: its id, model version and device."""
    return RunSummary(
        new_run_id(), settings.day, model_version=model.version, device=compute_device()
    )


def find(settings: Settings, summary: RunSummary) -> DayInputs:
    """Find the day's photos and read its transactions and catalog (fails fast on bad input)."""
    with _timed(summary.seconds, "find"):
        captures = find_captures(settings.day_folder)
        lines = read_transactions(settings.transactions, settings.day)
        catalog = read_catalog(settings.catalog)
        regions = read_face_regions(settings.face_regions) if settings.face_regions else None
    log.info("Read %d transaction lines and %d catalog items", lines.num_rows, catalog.num_rows)
    summary.counts.update(photos_found=len(captures.table), files_ignored=captures.ignored)
    return DayInputs(captures, lines, catalog, regions)


def predict(
    settings: Settings,
    inputs: DayInputs,
    model: AgeModel,
    summary: RunSummary,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """The day's captures with predicted_age and status (ok / unreadable / no_face) added."""
    captures = inputs.captures.table
    paths = [settings.day_folder / photo for photo in captures["photo"]]
    regions = regions_for(
        list(captures["store_id"]),
        list(captures["register_id"]),
        inputs.face_regions,
        settings.face_region,
    )
    predictions, stats = predict_paths(
        paths,
        model,
        batch_size=settings.batch_size,
        workers=settings.workers,
        processes=settings.decode_processes,
        progress=progress,
        photos=settings.photo_kind,
        regions=regions,
    )
    aged = captures.copy()
    aged["predicted_age"] = pd.array([p.age for p in predictions], dtype="Float64")
    aged["status"] = pd.array([p.status for p in predictions], dtype="string")
    log.info(
        "Predicted %d photos (%d unreadable, %d without a face) at %.1f photos/s",
        stats.photos,
        stats.unreadable,
        stats.no_face,
        stats.photos_per_s,
    )
    summary.seconds["predict"] = stats.seconds
    summary.counts.update(
        photos_decoded=stats.decoded,
        photos_unreadable=stats.unreadable,
        photos_no_face=stats.no_face,
    )
    summary.photos_per_s = stats.photos_per_s
    return aged


def join(
    settings: Settings, inputs: DayInputs, aged: pd.DataFrame, model: AgeModel, summary: RunSummary
) -> dict[str, pa.Table]:
    """Match receipts to ages, sum purchases per age group, list restricted sales to review."""
    with _timed(summary.seconds, "join"), connect() as con:
        compliance = compliance_inputs(
            legal_age=settings.legal_age,
            challenge_age=settings.challenge_age,
            margin=settings.margin,
            policy_file=settings.policy,
            card=model.card,
            out=settings.out,
            day=settings.day,
        )
        tables = join_day(
            con,
            day=settings.day,
            lines=inputs.lines,
            catalog=inputs.catalog,
            captures=aged,
            model_version=summary.model_version,
            age_bounds=settings.age_bounds,
            window_before_s=settings.window_before_s,
            window_after_s=settings.window_after_s,
            compliance=compliance,
        )
        confusion = model.card.raw.get("age_confusion") or {}
        tables["age_group_shares"] = add_corrected_shares(
            tables["age_group_shares"],
            confusion.get("counts"),
            f"{model.version} on {confusion.get('split', '?')}",
            settings.age_bounds,
        )
    status = pd.Series(tables["receipt_ages"].column("status").to_pylist(), dtype="string")
    summary.counts.update(
        receipts=len(status),
        receipts_matched=int((status == "matched").sum()),
        receipts_no_photo=int((status == "no_photo").sum()),
        receipts_unreadable=int((status == "unreadable").sum()),
        receipts_no_face=int((status == "no_face").sum()),
        alcohol_checks=tables["alcohol_checks"].num_rows,
    )
    return tables


def publish(settings: Settings, tables: dict[str, pa.Table], summary: RunSummary) -> None:
    """Swap the day's tables and its run record into the output folder."""
    started = time.perf_counter()

    def record() -> pa.Table:
        # Asked for once the tables are staged, so publish_s covers writing them.
        summary.seconds["publish"] = time.perf_counter() - started
        return summary.record()

    summary.published = publish_day(settings.out, settings.day, tables, record, summary.run_id)


def run_day(
    settings: Settings,
    model: AgeModel | None = None,
    progress: Callable[[int], Progress] | None = None,
) -> RunSummary:
    """Run one day through all stages; `progress(total)` returns a per-photo callback."""
    model = model or load_model(settings.model)
    summary = start(settings, model)
    inputs = find(settings, summary)
    total = len(inputs.captures.table)
    aged = predict(settings, inputs, model, summary, progress and progress(total))
    tables = join(settings, inputs, aged, model, summary)
    publish(settings, tables, summary)
    return summary


@contextmanager
def _timed(seconds: dict[str, float], stage: str) -> Iterator[None]:
    """Record how long the block took under seconds[stage]."""
    started = time.perf_counter()
    yield
    seconds[stage] = time.perf_counter() - started
