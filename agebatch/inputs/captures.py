"""Find one day's photos and their capture metadata (store, register, time, receipt)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

from agebatch.errors import InputError
from agebatch.inputs.files import Refusal, open_inside, shown

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MANIFEST = "captures.csv"
# <YYYYMMDDTHHMMSS>[Z|±HHMM][_<n>].<ext>: the capture time on the chain's wall clock, or with
# a UTC offset.
_NAME = re.compile(r"^(\d{8}T\d{6})(Z|[+-]\d{4})?(?:_\d+)?\.(?:jpe?g|png)$", re.IGNORECASE)
# A time that ends in a UTC offset: ...12:00:00Z, ...01:30+01:00, ...01:30:00-0500.
# A capture time starts with its date in digits: words pandas would read as times ('now',
# 'today') are not times a camera wrote.
_TIME_SHAPE = r"^\s*\d{4}-?\d{2}-?\d{2}[T ]\d{2}:?\d{2}"
_OFFSET = r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$"
# captured_at_utc: naive UTC, set only where the capture time carried an offset.
CAPTURE_COLUMNS = ["photo", "store_id", "register_id", "captured_at", "receipt_id"]


@dataclass(frozen=True)
class Captures:
    """A day's captures (one row per photo) and the count of files that were ignored."""

    folder: Path  # the day folder; photos are relative to it
    table: pd.DataFrame  # photo, store_id, register_id, captured_at, receipt_id, captured_at_utc
    ignored: int
    source: str  # "names" or "manifest"


def find_captures(day_folder: Path, timezone: str) -> Captures:
    """List the photos of one day folder, from captures.csv when present, else from names.

    Capture times are the wall clock of `timezone`; a time with a UTC offset (in the manifest,
    or `Z`/`±HHMM` after the time in a file name) also gets captured_at_utc.
    """
    if not day_folder.is_dir():
        raise InputError(
            f"Photo folder {day_folder} does not exist: check --photos and --day "
            "(a day with no photos needs an empty folder)."
        )
    files = _image_files(day_folder)
    manifest = day_folder / MANIFEST
    if os.path.lexists(manifest):  # a link or a named pipe by that name is refused, not skipped
        table = _read_manifest(manifest, timezone)
        listed = set(table["photo"])
        ignored = files.ignored + sum(1 for photo in files.photos if photo not in listed)
        captures = Captures(day_folder, table, ignored, "manifest")
    else:
        captures = _from_names(day_folder, files, timezone)
    log.info(
        "Found %d photos in %s (from %s), ignored %d other files",
        len(captures.table),
        day_folder,
        captures.source,
        captures.ignored,
    )
    return captures


@dataclass(frozen=True)
class _Files:
    photos: list[str]  # relative to the day folder, '/'-separated
    ignored: int


def _image_files(day_folder: Path) -> _Files:
    """Walk the day folder with scandir (fast on 100,000 files); split images from the rest."""
    photos: list[str] = []
    ignored = 0
    untext: list[str] = []
    stack = [""]
    while stack:
        rel = stack.pop()
        with os.scandir(day_folder / rel if rel else day_folder) as entries:
            for entry in entries:
                name = f"{rel}/{entry.name}" if rel else entry.name
                if entry.is_dir(follow_symlinks=False):
                    stack.append(name)
                elif name == MANIFEST:
                    continue
                elif not entry.name.lower().endswith(IMAGE_SUFFIXES):
                    ignored += 1
                elif not _is_text(name):
                    untext.append(name)
                else:
                    photos.append(name)
    if untext:
        log.warning(
            "Ignored %d photo(s) whose path is not UTF-8 text, so names no store or register "
            "(first: %s)",
            len(untext),
            shown(min(untext)),
        )
    photos.sort()
    return _Files(photos, ignored + len(untext))


def _is_text(name: str) -> bool:
    """Whether a name the file system gave is UTF-8 text (undecodable bytes come as surrogates,
    which no table or Parquet file can hold)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _from_names(day_folder: Path, files: _Files, timezone: str) -> Captures:
    """Captures from the layout <store_id>/<register_id>/<YYYYMMDDTHHMMSS>[_<n>].jpg."""
    rows = []
    ignored = files.ignored
    for photo in files.photos:
        parts = photo.split("/")
        match = _NAME.match(parts[-1])
        if len(parts) != 3 or match is None:
            ignored += 1
            continue
        try:
            written = match.group(1) + (match.group(2) or "").replace("z", "Z")
            form = "%Y%m%dT%H%M%S" + ("%z" if match.group(2) else "")
            captured_at = dt.datetime.strptime(written, form)
        except ValueError:  # e.g. month 13
            ignored += 1
            continue
        rows.append((photo, parts[0], parts[1], captured_at.isoformat(), None))
    table = pd.DataFrame(rows, columns=CAPTURE_COLUMNS)
    local, utc, _ = _times(table["captured_at"].astype("string"), timezone)
    return Captures(day_folder, _typed(table.assign(captured_at=local), utc), ignored, "names")


def _read_manifest(path: Path, timezone: str) -> pd.DataFrame:
    """Read captures.csv (photo,store_id,register_id,captured_at[,receipt_id]) and check it."""
    table, lines = _manifest_text(path)
    missing = [c for c in CAPTURE_COLUMNS[:4] if c not in table.columns]
    if missing:
        raise InputError(
            f"Capture manifest {path} lacks the column(s) {', '.join(missing)} "
            "(expected photo,store_id,register_id,captured_at and optionally receipt_id)."
        )
    if "receipt_id" not in table.columns:
        table["receipt_id"] = ""
    table = table[CAPTURE_COLUMNS].copy()
    local, utc, bad = _times(table["captured_at"].astype("string"), timezone)
    if len(bad):
        raise InputError(
            f"Capture manifest {path}: column captured_at has {len(bad)} value(s) that are not "
            f"timestamps (first: {bad.iloc[0]!r} on line {lines[bad.index[0]]:,})."
        )
    table["captured_at"] = local
    photo = table["photo"].str.replace("\\", "/", regex=False)
    table["photo"] = photo.str.replace(r"^(\./)+", "", regex=True)
    outside = table["photo"].map(_not_inside).astype(bool)  # bool also when no row (header only)
    if outside.any():
        row = int(outside.to_numpy().argmax())
        raise InputError(
            f"Capture manifest {path}, line {lines[row]:,}: photo {table['photo'].iloc[row]!r} "
            "is not a path inside the day folder (photos are named relative to it, without "
            "'..' or a leading '/')."
        )
    table["receipt_id"] = table["receipt_id"].replace("", None)
    if table["photo"].duplicated().any():
        first = table["photo"][table["photo"].duplicated()].iloc[0]
        raise InputError(f"Capture manifest {path} lists the photo {first!r} more than once.")
    return _typed(table, utc)


def _not_inside(photo: str) -> bool:
    """Whether a manifest's photo name (already '/'-separated) may name a file outside the day
    folder, or none: empty, absolute, a drive, '..', or a control character."""
    return (
        photo in ("", ".")
        or photo.startswith("/")
        or re.match(r"^[A-Za-z]:", photo) is not None
        or ".." in photo.split("/")
        or any(ord(char) < 32 for char in photo)
    )


def _manifest_text(path: Path) -> tuple[pd.DataFrame, list[int]]:
    """captures.csv as text columns, read strictly, and the file line each row ends on.

    The manifest is opened like a photo (a regular file whose real path is in the day folder,
    files.open_inside), must be UTF-8, and every line must have as many fields as the header.
    """
    try:
        with open_inside(path, Path(os.path.realpath(path.parent))) as file:
            data = file.read()
    except Refusal as refusal:
        raise InputError(
            f"Capture manifest {path} is refused, {refusal}: it must be a regular file in the day "
            "folder."
        ) from None
    except OSError as error:
        raise InputError(f"Capture manifest {path} cannot be read: {error.strerror}.") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise InputError(f"Capture manifest {path}: line {line:,} is not UTF-8 text.") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows, lines, start = [], [], 1
    try:
        header = next(reader, None)
        if header is None:
            raise InputError(
                f"Capture manifest {path} is empty: it needs the header "
                "photo,store_id,register_id,captured_at[,receipt_id] (delete it to use file "
                "names)."
            )
        for fields in reader:
            if fields and len(fields) != len(header):
                raise InputError(
                    f"Capture manifest {path}: line {reader.line_num:,} has {len(fields)} "
                    f"field(s) where the header has {len(header)}."
                )
            if fields:
                rows.append(fields)
                lines.append(reader.line_num)
            start = reader.line_num + 1
    except csv.Error as error:
        problem = f"cannot be read as CSV ({error})"
        if "unexpected end of data" in str(error):
            problem = "opens a quote that is never closed"
        elif "field limit" in str(error):
            problem = "has a field over 131,072 characters (a quote opened there is never closed?)"
        raise InputError(f"Capture manifest {path}: line {start:,} {problem}.") from None
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise InputError(f"Capture manifest {path} names the column(s) {repeated} twice.")
    return pd.DataFrame(rows, columns=header, dtype=object).astype("string"), lines


def _times(text: pd.Series, timezone: str) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Parse capture times: (wall clock of `timezone`, naive UTC where the time had an offset,
    the values that are not times). A time without an offset is the wall clock as written."""
    has_offset = text.str.strip().str.contains(_OFFSET, regex=True).fillna(False)
    naive = pd.to_datetime(text.where(~has_offset), errors="coerce", format="mixed")
    aware = pd.to_datetime(text.where(has_offset), errors="coerce", format="mixed", utc=True)
    utc = aware.dt.tz_localize(None).astype("datetime64[us]")
    wall = aware.dt.tz_convert(timezone).dt.tz_localize(None).astype("datetime64[us]")
    local = naive.astype("datetime64[us]").where(~has_offset, wall)
    shaped = text.str.contains(_TIME_SHAPE, regex=True).fillna(False).astype(bool)
    local = local.where(shaped)
    return local, utc.where(shaped), text[local.isna()]


def _typed(table: pd.DataFrame, utc: pd.Series) -> pd.DataFrame:
    """Give the captures table its fixed column types (and captured_at_utc)."""
    typed = table.astype(
        {
            "photo": "string",
            "store_id": "string",
            "register_id": "string",
            "captured_at": "datetime64[us]",
            "receipt_id": "string",
        }
    ).reset_index(drop=True)
    typed["captured_at_utc"] = utc.reset_index(drop=True).astype("datetime64[us]")
    return typed


def check_ties(captures: Captures, lines: pa.Table) -> None:
    """Raise InputError naming the first manifest row that ties a photo to a receipt of another
    store than the photo's (a wrong manifest would give that store's shopper this one's age)."""
    tied = captures.table.dropna(subset=["receipt_id"])
    if tied.empty or lines.num_rows == 0:
        return
    stores = (
        pa.table({"receipt_id": lines["receipt_id"], "store_id": lines["store_id"]})
        .group_by(["receipt_id", "store_id"])
        .aggregate([])
        .to_pandas()
        .astype("string")
    )
    joined = tied.merge(stores, on="receipt_id", suffixes=("", "_receipt"))
    crossed = joined[joined["store_id"] != joined["store_id_receipt"]]
    if len(crossed):
        row = crossed.iloc[0]
        raise InputError(
            f"Capture manifest {captures.folder / MANIFEST} ties photo {row['photo']!r} of store "
            f"{row['store_id']} to receipt {row['receipt_id']!r} of store "
            f"{row['store_id_receipt']} ({len(crossed)} such tie(s)): a photo is only tied to "
            "a receipt of its own store."
        )
