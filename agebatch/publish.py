"""Publish a day's tables as hive-partitioned Parquet; the whole day appears in one rename.

Readers only ever use ``OUT/<table>/day=<D>/*.parquet``. Behind those paths:

    OUT/<table>/day=<D>     -> ../.days/<D>/<table>      a link per table and day, never changed
    OUT/.days/<D>           -> ../.versions/<D>/<vid>    the day's pointer
    OUT/.versions/<D>/<vid>/<table>/part-0.parquet       one complete version of the day
    OUT/.versions/<D>/<vid>/runs/run-<run_id>.parquet    every run record of the day so far

agebatch owns only what it wrote: the hidden folders above, and each ``OUT/<table>/day=<D>``
link whose target is exactly the one above. Anything else under OUT (a user's folder or file, a
``day=<D>`` folder it did not write, a link out of OUT) is never moved, rewritten or removed;
where such a thing stands on a path the day needs, `blocked` names it in one sentence and the
publish (and, through agebatch.preflight, the run, before predicting) stops.

A publish holds the day's lock and (1) removes what killed runs left (versions no pointer
names, temporary pointers) and every version but the current one, (2) checks that nothing it
does not own blocks the day, (3) writes the new version whole — every table, the earlier run
records copied forward and this run's record — and fsyncs its files and folders, (4) creates
the links a new table needs (dangling, so invisible, until the switch), (5) points a new link
``.days/<D>.tmp-<vid>`` at the version and renames it over ``.days/<D>``, then fsyncs
``.days``. That rename is the commit:
a kill before it leaves the previous day, after it the new one, for every table at once. The
previous version stays until the next publish of the day, for readers that already opened it.
A table the new version does not write keeps a dangling link: it no longer has that day.

Small notes (`notes`: file name -> bytes, e.g. which photo folder the day was read from, see
agebatch.retention) are written into the version beside its tables, readers never see them.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import functools
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from agebatch.errors import InputError, OutputError

log = logging.getLogger(__name__)

RUNS = "runs"
STAGING = ".staging"  # the day locks
DAYS = ".days"
VERSIONS = ".versions"
PART = "part-0.parquet"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def partition(out: Path, table: str, day: dt.date) -> Path:
    """Folder of one table's day: OUT/<table>/day=<YYYY-MM-DD>."""
    return out / table / f"day={day.isoformat()}"


def publish_day(
    out: Path,
    day: dt.date,
    tables: Mapping[str, pa.Table],
    run_record: Callable[[], pa.Table],
    run_id: str,
    notes: Mapping[str, bytes] | None = None,
) -> dict[str, Path]:
    """Write every table of `day` and its run records as a new version, then switch to it.

    Re-publishing a day replaces exactly that day; the `runs` table keeps the day's earlier
    runs and adds this one. Until the switch, and after any failure or kill before it, readers
    see the previous version of the day, whole.
    """
    _check_names(tables, run_id)
    _refuse_blocked(out, day, tables)
    _make_root(out)
    with _day_lock(out, day):
        _publish_locked(_Day(out, day), tables, run_record, run_id, notes=notes)
    log.info("Published %s to %s (version %s)", day, out, run_id)
    return {name: partition(out, name, day) for name in [*tables, RUNS]}


def publish_split(
    out: Path,
    restricted: Path,
    day: dt.date,
    tables: Mapping[str, pa.Table],
    restricted_names: Iterable[str],
    run_record: Callable[[], pa.Table],
    run_id: str,
    notes: Mapping[str, bytes] | None = None,
) -> dict[str, Path]:
    """Publish a day across two roots: `restricted_names` under restricted, the rest under out.

    Each root keeps its own links, pointer and versions (and a copy of the run records), and
    the rename of out's pointer is the commit of both: (1) any day that a kill left with the
    two pointers out of line is realigned (the restricted pointer is set to the version out's
    names, or removed when it has none there); (2) the restricted version is written whole,
    not switched; (3) out is published as by publish_day; (4) the restricted pointer follows;
    (5) every restricted table an earlier version left under out (a day published before it
    had a restricted root) is removed from out, links and versions both. A kill before (3)'s
    switch leaves both roots at the previous version; after it, out at the new one and
    restricted at the previous one until (4) or, if killed, the next publish's (1) and (5).
    Restricted readers never see a version out has not committed.
    """
    _check_names(tables, run_id)
    private = [name for name in tables if name in set(restricted_names)]
    _refuse_blocked(out, day, [n for n in tables if n not in private])
    _refuse_blocked(restricted, day, private)
    for root in (out, restricted):
        _make_root(root)
    realign_days(out, restricted)
    with _day_lock(out, day), _day_lock(restricted, day):
        analysts, confined = _Day(out, day), _Day(restricted, day)
        _realign(analysts, confined)
        record = functools.cache(run_record)
        _publish_locked(confined, {n: tables[n] for n in private}, record, run_id, switch=False)
        try:
            _publish_locked(
                analysts,
                {n: t for n, t in tables.items() if n not in private},
                record,
                run_id,
                notes=notes,
            )
        except BaseException:
            if analysts.current() != run_id:  # not committed: the prepared version is garbage
                shutil.rmtree(confined.versions / run_id, ignore_errors=True)
            raise
        _point(confined, run_id)
        _remove_restricted(analysts, set(restricted_names))
    log.info("Published %s to %s and, its restricted tables, to %s", day, out, restricted)
    folders = {name: partition(out, name, day) for name in [*tables, RUNS] if name not in private}
    return folders | {name: partition(restricted, name, day) for name in private}


def realign_days(out: Path, restricted: Path) -> None:
    """Bring every day of restricted back in line with out where a killed publish_split left
    them apart; days another run is publishing now are left to it."""
    names = set()
    for root in (out, restricted):
        if (root / DAYS).is_dir():
            names |= {name for name in os.listdir(root / DAYS) if ".tmp-" not in name}
    for name in sorted(names):
        try:
            day = dt.date.fromisoformat(name)
        except ValueError:
            continue
        analysts, confined = _Day(out, day), _Day(restricted, day)
        if analysts.current() == confined.current():
            continue
        try:
            with _day_lock(out, day), _day_lock(restricted, day):
                _realign(analysts, confined)
        except InputError:  # being published right now: that run realigns it itself
            continue


def _realign(analysts: _Day, confined: _Day) -> None:
    """Point the restricted root's day at the version out's pointer names (held: both locks)."""
    want, have = analysts.current(), confined.current()
    if want == have:
        return
    if want is not None and (confined.versions / want).is_dir():
        _point(confined, want)
    elif have is not None:
        confined.pointer.unlink()
        fsync_dir(confined.pointer.parent)
    else:
        return
    log.warning(
        "Realigned the restricted tables of %s under %s with %s (a publish was cut short)",
        analysts.day,
        confined.out,
        analysts.out,
    )


def _remove_restricted(layout: _Day, private: set[str]) -> None:
    """Remove from out every version's copy of the restricted tables, and their links."""
    if layout.versions.is_dir():
        for version in sorted(os.listdir(layout.versions)):
            if not (layout.versions / version).is_dir() or (layout.versions / version).is_symlink():
                continue
            removed = False
            for name in sorted(private):
                folder = layout.versions / version / name
                if folder.is_dir() and not folder.is_symlink():
                    shutil.rmtree(folder)
                    removed = True
                    log.warning(
                        "Removed %s of %s (version %s) from %s: it belongs under the restricted "
                        "root now",
                        name,
                        layout.day,
                        version,
                        layout.out,
                    )
            if removed:
                fsync_dir(layout.versions / version)
    for name in sorted(private):
        if _is_own_link(layout, name):
            layout.link(name).unlink()
            fsync_dir(layout.link(name).parent)


def blocked(out: Path, day: dt.date, names: Iterable[str]) -> str | None:
    """One sentence naming what stands, under out, where publishing `day`'s tables `names`
    must write and that agebatch did not write (None: nothing does).

    agebatch owns its hidden folders and each OUT/<table>/day=<D> link to its own target; a
    real folder, a file or another link there is someone else's and is never touched.
    """
    if os.path.lexists(out) and not out.is_dir():
        return f"Output folder {out} is not a folder: check --out."
    layout = _Day(out, day)
    fix = "move it away (agebatch never changes what it did not write) or choose another --out."
    for own in (out / DAYS, out / VERSIONS, out / STAGING, layout.versions):
        if os.path.lexists(own) and (own.is_symlink() or not own.is_dir()):
            return f"{own} is not a folder agebatch made (a link or a file): {fix}"
    if os.path.lexists(layout.pointer) and layout.current() is None:
        return f"{layout.pointer} is not a pointer agebatch made: {fix}"
    for name in sorted({*names, RUNS}):
        folder = out / name
        if os.path.lexists(folder) and (folder.is_symlink() or not folder.is_dir()):
            kind = "a link" if folder.is_symlink() else "a file"
            return f"{folder} is {kind}, not the folder of agebatch's table {name}: {fix}"
        link = layout.link(name)
        if os.path.lexists(link) and not _is_own_link(layout, name):
            kind = "a link to elsewhere" if link.is_symlink() else "a folder or file"
            return (
                f"{link} is {kind} that agebatch did not write, where {day} of {name} goes: {fix}"
            )
    return None


def _refuse_blocked(out: Path, day: dt.date, names: Iterable[str]) -> None:
    sentence = blocked(out, day, names)
    if sentence is not None:
        raise OutputError(sentence)


def _is_own_link(layout: _Day, table: str) -> bool:
    """Whether OUT/<table>/day=<D> is agebatch's link (one to exactly its own target)."""
    link = layout.link(table)
    return link.is_symlink() and os.readlink(link) == layout.link_target(table)


def _check_names(tables: Mapping[str, pa.Table], run_id: str) -> None:
    if RUNS in tables:
        raise ValueError(f"{RUNS!r} is the run records' table; pass the record as run_record.")
    for name in [*tables, run_id]:
        if not _NAME.fullmatch(name):
            raise ValueError(f"Cannot publish {name!r}: not a plain table name or run id.")


def _make_root(out: Path) -> None:
    for folder in (out, out / DAYS, out / VERSIONS):
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            fsync_dir(folder.parent)


def _publish_locked(
    layout: _Day,
    tables: Mapping[str, pa.Table],
    run_record: Callable[[], pa.Table],
    run_id: str,
    *,
    switch: bool = True,
    notes: Mapping[str, bytes] | None = None,
) -> None:
    """Steps (1)-(5) of the protocol under the day's lock; without switch, stop before (5)."""
    _collect_garbage(layout)
    _refuse_blocked(layout.out, layout.day, tables)  # again, now that the day is held
    current = layout.current()
    version = layout.versions / run_id
    if version.exists() or (
        current and (layout.versions / current / RUNS / _record_name(run_id)).exists()
    ):
        raise ValueError(f"Run {run_id} has already published {layout.day}; use a new run id.")
    try:
        _write_version(layout, version, tables, run_record, run_id, current, notes or {})
        _link_tables(layout, [*tables, RUNS])
        if switch:
            _point(layout, run_id)
    except Exception:
        # Before the switch the version is garbage (a kill skips this: the next publish
        # collects it); after it, it is the day, even if fsyncing the pointer failed.
        if layout.current() != run_id:
            shutil.rmtree(version, ignore_errors=True)
            layout.tmp_pointer(run_id).unlink(missing_ok=True)
        raise


class _Day:
    """Where one day's links, pointer and versions live under out."""

    def __init__(self, out: Path, day: dt.date) -> None:
        self.out, self.day, self.name = out, day, day.isoformat()
        self.pointer = out / DAYS / self.name
        self.versions = out / VERSIONS / self.name
        # Folders whose entries a new version adds: fsynced with it.
        self.parents = [self.versions, self.versions.parent]

    def link(self, table: str) -> Path:
        return partition(self.out, table, self.day)

    def link_target(self, table: str) -> str:
        # Relative, so OUT can be moved or mounted elsewhere; every OUT/<table> is one level deep.
        return f"../{DAYS}/{self.name}/{table}"

    def tmp_pointer(self, version: str) -> Path:
        return self.pointer.with_name(f"{self.name}.tmp-{version}")

    def current(self) -> str | None:
        """Name of the version the day's pointer names, if it is agebatch's pointer."""
        try:
            target = os.readlink(self.pointer)
        except (FileNotFoundError, OSError):
            return None
        prefix = f"../{VERSIONS}/{self.name}/"
        name = target.removeprefix(prefix)
        return name if target.startswith(prefix) and _NAME.fullmatch(name) else None


def _collect_garbage(layout: _Day) -> None:
    """Remove what killed runs left and every version of the day but the current one."""
    current = layout.current()
    if layout.pointer.parent.is_dir():
        for name in sorted(os.listdir(layout.pointer.parent)):
            if name.startswith(f"{layout.name}.tmp-"):
                (layout.pointer.parent / name).unlink()
    if layout.versions.is_dir() and not layout.versions.is_symlink():
        for name in sorted(os.listdir(layout.versions)):
            version = layout.versions / name
            if name == current:
                continue
            if version.is_symlink() or not version.is_dir():
                version.unlink()  # never followed: a link goes, not what it names
            else:
                shutil.rmtree(version)


def _write_version(
    layout: _Day,
    version: Path,
    tables: Mapping[str, pa.Table],
    run_record: Callable[[], pa.Table],
    run_id: str,
    current: str | None,
    notes: Mapping[str, bytes],
) -> None:
    """Write a complete version of the day and make it durable before anything points at it."""
    version.mkdir(parents=True)
    for name, table in tables.items():
        _write(version / name, table, PART)
    runs = version / RUNS
    runs.mkdir()
    if current:
        earlier = layout.versions / current / RUNS
        for name in sorted(os.listdir(earlier)):
            if name.endswith(".parquet"):
                _clone(earlier / name, runs / name)
    _write(runs, run_record(), _record_name(run_id))
    for name, data in sorted(notes.items()):
        if not _NAME.fullmatch(name) or name in tables or name == RUNS:
            raise ValueError(f"Cannot write note {name!r}: not a plain file name.")
        (version / name).write_bytes(data)
        _fsync_file(version / name)
    for folder in [*(version / name for name in tables), runs, version, *layout.parents]:
        fsync_dir(folder)


def _link_tables(layout: _Day, names: list[str]) -> None:
    """Give every table of the day its link OUT/<table>/day=<D> -> ../.days/<D>/<table>."""
    for name in names:
        if _is_own_link(layout, name):
            continue
        link = layout.link(name)
        if os.path.lexists(link):  # checked before, under the lock: someone put it there since
            raise OutputError(blocked(layout.out, layout.day, [name]) or f"{link} is in the way.")
        if not link.parent.is_dir():
            link.parent.mkdir(parents=True, exist_ok=True)  # another day may make it too
            fsync_dir(layout.out)
        os.symlink(layout.link_target(name), link)
        fsync_dir(link.parent)


def _point(layout: _Day, version: str) -> None:
    """Switch the day's pointer to `version` in one rename: the commit point."""
    tmp = layout.tmp_pointer(version)
    tmp.unlink(missing_ok=True)
    os.symlink(f"../{VERSIONS}/{layout.name}/{version}", tmp)
    os.replace(tmp, layout.pointer)
    fsync_dir(layout.pointer.parent)


def _record_name(run_id: str) -> str:
    return f"run-{run_id}.parquet"


def _write(folder: Path, table: pa.Table, file_name: str) -> None:
    """Write one Parquet file and fsync it; the day lives in the folder name, not in the file."""
    folder.mkdir(parents=True, exist_ok=True)
    if "day" in table.column_names:
        table = table.drop_columns(["day"])
    pq.write_table(table, folder / file_name, compression="zstd")
    _fsync_file(folder / file_name)


def _clone(source: Path, target: Path) -> None:
    """Copy a published file into a new version: a hard link where possible (never rewritten)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
    _fsync_file(target)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a folder's entries (new files, links, renames) survive a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _day_lock(out: Path, day: dt.date) -> Iterator[None]:
    """Let one run at a time publish (or stage, see agebatch.shards) a given day."""
    with day_lock(out, day, f"Another run is publishing {day} to {out} right now."):
        yield


@contextmanager
def day_lock(out: Path, day: dt.date, busy: str) -> Iterator[None]:
    """Hold the day's lock under out, or raise InputError(busy) if another process holds it."""
    locks = out / STAGING / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{day.isoformat()}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(busy) from None
        yield


def new_run_id() -> str:
    """A short unique id for one run."""
    return uuid.uuid4().hex[:12]
