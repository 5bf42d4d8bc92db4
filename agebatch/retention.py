"""Delete the photos of days published long enough ago (--retention-days).

A day's photos are deleted once the day's current version (its last successful publish) is at
least retention_days old, judged from that version's run record (`runs.published_at`, written
the moment before the day's commit), never from file times; never the day being run, never a
day with no committed run. Only the photos that run read go: each version carries a note
(`photos.json`, written by publish into the version) naming the photo folder it read and a
fingerprint of its photo files (paths, sizes, modification times). A day is due only when this
run's folder for it is that very folder and its photos still match the fingerprint: photos of
another photo root, or photos added or replaced since, are never deleted. Only photo files go
(the suffixes a day's photos may have); the manifest and other files stay. Paths are read
literally (no globs), so an OUT or photo path holding `[`, `*` or `?` means itself.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from agebatch.config import RunConfig
from agebatch.inputs.captures import IMAGE_SUFFIXES
from agebatch.publish import DAYS, RUNS, VERSIONS

log = logging.getLogger(__name__)

PHOTOS_NOTE = "photos.json"  # in each version: which photo folder the run read, and what in it


@dataclass(frozen=True)
class Published:
    """A day's current version: when it was published and the photos its run read."""

    at: dt.datetime  # UTC
    folder: str | None  # the photo folder, resolved; None: the version names none
    fingerprint: str | None  # of the photo files the run read


def photos_note(folder: Path) -> bytes:
    """The note publish writes into a day's version: the photo folder and its fingerprint."""
    files = photo_files(folder)
    note = {"folder": str(folder.resolve()), "fingerprint": fingerprint(folder, files)}
    return json.dumps(note, sort_keys=True).encode()


def fingerprint(folder: Path, files: list[Path]) -> str:
    """A digest of the photo files' paths under folder, sizes and modification times (ns): any
    photo added, removed, replaced or rewritten since changes it (the folder itself is the
    note's other half)."""
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat(follow_symlinks=False)
        line = f"{path.relative_to(folder)}\0{stat.st_size}\0{stat.st_mtime_ns}\n"
        digest.update(line.encode("utf-8", "surrogateescape"))  # a name's own bytes, UTF-8 or not
    return digest.hexdigest()


def last_published(out: Path) -> dict[dt.date, Published]:
    """Each day's current version under out (its pointer in OUT/.days), with its run's
    published_at (UTC) and photo note; versions whose record has no published_at (an older
    agebatch) do not count."""
    days = out / DAYS
    if not days.is_dir():
        return {}
    found = {}
    for name in sorted(os.listdir(days)):
        try:
            day = dt.date.fromisoformat(name)
            version = Path(os.readlink(days / name)).name
        except (ValueError, OSError):
            continue  # a temporary pointer, or something that is not agebatch's
        folder = out / VERSIONS / name / version
        at = _published_at(folder / RUNS / f"run-{version}.parquet")
        if at is not None:
            found[day] = Published(at, *_note(folder / PHOTOS_NOTE))
    return found


def _published_at(record: Path) -> dt.datetime | None:
    try:
        table = pq.read_table(record)
    except (OSError, pa.ArrowException):
        return None
    if "published_at" not in table.column_names:
        return None
    at = table.column("published_at")[0].as_py()
    return None if at is None else at.astimezone(dt.UTC)


def _note(path: Path) -> tuple[str | None, str | None]:
    try:
        note = json.loads(path.read_bytes())
        return str(note["folder"]), str(note["fingerprint"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, None


def due_days(config: RunConfig, day: dt.date, now: dt.datetime) -> list[dt.date]:
    """The days other than `day` whose photos are due for deletion at `now` and still there:
    published long enough ago, from this very photo folder, with the same photos."""
    if config.retention_days is None:
        return []
    age = dt.timedelta(days=config.retention_days)
    return [
        earlier
        for earlier, published in sorted(last_published(config.out).items())
        if earlier != day and now - published.at >= age and _same_photos(config, earlier, published)
    ]


def _same_photos(config: RunConfig, day: dt.date, published: Published) -> bool:
    """Whether this run's folder for `day` is the one its version read, photos unchanged."""
    folder = config.day_folder(day)
    if published.folder is None or not folder.is_dir():
        return False
    if str(folder.resolve()) != published.folder:
        return False
    files = photo_files(folder)
    if not files:
        return False
    if fingerprint(folder, files) != published.fingerprint:
        log.warning(
            "Retention: kept the photos of %s in %s: they changed since the day was published",
            day,
            folder,
        )
        return False
    return True


def photo_files(folder: Path) -> list[Path]:
    """The photo files under a day folder (symbolic links to folders are not followed)."""
    if not folder.is_dir() or folder.is_symlink():
        return []
    found = []
    for parent, _, files in os.walk(folder):
        found += [Path(parent, f) for f in files if f.lower().endswith(IMAGE_SUFFIXES)]
    return sorted(found)


def delete_photos(config: RunConfig, days: list[dt.date]) -> dict[dt.date, int]:
    """Delete the photo files of each day and the folders they leave empty, each day checked
    again just before (same folder, same photos); photos deleted per day."""
    published = last_published(config.out)
    deleted = {}
    for day in days:
        if day not in published or not _same_photos(config, day, published[day]):
            continue
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
