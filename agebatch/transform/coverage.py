"""The coverage gate: refuse to publish a day whose photos or matches collapsed at a store.

Per store, four shares of the day — unreadable, faceless and refused photos (of the
store's photos), receipts without a photo (of its receipts) — are set against the median of the
same share over the store's earlier published days (`store_coverage`, up to coverage_days back).
A share more than coverage_margin above its median is over the limit, and the day is refused
unless accept_low_coverage. A store with no history has a median of 0; a share of fewer than
coverage_min_count photos (receipts) is not judged.
"""

from __future__ import annotations

import datetime as dt
import logging
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

from agebatch.config import RunConfig
from agebatch.errors import CoverageRefused
from agebatch.schema import CoverageMeasure, Gate, PhotoStatus, ReceiptStatus, Verdict, schema
from agebatch.transform.history import read_history

log = logging.getLogger(__name__)

TABLE = "store_coverage"
# What each measure counts, and among what: (table, status column value).
COUNTED = {
    CoverageMeasure.PHOTOS_UNREADABLE: ("photos", PhotoStatus.UNREADABLE),
    CoverageMeasure.PHOTOS_NO_FACE: ("photos", PhotoStatus.NO_FACE),
    CoverageMeasure.PHOTOS_REFUSED: ("photos", PhotoStatus.REFUSED),
    CoverageMeasure.PHOTOS_LOW_QUALITY: ("photos", PhotoStatus.LOW_QUALITY),
    CoverageMeasure.RECEIPTS_NO_PHOTO: ("receipts", ReceiptStatus.NO_PHOTO),
}


@dataclass(frozen=True)
class Coverage:
    """The gate's figures for a day (one store_coverage row per store and measure)."""

    table: pa.Table
    gate: Gate
    over: list[str]  # 'S01 photos_unreadable 0.987 > 0.210' per share over its limit


def check_coverage(
    config: RunConfig, day: dt.date, captures: pd.DataFrame, receipt_ages: pa.Table
) -> Coverage:
    """Judge the day's shares per store against their trailing medians; raise CoverageRefused
    (with every share over its limit) unless none is, or config.accept_low_coverage."""
    counts = store_counts(captures, receipt_ages)
    history = coverage_history(config.out, day, config.coverage_days)
    rows = judge(counts, history, config.coverage_margin, config.coverage_min_count)
    over = [row for row in rows if row["verdict"] == Verdict.OVER_LIMIT]
    for row in over:
        log.warning("Coverage: %s", explain(row))
    if over and not config.accept_low_coverage:
        raise CoverageRefused(
            f"Refused to publish {day}: " + "; ".join(explain(row) for row in over) + ". "
            "Nothing was published: check the cameras, the photos and the model card, or pass "
            "--accept-low-coverage to publish the day anyway."
        )
    table = pa.Table.from_pylist([{"day": day, **row} for row in rows], schema(TABLE))
    return Coverage(
        table=table,
        gate=Gate.ACCEPTED if over else Gate.PASSED,
        over=[
            f"{r['store_id']} {r['measure']} {r['share']:.3f} > {r['limit_share']:.3f}"
            for r in over
        ],
    )


def store_counts(
    captures: pd.DataFrame, receipt_ages: pa.Table
) -> dict[tuple[str, str], tuple[int, int]]:
    """(store_id, measure) → (affected, total) for every store with photos or receipts."""
    frames = {
        "photos": captures[["store_id", "status"]].astype(str),
        "receipts": receipt_ages.select(["store_id", "status"]).to_pandas().astype(str),
    }
    stores = sorted(set(frames["photos"]["store_id"]) | set(frames["receipts"]["store_id"]))
    counts = {}
    for store in stores:
        for measure, (kind, status) in COUNTED.items():
            rows = frames[kind][frames[kind]["store_id"] == store]
            counts[(store, measure.value)] = (int((rows["status"] == status).sum()), len(rows))
    return counts


def coverage_history(out: Path, day: dt.date, days: int) -> pa.Table:
    """store_id, measure, share, total of the store_coverage days published in the `days`
    before `day` (days without it are skipped)."""
    columns = ["store_id", "measure", "share", "total"]
    first, last = day - dt.timedelta(days=days), day - dt.timedelta(days=1)
    return read_history([out], TABLE, first, last, columns).select(columns)


def judge(
    counts: dict[tuple[str, str], tuple[int, int]],
    history: pa.Table,
    margin: float,
    min_count: int,
) -> list[dict[str, object]]:
    """One store_coverage row (without day) per store and measure: share, baseline, verdict.

    The baseline is the median share over the earlier days on which the store had at least
    min_count photos (receipts), 0 with none; the limit is baseline + margin.
    """
    earlier: dict[tuple[str, str], list[float]] = {}
    for row in history.to_pylist():
        if row["share"] is not None and row["total"] >= min_count:
            earlier.setdefault((row["store_id"], row["measure"]), []).append(row["share"])
    rows = []
    for (store, measure), (affected, total) in counts.items():
        shares: Sequence[float] = earlier.get((store, measure), [])
        baseline = statistics.median(shares) if shares else 0.0
        share = affected / total if total else None
        limit = baseline + margin
        if total < min_count or share is None:
            verdict = Verdict.TOO_FEW
        else:
            verdict = Verdict.OVER_LIMIT if share > limit else Verdict.OK
        rows.append(
            {
                "store_id": store,
                "measure": measure,
                "affected": affected,
                "total": total,
                "share": share,
                "baseline": baseline,
                "history_days": len(shares),
                "limit_share": limit,
                "verdict": verdict.value,
            }
        )
    return rows


def explain(row: dict[str, object]) -> str:
    """One share over its limit, for people: store, what, how many, against what."""
    kind, status = COUNTED[CoverageMeasure(row["measure"])]
    what = {
        PhotoStatus.UNREADABLE: "are unreadable",
        PhotoStatus.NO_FACE: "show no face",
        PhotoStatus.REFUSED: "were refused (links out, pipes, over a budget)",
        PhotoStatus.LOW_QUALITY: "show a face below the model card's quality floor",
        ReceiptStatus.NO_PHOTO: "have no photo",
    }[status]
    days = row["history_days"]
    history = (
        f"a median of {row['baseline']:.1%} over {days} earlier days" if days else "no history"
    )
    return (
        f"at store {row['store_id']} {row['affected']} of {row['total']} {kind} "
        f"({row['share']:.1%}) {what}, against {history} (limit {row['limit_share']:.1%})"
    )
