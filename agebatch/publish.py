"""Publish a day's tables as hive-partitioned Parquet; the whole day appears in one rename.

Readers only ever use ``OUT/<table>/day=<D>/*.parquet``. Behind those paths:

    OUT/<table>/day=<D>     -> ../.days/<D>/<table>      a link per table and day, never changed
    OUT/.days/<D>           -> ../.versions/<D>/<vid>    the day's pointer
    OUT/.versions/<D>/<vid>/<table>/part-0.parquet       one complete version of the day
    OUT/.versions/<D>/<vid>/runs/run-<run_id>.parquet    every run record of the day so far

A publish holds the day's lock and (1) removes what killed runs left (versions no pointer
names, temporary pointers, migration trash) and every version but the current one, (2) turns
folders of the old layout (real ``day=<D>`` folders, ``.staging`` leftovers) into a version,
(3) writes the new version whole — every table, the earlier run records copied forward and this
run's record — and fsyncs its files and folders, (4) creates the links a new table needs
(dangling, so invisible, until the switch), (5) points a new link ``.days/<D>.tmp-<vid>`` at
the version and renames it over ``.days/<D>``, then fsyncs ``.days``. That rename is the commit:
a kill before it leaves the previous day, after it the new one, for every table at once. The
previous version stays until the next publish of the day, for readers that already opened it.
A table the new version does not write keeps a dangling link: it no longer has that day.

Test hook (nothing else may set these; when unset a step costs a counter increment):
``AGEBATCH_PUBLISH_KILL_AT=<name or number>`` SIGKILLs the publishing process at that step
(steps are numbered from 1 in each publish; it says on stderr where it died), and
``AGEBATCH_PUBLISH_SLOW_S=<seconds>`` sleeps at every step, so a test can kill from outside
between any two of them.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import fcntl
import functools
import logging
import os
import re
import shutil
import signal
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from agebatch.errors import InputError

log = logging.getLogger(__name__)

RUNS = "runs"
STAGING = ".staging"  # the day locks; also where the old layout left its staging folders
DAYS = ".days"
VERSIONS = ".versions"
TRASH = ".trash"
PART = "part-0.parquet"
KILL_AT_ENV = "AGEBATCH_PUBLISH_KILL_AT"
SLOW_ENV = "AGEBATCH_PUBLISH_SLOW_S"
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
) -> dict[str, Path]:
    """Write every table of `day` and its run records as a new version, then switch to it.

    Re-publishing a day replaces exactly that day; the `runs` table keeps the day's earlier
    runs and adds this one. Until the switch, and after any failure or kill before it, readers
    see the previous version of the day, whole.
    """
    _check_names(tables, run_id)
    step = _Steps()
    _make_root(out)
    with _day_lock(out, day):
        step("locked")
        _publish_locked(_Day(out, day), tables, run_record, run_id, step)
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
) -> dict[str, Path]:
    """Publish a day across two roots: `restricted_names` under restricted, the rest under out.

    Each root keeps its own links, pointer and versions (and a copy of the run records), and
    the rename of out's pointer is the commit of both: (1) any day that a kill left with the
    two pointers out of line is realigned (the restricted pointer is set to the version out's
    names, or removed when it has none there); (2) the restricted version is written whole,
    not switched; (3) out is published as by publish_day; (4) the restricted pointer follows.
    A kill before (3)'s switch leaves both roots at the previous version; after it, out at the
    new one and restricted at the previous one until (4) or, if killed, the next publish's
    (1). Restricted readers never see a version out has not committed.
    """
    _check_names(tables, run_id)
    private = [name for name in tables if name in set(restricted_names)]
    step = _Steps()
    inner = _Prefixed(step, "restricted:")
    for root in (out, restricted):
        _make_root(root)
    realign_days(out, restricted, step)
    with _day_lock(out, day), _day_lock(restricted, day):
        step("locked")
        analysts, confined = _Day(out, day), _Day(restricted, day)
        _realign(analysts, confined, step)
        record = functools.cache(run_record)
        _publish_locked(
            confined, {n: tables[n] for n in private}, record, run_id, inner, switch=False
        )
        try:
            _publish_locked(
                analysts,
                {n: t for n, t in tables.items() if n not in private},
                record,
                run_id,
                step,
            )
        except BaseException:
            if analysts.current() != run_id:  # not committed: the prepared version is garbage
                shutil.rmtree(confined.versions / run_id, ignore_errors=True)
            raise
        _point(confined, run_id, inner, "")
    log.info("Published %s to %s and, its restricted tables, to %s", day, out, restricted)
    folders = {name: partition(out, name, day) for name in [*tables, RUNS] if name not in private}
    return folders | {name: partition(restricted, name, day) for name in private}


def realign_days(out: Path, restricted: Path, step: Callable[[str], None] | None = None) -> None:
    """Bring every day of restricted back in line with out where a killed publish_split left
    them apart; days another run is publishing now are left to it."""
    step = step or _Steps()
    names = set()
    for root in (out, restricted):
        if (root / DAYS).is_dir():
            names |= {p.name for p in (root / DAYS).iterdir() if ".tmp-" not in p.name}
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
                _realign(analysts, confined, _Prefixed(step, f"{name}:"))
        except InputError:  # being published right now: that run realigns it itself
            continue


def _realign(analysts: _Day, confined: _Day, step: Callable[[str], None]) -> None:
    """Point the restricted root's day at the version out's pointer names (held: both locks)."""
    want, have = analysts.current(), confined.current()
    if want == have:
        return
    if want is not None and (confined.versions / want).is_dir():
        _point(confined, want, step, "realigned:")
    elif have is not None:
        confined.pointer.unlink()
        fsync_dir(confined.pointer.parent)
        step("realigned:removed")
    else:
        return
    log.warning(
        "Realigned the restricted tables of %s under %s with %s (a publish was cut short)",
        analysts.day,
        confined.out,
        analysts.out,
    )


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
    step: Callable[[str], None],
    *,
    switch: bool = True,
) -> None:
    """Steps (1)-(5) of the protocol under the day's lock; without switch, stop before (5)."""
    _collect_garbage(layout, step)
    _adopt_old_layout(layout, step)
    current = layout.current()
    version = layout.versions / run_id
    if version.exists() or (
        current and (layout.versions / current / RUNS / _record_name(run_id)).exists()
    ):
        raise ValueError(f"Run {run_id} has already published {layout.day}; use a new run id.")
    try:
        _write_version(layout, version, tables, run_record, run_id, current, step)
        _link_tables(layout, [*tables, RUNS], step)
        if switch:
            _point(layout, run_id, step, "")
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
        self.trash = out / TRASH / self.name
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
        """Name of the version the day's pointer names, if it has one."""
        try:
            return Path(os.readlink(self.pointer)).name
        except FileNotFoundError:
            return None

    def real_folders(self) -> dict[str, Path]:
        """Day folders of the old layout: real folders where the links belong."""
        found = {}
        for table in sorted(self.out.iterdir()):
            folder = partition(self.out, table.name, self.day)
            if not table.name.startswith(".") and folder.is_dir() and not folder.is_symlink():
                found[table.name] = folder
        return found

    def old_staging(self) -> list[Path]:
        """Staging folders that runs of the old layout left behind for this day."""
        return sorted(p for p in (self.out / STAGING).glob(f"{self.name}-*") if p.is_dir())


class _Steps:
    """The named points of the protocol, numbered from 1; see the test hook in the docstring."""

    def __init__(self) -> None:
        self.count = 0
        self.kill_at = os.environ.get(KILL_AT_ENV, "")
        self.slow_s = float(os.environ.get(SLOW_ENV) or 0)
        self.active = bool(self.kill_at or self.slow_s)

    def __call__(self, name: str) -> None:
        self.count += 1
        if not self.active:
            return
        if self.slow_s:
            time.sleep(self.slow_s)
        if self.kill_at in (name, str(self.count)):
            os.write(2, f"agebatch.publish: killed at step {self.count} {name}\n".encode())
            os.kill(os.getpid(), signal.SIGKILL)


class _Prefixed:
    """The same steps, named with a prefix (the restricted root's, in publish_split)."""

    def __init__(self, step: Callable[[str], None], prefix: str) -> None:
        self.step, self.prefix = step, prefix

    def __call__(self, name: str) -> None:
        self.step(self.prefix + name)


def _collect_garbage(layout: _Day, step: _Steps) -> None:
    """Remove what killed runs left and every version of the day but the current one."""
    current = layout.current()
    for tmp in sorted(layout.pointer.parent.glob(f"{layout.name}.tmp-*")):
        tmp.unlink()
        step(f"removed:{tmp.name}")
    if layout.versions.is_dir():
        for version in sorted(layout.versions.iterdir()):
            if version.name != current:
                shutil.rmtree(version)
                step(f"removed:version:{version.name}")
    if layout.trash.exists():
        shutil.rmtree(layout.trash)
        step("removed:trash")


def _write_version(
    layout: _Day,
    version: Path,
    tables: Mapping[str, pa.Table],
    run_record: Callable[[], pa.Table],
    run_id: str,
    current: str | None,
    step: _Steps,
) -> None:
    """Write a complete version of the day and make it durable before anything points at it."""
    version.mkdir(parents=True)
    for name, table in tables.items():
        _write(version / name, table, PART)
        step(f"written:{name}")
    runs = version / RUNS
    runs.mkdir()
    if current:
        for record in sorted((layout.versions / current / RUNS).glob("*.parquet")):
            _clone(record, runs / record.name)
            step(f"copied:{RUNS}/{record.name}")
    _write(runs, run_record(), _record_name(run_id))
    step(f"written:{RUNS}")
    for folder in [*(version / name for name in tables), runs, version, *layout.parents]:
        fsync_dir(folder)
    step("synced:version")


def _link_tables(layout: _Day, names: list[str], step: _Steps) -> None:
    """Give every table of the day its link OUT/<table>/day=<D> -> ../.days/<D>/<table>."""
    for name in names:
        link, target = layout.link(name), layout.link_target(name)
        if link.is_symlink() and os.readlink(link) == target:
            continue
        if link.exists() and not link.is_symlink():
            raise RuntimeError(f"{link} is a folder, not a link: another agebatch wrote it.")
        if not link.parent.is_dir():
            link.parent.mkdir(parents=True, exist_ok=True)  # another day may make it too
            fsync_dir(layout.out)
        if link.is_symlink():  # pointing elsewhere (not agebatch's doing): replaced in one step
            tmp = layout.tmp_pointer(f"link-{name}")
            tmp.unlink(missing_ok=True)
            os.symlink(target, tmp)
            os.replace(tmp, link)
        else:
            os.symlink(target, link)
        fsync_dir(link.parent)
        step(f"linked:{name}")


def _point(layout: _Day, version: str, step: _Steps, label: str) -> None:
    """Switch the day's pointer to `version` in one rename: the commit point."""
    tmp = layout.tmp_pointer(version)
    tmp.unlink(missing_ok=True)
    os.symlink(f"../{VERSIONS}/{layout.name}/{version}", tmp)
    step(f"{label}pointer-created")
    os.replace(tmp, layout.pointer)
    step(f"{label}switched")
    fsync_dir(layout.pointer.parent)
    step(f"{label}synced:pointer")


def _adopt_old_layout(layout: _Day, step: _Steps) -> None:
    """Turn what the old layout left for the day into a version, losing no run record.

    Readers keep seeing the same tables throughout: the version is built from copies (hard
    links) of what they see now, the pointer switched to it, and only then each real folder
    exchanged for its link in one rename. A kill at any point leaves either the real folders
    (adopted again next time) or the new version with some real folders still there, which
    hold copies of it and are adopted again, harmlessly, next time.
    """
    real, staging = layout.real_folders(), layout.old_staging()
    if not real and not staging:
        return
    current = layout.current()
    records = _published_records(layout, real.get(RUNS), current, staging)
    kept = {p.name for p in (layout.versions / current / RUNS).glob("*")} if current else set()
    if not real and set(records) <= kept:  # the staging folders hold nothing new
        _remove_old_staging(staging, step)
        return
    version = layout.versions / f"legacy-{uuid.uuid4().hex[:12]}"
    version.mkdir(parents=True)
    visible = {n: p for n, p in _version_tables(layout, current).items() if layout.link(n).exists()}
    visible.update({name: folder for name, folder in real.items() if name != RUNS})
    for name, folder in sorted(visible.items()):
        (version / name).mkdir()
        for file in sorted(p for p in folder.iterdir() if p.is_file()):
            _clone(file, version / name / file.name)
        fsync_dir(version / name)
        step(f"adopted:{name}")
    (version / RUNS).mkdir()
    for name, record in sorted(records.items()):
        _clone(record, version / RUNS / name)
        step(f"adopted:{RUNS}/{name}")
    for folder in [version / RUNS, version, *layout.parents]:
        fsync_dir(folder)
    step("adopted:synced")
    _link_tables(layout, [n for n in [*visible, RUNS] if n not in real], step)
    _point(layout, version.name, step, "adopted:")
    layout.trash.mkdir(parents=True, exist_ok=True)
    for name, folder in real.items():
        _exchange_for_link(layout, name, folder)
        step(f"exchanged:{name}")
    shutil.rmtree(layout.trash)
    step("removed:trash")
    _remove_old_staging(staging, step)
    log.info("Moved %s under %s to the versioned layout (%s)", layout.day, layout.out, version)


def _published_records(
    layout: _Day, real_runs: Path | None, current: str | None, staging: list[Path]
) -> dict[str, Path]:
    """Every run record ever published for the day, by file name, from its first whole copy.

    Besides the day's runs folder and current version, the old layout kept published records
    in a killed run's staging folder: moved aside (``.previous``) or copied into its new runs
    folder. That run's own record was never published, so it is left out.
    """
    folders: list[tuple[Path, str]] = []
    if real_runs:
        folders.append((real_runs, ""))
    if current:
        folders.append((layout.versions / current / RUNS, ""))
    for folder in staging:
        own = _record_name(folder.name.removeprefix(f"{layout.name}-"))
        folders.append((partition(folder / ".previous", RUNS, layout.day), ""))
        folders.append((partition(folder, RUNS, layout.day), own))
    records: dict[str, Path] = {}
    for folder, own in folders:
        if not folder.is_dir():
            continue
        for record in sorted(folder.glob("*.parquet")):
            if record.name not in records and record.name != own and _whole(record):
                records[record.name] = record
    return records


def _version_tables(layout: _Day, version: str | None) -> dict[str, Path]:
    """The table folders of one version of the day, runs aside."""
    if not version or not (layout.versions / version).is_dir():
        return {}
    return {p.name: p for p in (layout.versions / version).iterdir() if p.name != RUNS}


def _exchange_for_link(layout: _Day, table: str, folder: Path) -> None:
    """Put the table's link where its real day folder is, with no moment without either."""
    tmp = layout.trash / table
    os.symlink(layout.link_target(table), tmp)
    if not _rename_exchange(tmp, folder):
        # No atomic exchange here: for a moment the table has no such day.
        aside = layout.trash / f"{table}.folder"
        os.rename(folder, aside)
        os.replace(tmp, folder)
    fsync_dir(folder.parent)


def _rename_exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    renameat2 = getattr(_libc(), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: the file system cannot exchange
        return False
    raise OSError(errno, os.strerror(errno), str(b))


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _remove_old_staging(staging: list[Path], step: _Steps) -> None:
    for folder in staging:
        shutil.rmtree(folder)
        step(f"removed:{STAGING}/{folder.name}")


def _record_name(run_id: str) -> str:
    return f"run-{run_id}.parquet"


def _whole(path: Path) -> bool:
    """Whether a Parquet file is complete (a killed copy has no footer)."""
    try:
        pq.read_metadata(path)
    except (OSError, pa.ArrowException):
        return False
    return True


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
    """Let one run at a time publish a given day (the old layout used the same lock file)."""
    locks = out / STAGING / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{day.isoformat()}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"Another run is publishing {day} to {out} right now.") from None
        yield


def new_run_id() -> str:
    """A short unique id for one run."""
    return uuid.uuid4().hex[:12]
