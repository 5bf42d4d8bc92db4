"""The `cameras` table's inputs: each camera's verdict under `--photo-kind auto`
(agebatch.predict.cameras) as rows, and the camera's row on its previous published day.

sql/cameras.sql builds one row per camera (store_id, register_id) that had photos that day:
what the camera was read as, the sample's votes and misalignment, its photos per status, and
what it was read as on its previous published day (at most HISTORY_DAYS back), so a camera
that was re-mounted shows (docs/face-finding.md).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from agebatch.config import PhotoKind
from agebatch.predict.cameras import Verdict
from agebatch.schema import CAMERA_HISTORY_DAYS, schema
from agebatch.transform.history import read_history

log = logging.getLogger(__name__)

TABLE = "cameras"
# A camera's previous row is looked for this many days back (a store shut on Sundays, a till
# out of use for a fortnight still compares with its last day).
HISTORY_DAYS = CAMERA_HISTORY_DAYS
VERDICTS_SCHEMA = pa.schema(
    [
        ("store_id", pa.string()),
        ("register_id", pa.string()),
        ("saves", pa.string()),
        ("crop_votes", pa.int64()),
        ("frame_votes", pa.int64()),
        ("misaligned_crops", pa.int64()),
        ("misalignment", pa.float64()),
    ]
)
HISTORY_COLUMNS = ("store_id", "register_id", "saves", "misalignment")


@dataclass(frozen=True)
class CameraInputs:
    """What the cameras table needs besides the day's photos: the photo kind set, the
    verdicts taken under auto, and the earlier days' rows."""

    photo_kind: PhotoKind = PhotoKind.AUTO
    verdicts: pa.Table = field(default_factory=VERDICTS_SCHEMA.empty_table)
    history: pa.Table = field(default_factory=lambda: history_schema().empty_table())


def history_schema() -> pa.Schema:
    """The columns of the cameras history the SQL reads: day and HISTORY_COLUMNS."""
    table = schema(TABLE)
    return pa.schema([table.field("day"), *(table.field(name) for name in HISTORY_COLUMNS)])


def verdict_table(verdicts: Iterable[Verdict]) -> pa.Table:
    """The verdicts of (store_id, register_id) cameras as rows (VERDICTS_SCHEMA; misalignment
    to 3 decimals, as logged); a verdict whose camera is not such a pair (a folder of
    `agebatch predict`) is not a till's."""
    rows = []
    for verdict in verdicts:
        if not (isinstance(verdict.camera, tuple) and len(verdict.camera) == 2):
            continue
        store_id, register_id = verdict.camera
        row = verdict.row()
        del row["camera"]
        rows.append({"store_id": str(store_id), "register_id": str(register_id), **row})
    return pa.Table.from_pylist(rows, VERDICTS_SCHEMA)


def camera_history(out: Path, day: dt.date, days: int = HISTORY_DAYS) -> pa.Table:
    """The cameras rows published under out on the `days` days before day."""
    first, last = day - dt.timedelta(days=days), day - dt.timedelta(days=1)
    return read_history([out], TABLE, first, last, HISTORY_COLUMNS).cast(history_schema())


def camera_inputs(
    out: Path, day: dt.date, photo_kind: PhotoKind, verdicts: Iterable[Verdict]
) -> CameraInputs:
    """The cameras table's inputs for a run of day: its photo kind, its verdicts, and the
    rows of the days before it published under out."""
    return CameraInputs(PhotoKind(photo_kind), verdict_table(verdicts), camera_history(out, day))
