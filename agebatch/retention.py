"""Delete the photos of days published long enough ago (--retention-days).

A day's photos are deleted once the day's last successful publish is at least retention_days
old, judged from its run records (`runs.published_at`, written the moment before the day's
commit), never from file times; never the day being run, never a day with no committed run.
Only photo files go (the suffixes a day's photos may have); the manifest and other files stay.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

from agebatch.config import RunConfig
from agebatch.inputs.captures import IMAGE_SUFFIXES
from agebatch.publish import RUNS
from agebatch.transform.history import read_history

log = logging.getLogger(__name__)


def last_published(out: Path) -> dict[dt.date, dt.datetime]:
    """Each day's last committed publish (UTC), from its run records under out (read through
    the one history reader, OUT taken literally); records that have no published_at (written
    by an older agebatch) do not count."""
    last: dict[dt.date, dt.datetime] = {}
    for row in read_history([out], RUNS, None, None, ["published_at"]).to_pylist():
        at = row["published_at"]
        if at is not None and (row["day"] not in last or at > last[row["day"]]):
            last[row["day"]] = at.astimezone(dt.UTC)
    return last


def due_days(config: RunConfig, day: dt.date, now: dt.datetime) -> list[dt.date]:
    """The days other than `day` whose photos are due for deletion at `now` and still there."""
    if config.retention_days is None:
        return []
    age = dt.timedelta(days=config.retention_days)
    return [
        earlier
        for earlier, at in sorted(last_published(config.out).items())
        if earlier != day and now - at >= age and photo_files(config.day_folder(earlier))
    ]


def photo_files(folder: Path) -> list[Path]:
    """The photo files under a day folder (symbolic links to folders are not followed)."""
    if not folder.is_dir() or folder.is_symlink():
        return []
    found = []
    for parent, _, files in os.walk(folder):
        found += [Path(parent, f) for f in files if f.lower().endswith(IMAGE_SUFFIXES)]
    return sorted(found)


def delete_photos(config: RunConfig, days: list[dt.date]) -> dict[dt.date, int]:
    """Delete the photo files of each day and the folders they leave empty; photos per day."""
    deleted = {}
    for day in days:
        folder = config.day_folder(day)
        files = photo_files(folder)
        for path in files:
            path.unlink()
        for parent, _, _ in sorted(os.walk(folder, topdown=False), reverse=True):
            if Path(parent) != folder and not os.listdir(parent):
                os.rmdir(parent)
        deleted[day] = len(files)
        log.info("Retention: deleted %d photos of %s from %s", len(files), day, folder)
    return deleted
