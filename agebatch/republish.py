"""Never a worse day silently: refuse to replace a published day with a collapsed one.

Before a day is published again, its new counts are compared with those of the version it
would replace (that version's own run record, read from OUT/.versions/<day>/<run>/runs): the
day's receipts, its photos, its usable photos (read, with a face) and its matched share (of
receipts with an age). A count that falls below half of what is published (COLLAPSE), when
what is published has at least coverage_min_count of it, or a matched share that falls by
more than coverage_margin, is a collapse: an empty or header-only transactions file replacing a
400-receipt day, a photo folder gone, a camera whose photos stopped showing faces. The run is
refused like the coverage gate (CoverageRefused: nothing published, exit 3) unless
accept_worse_day; then it is published and `runs` records it (coverage_gate = accepted, each
collapse in coverage_over, 'day receipts 400 -> 0 (replacing run …)').
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from agebatch.config import RunConfig
from agebatch.errors import CoverageRefused
from agebatch.publish import DAYS, RUNS, VERSIONS
from agebatch.schema import Gate, PhotoStatus, ReceiptStatus
from agebatch.transform.coverage import Coverage

COLLAPSE = 0.5  # a count below this share of the published one is a collapse


@dataclass(frozen=True)
class DayCounts:
    """What a day's version has, to compare one version with the next."""

    receipts: int
    matched: int  # receipts with an age
    photos: int
    usable: int  # photos read, with a face

    @property
    def matched_share(self) -> float:
        return self.matched / self.receipts if self.receipts else 0.0


def day_counts(captures: pd.DataFrame, receipt_ages: pa.Table) -> DayCounts:
    """The counts of a day about to be published, from its aged captures and receipt_ages."""
    status = receipt_ages.column("status")
    return DayCounts(
        receipts=receipt_ages.num_rows,
        matched=pc.sum(pc.equal(status, str(ReceiptStatus.MATCHED))).as_py() or 0,
        photos=len(captures),
        usable=int((captures["status"] == str(PhotoStatus.OK)).sum()),
    )


def published_counts(out: Path, day: dt.date) -> tuple[str, DayCounts] | None:
    """The run id and counts of the day's published version under out, from that run's own
    record (None: the day is not published, or its record lacks the counts)."""
    try:
        run_id = Path(os.readlink(out / DAYS / day.isoformat())).name
        record = pq.read_table(
            out / VERSIONS / day.isoformat() / run_id / RUNS / f"run-{run_id}.parquet"
        ).to_pylist()[0]
        counts = DayCounts(
            receipts=int(record["receipts"]),
            matched=int(record[f"receipts_{ReceiptStatus.MATCHED}"]),
            photos=int(record["photos_found"]),
            usable=int(record["photos_decoded"]) - int(record["photos_no_face"]),
        )
    except (OSError, pa.ArrowException, KeyError, IndexError, TypeError, ValueError):
        return None
    return run_id, counts


def collapses(before: DayCounts, after: DayCounts, min_count: int, margin: float) -> list[str]:
    """Each measure that collapsed from before to after, as 'receipts 400 -> 0'."""
    found = []
    for name in ("receipts", "photos", "usable"):
        old, new = getattr(before, name), getattr(after, name)
        if old >= min_count and new < old * COLLAPSE:
            label = "usable photos" if name == "usable" else name
            found.append(f"{label} {old} -> {new}")
    if (
        min(before.receipts, after.receipts) >= min_count
        and after.matched_share < before.matched_share - margin
    ):
        found.append(f"matched share {before.matched_share:.3f} -> {after.matched_share:.3f}")
    return found


def refuse_worse_day(
    config: RunConfig,
    day: dt.date,
    captures: pd.DataFrame,
    receipt_ages: pa.Table,
    coverage: Coverage,
) -> Coverage:
    """Raise CoverageRefused when the day would replace a published version with a collapsed
    one (unless config.accept_worse_day); else the gate's coverage, with any accepted collapse
    recorded in it."""
    published = published_counts(config.out, day)
    if published is None:
        return coverage
    run_id, before = published
    after = day_counts(captures, receipt_ages)
    worse = collapses(before, after, config.coverage_min_count, config.coverage_margin)
    if not worse:
        return coverage
    if not config.accept_worse_day:
        raise CoverageRefused(
            f"Refused to publish {day}: it would replace the published run {run_id} with a "
            f"much worse day ({'; '.join(worse)}). Nothing was published: check the "
            "transactions, the photos and the cameras, or pass --accept-worse-day to publish "
            "it anyway."
        )
    over = [f"day {item} (replacing run {run_id})" for item in worse]
    return dataclasses.replace(coverage, gate=Gate.ACCEPTED, over=[*coverage.over, *over])
