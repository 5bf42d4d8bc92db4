"""Tables whose rows name their run, readers that check a day is whole, publishing processes.

`python -m tests.publishing OUT DAY RUN_ID [CHANGE]` publishes one run's tables of the day (it
prints "publishing" just before; with CHANGE, the name of a change to the file system, it is
SIGKILLed just before that change); `python -m tests.publishing --serve` forks such processes
on demand (see `serve`).
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa

from agebatch.publish import RUNS, publish_day, publish_split
from agebatch.schema import RESTRICTED
from tests.faults import at_each_change, kill_before

Seen = dict[tuple[str, dt.date], list[str]] | None

# Table name → rows, like the pipeline's tables (their sizes differ so a mix-up would show).
TABLES = {
    "receipt_ages": 5,
    "age_group_purchases": 4,
    "age_group_shares": 3,
    "alcohol_checks": 2,
    "cashier_compliance": 1,
    "quarantined_receipts": 6,
}


def day_tables(run_id: str, names: list[str] | None = None) -> dict[str, pa.Table]:
    """The tables one run publishes: each row names the run."""
    return {
        name: pa.table({"row": list(range(rows)), "run_id": [run_id] * rows})
        for name, rows in TABLES.items()
        if names is None or name in names
    }


def run_record(run_id: str) -> pa.Table:
    """The run's row in `runs`."""
    return pa.table({"run_id": [run_id], "receipts": [TABLES["receipt_ages"]]})


def publish(
    out: Path,
    day: dt.date,
    run_id: str,
    names: list[str] | None = None,
    restricted: Path | None = None,
) -> None:
    """Publish one run's tables of the day (with restricted: its RESTRICTED tables there)."""
    tables, record = day_tables(run_id, names), lambda: run_record(run_id)
    if restricted is None:
        publish_day(out, day, tables, record, run_id)
    else:
        publish_split(out, restricted, day, tables, RESTRICTED, record, run_id)


def read_tables(out: Path) -> dict[tuple[str, dt.date], list[str]]:
    """(table, day) → the run id of every row, sorted: all tables in one DuckDB query.

    Each table is read the way the README tells analysts to, over all its days.
    """
    import duckdb  # here, so the publishing process starts faster

    # DuckDB refuses a glob that matches nothing: a table with no readable day is left out.
    names = [name for name in [*TABLES, RUNS] if any(out.glob(f"{name}/*/*.parquet"))]
    if not names:
        return {}
    query = " union all ".join(
        f"select $name{i} as t, day, run_id from read_parquet($glob{i}, hive_partitioning = true)"
        for i in range(len(names))
    )
    params = {f"name{i}": name for i, name in enumerate(names)}
    params |= {f"glob{i}": str(out / name / "*" / "*.parquet") for i, name in enumerate(names)}
    seen: dict[tuple[str, dt.date], list[str]] = {}
    for table, day, run_id in duckdb.sql(query, params=params).fetchall():
        seen.setdefault((table, day), []).append(run_id)
    return {key: sorted(rows) for key, rows in seen.items()}


def day_view(out: Path, day: dt.date, seen: Seen = None) -> dict[str, str | None]:
    """Which run each table's day comes from (None: the table has no such day).

    Fails if a table's day is partly written or mixes runs.
    """
    seen = read_tables(out) if seen is None else seen
    view = {}
    for name, count in TABLES.items():
        rows = seen.get((name, day), [])
        assert not rows or rows == [rows[0]] * count, f"{name} of {day} is not one run's: {rows}"
        view[name] = rows[0] if rows else None
    return view


def whole_day(out: Path, day: dt.date, seen: Seen = None) -> str | None:
    """The one run every table of the day comes from, None if no table has the day."""
    view = day_view(out, day, seen)
    assert len(set(view.values())) == 1, f"{day} mixes runs: {view}"
    return view["receipt_ages"]


def day_runs(out: Path, day: dt.date, seen: Seen = None) -> list[str]:
    """The run ids in the day's `runs`, sorted, duplicates kept."""
    return (read_tables(out) if seen is None else seen).get((RUNS, day), [])


class Theirs:
    """What a user keeps under (and beside) an output folder: agebatch must never touch it."""

    def __init__(self, roots: list[Path]) -> None:
        self.roots = roots
        self.before = snapshot(self)


def user_things(out: Path) -> Theirs:
    """A user's folder and file under out, a file of theirs in a table's folder, a day folder
    in a folder that is not a table, and a link from out to a folder outside it."""
    elsewhere = out.parent / f"{out.name}-elsewhere"
    for folder in (out / "notes" / "sub", out / "notes" / f"day={DAY_OF_NOTES}", elsewhere):
        folder.mkdir(parents=True, exist_ok=True)
    (out / "notes" / "todo.txt").write_text("keep me\n")
    (out / "notes" / "sub" / "data.bin").write_bytes(bytes(range(256)))
    (out / "notes" / f"day={DAY_OF_NOTES}" / "part-0.parquet").write_bytes(b"PAR1 not ours")
    (out / "receipt_ages").mkdir(parents=True, exist_ok=True)
    (out / "receipt_ages" / "README.txt").write_text("my notes on this table\n")
    (elsewhere / "day=2026-11-24").mkdir(exist_ok=True)
    (elsewhere / "day=2026-11-24" / "part-0.parquet").write_bytes(b"PAR1 theirs")
    (out / "shared").symlink_to(elsewhere, target_is_directory=True)
    return Theirs([out / "notes", out / "receipt_ages" / "README.txt", out / "shared", elsewhere])


DAY_OF_NOTES = "2026-11-24"


def snapshot(theirs: Theirs) -> dict[str, object]:
    """Every path under the roots, links not followed: a link's target, a file's bytes."""
    seen: dict[str, object] = {}
    for root in theirs.roots:
        paths = [root]
        if root.is_dir() and not root.is_symlink():
            paths += sorted(root.rglob("*"))
        for path in paths:
            if path.is_symlink():
                seen[str(path)] = ("link", os.readlink(path))
            elif path.is_file():
                seen[str(path)] = ("file", path.read_bytes())
            elif path.is_dir():
                seen[str(path)] = ("folder",)
            else:
                seen[str(path)] = ("missing",)
    return seen


RESTRICTED_ROOT = "RESTRICTED_ROOT"  # serve's setting: publish_split to that root
KILL_AT = "KILL_AT"  # serve's setting: SIGKILL before that change to the file system
SLOW_S = "SLOW_S"  # serve's setting: sleep before every change


class Killed(BaseException):
    """A kill, simulated in-process: no `except Exception` of publish_day sees it."""


@contextmanager
def killed_at(step: int, root: Path | None = None) -> Iterator[list[str]]:
    """Stop publishing as a kill would just before its change number `step` to the file system
    (0: never); yields the changes made (their names, relative to root)."""
    passed: list[str] = []

    def stop(count: int, name: str) -> None:
        if count == step:
            raise Killed(name)
        passed.append(name)

    with at_each_change(stop, root):
        yield passed


def serve() -> None:
    """Fork a publishing process per line `OUT DAY RUN_ID STDERR TABLE,… [NAME=VALUE …]` on stdin.

    Answers `pid N` once it forked, then `exit N` when it ended (-9: SIGKILL). The child writes
    its stderr to STDERR and publishes those tables; settings: RESTRICTED_ROOT=DIR publishes the
    restricted ones to DIR, with publish_split; KILL_AT=N SIGKILLs it just before its N-th
    change to the file system, SLOW_S=S sleeps S seconds before each (tests.faults).
    The kill tests kill a child per step: forking from here costs
    milliseconds, a new interpreter a second (pyarrow and pandas to import).
    """
    import pandas  # noqa: F401  # Parquet writing imports it: once, here, before forking

    for line in sys.stdin:
        out, day, run_id, stderr, names, *env = line.split()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.dup2(os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
                settings = dict(item.split("=", 1) for item in env)
                restricted = settings.get(RESTRICTED_ROOT)
                act = kill_before(int(settings.get(KILL_AT, 0)), float(settings.get(SLOW_S, 0)))
                with at_each_change(act, Path(out)):
                    publish(
                        Path(out),
                        dt.date.fromisoformat(day),
                        run_id,
                        names.split(","),
                        Path(restricted) if restricted else None,
                    )
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)  # never back into the server's loop
        print(f"pid {pid}", flush=True)
        print(f"exit {os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])}", flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        out, day, run_id = Path(sys.argv[1]), dt.date.fromisoformat(sys.argv[2]), sys.argv[3]
        kill_at = sys.argv[4] if len(sys.argv) > 4 else None  # a change's name: killed before it
        print("publishing", flush=True)

        def act(count: int, name: str) -> None:
            if name == kill_at:
                kill_before(count)(count, name)

        with at_each_change(act, out):
            publish(out, day, run_id)
