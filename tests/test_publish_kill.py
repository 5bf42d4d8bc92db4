"""A publishing process killed with SIGKILL at any moment never splits a day (issue #12).

Each case starts from a prepared output folder, kills a real publishing process (forked by
`tests.publishing --serve`) just before its 1st, 2nd, … change to the file system (a system
call, seen through tests.faults.at_each_change) until one gets through, and after
every kill checks with DuckDB that each table of the day comes from one run — the previous one,
or the killed one once it passed the switch — and that `runs` holds every committed run exactly
once; then a normal publish must succeed and leave no garbage. Another case slows every change
and kills from outside at stratified random moments, so kills land inside Parquet writes too; a
last one kills a freshly started interpreter, as a scheduler would.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agebatch.publish import partition
from tests.conftest import DAY
from tests.publishing import (
    KILL_AT,
    SLOW_S,
    TABLES,
    day_runs,
    day_tables,
    day_view,
    killed_at,
    publish,
    read_tables,
    snapshot,
    user_things,
    whole_day,
)

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
OTHER = DAY - dt.timedelta(days=1)


class Day:
    """What readers must see of DAY: the last committed run's tables, every committed record."""

    def __init__(self, out: Path, visible: str | None, history: list[str]) -> None:
        self.out, self.visible, self.history = out, visible, list(history)

    def check(self, seen: dict | None = None) -> None:
        seen = read_tables(self.out) if seen is None else seen
        assert whole_day(self.out, DAY, seen) == self.visible
        assert day_runs(self.out, DAY, seen) == sorted(self.history)
        assert whole_day(self.out, OTHER, seen) == "o1" and day_runs(self.out, OTHER, seen) == [
            "o1"
        ]

    def killed(self, run_id: str) -> bool:
        """Check the day after `run_id` was killed; whether it had committed."""
        seen = read_tables(self.out)
        visible = whole_day(self.out, DAY, seen)
        assert visible in (self.visible, run_id)
        if visible == run_id:
            self.visible = run_id
            self.history.append(run_id)
        self.check(seen)
        return visible == run_id

    def published(self, run_id: str) -> None:
        """Publish normally after a kill: it must succeed, show the day whole, leave no garbage."""
        day = DAY.isoformat()
        pointer, versions = self.out / ".days" / day, self.out / ".versions" / day
        current = os.readlink(pointer).rsplit("/", 1)[1] if pointer.is_symlink() else None
        publish(self.out, DAY, run_id)
        self.visible = run_id
        self.history.append(run_id)
        self.check()
        # Left: the version readers saw before and the new one.
        assert set(os.listdir(versions)) == {run_id} | ({current} if current else set())
        assert not list((self.out / ".days").glob(f"{day}.tmp-*"))
        assert os.listdir(self.out / ".staging") == ["locks"]
        assert all(partition(self.out, t, DAY).is_symlink() for t in ("receipt_ages", "runs"))


class Publisher:
    """Client of `python -m tests.publishing --serve`: forks publishing processes on demand."""

    def __init__(self) -> None:
        self.server = subprocess.Popen(
            [sys.executable, "-m", "tests.publishing", "--serve"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def start(
        self, out: Path, run_id: str, day: dt.date = DAY, names: list[str] | None = None, **env: str
    ) -> int:
        """Start publishing a day's tables (all, or `names`) to out; the process id."""
        assert self.server.stdin is not None and self.server.stdout is not None
        tables = ",".join(names or TABLES)
        settings = " ".join(f"{k}={v}" for k, v in env.items())
        stderr = out.parent / f"{run_id}.stderr"
        self.server.stdin.write(f"{out} {day} {run_id} {stderr} {tables} {settings}\n")
        self.server.stdin.flush()
        kind, pid = self.server.stdout.readline().split()
        assert kind == "pid", kind
        return int(pid)

    def wait(self) -> int:
        """How the last process ended: 0, 1 (an error), or -9 (SIGKILL)."""
        assert self.server.stdout is not None
        kind, code = self.server.stdout.readline().split()
        assert kind == "exit", kind
        return int(code)

    def close(self) -> None:
        assert self.server.stdin is not None
        self.server.stdin.close()
        self.server.wait(timeout=30)


@pytest.fixture(scope="module")
def publisher() -> Iterator[Publisher]:
    server = Publisher()
    yield server
    server.close()


def _kill_at_every_step(
    publisher: Publisher, template: Path, tmp: Path, visible: str | None, history: list[str]
) -> list[tuple[str, bool]]:
    """Kill a publish of DAY before each of its changes in turn, each on a fresh copy of
    template.

    Returns each change's name (the run's id as NEW) and whether the day showed the killed run
    after the kill.
    """
    steps: list[tuple[str, bool]] = []
    for number in range(1, 200):
        out = tmp / f"kill-{number}"
        shutil.copytree(template, out, symlinks=True)
        day = Day(out, visible, history)
        run_id = f"k{number:03d}"
        publisher.start(out, run_id, **{KILL_AT: str(number)})
        code = publisher.wait()
        stderr = (tmp / f"{run_id}.stderr").read_text()
        if code == 0:  # the step after the last one: the publish went through
            assert day.killed(run_id)
            return steps
        assert code == -signal.SIGKILL, stderr
        name = stderr.split(f"killed at step {number} ", 1)[1].strip().replace(run_id, "NEW")
        steps.append((name, day.killed(run_id)))
        day.published(f"s{number:03d}")
        shutil.rmtree(out)
    raise AssertionError("the publish never got through")


SWITCH = f"replace .days/{DAY}"  # the commit: a kill before it keeps the previous day


def _committed_from_the_switch_on(steps: list[tuple[str, bool]], switch: str = SWITCH) -> None:
    names = [name for name, _ in steps]
    at = names.index(switch) + 1
    assert [committed for _, committed in steps] == [False] * at + [True] * (len(steps) - at)


def _republish(out: Path) -> Day:
    """Another day and two runs of DAY (so the next publish has a version to remove)."""
    publish(out, OTHER, "o1")
    publish(out, DAY, "r1")
    publish(out, DAY, "r2")
    return Day(out, "r2", ["r1", "r2"])


def _first(out: Path) -> Day:
    """Another day only: the next publish is DAY's first."""
    publish(out, OTHER, "o1")
    return Day(out, None, [])


TEMPLATES = {"republish": _republish, "first": _first}


def test_republish_killed_at_every_step(publisher: Publisher, tmp_path: Path) -> None:
    template = _republish(tmp_path / "template")
    steps = _kill_at_every_step(publisher, template.out, tmp_path, "r2", ["r1", "r2"])
    names = [name for name, _ in steps]
    new = f".versions/{DAY}/NEW"
    assert names[0] == "mkdir .staging/locks"
    assert names.index(f"rmdir .versions/{DAY}/r1") < names.index(f"mkdir {new}")
    for name in [
        f"write_table {new}/receipt_ages/part-0.parquet",
        f"link {new}/runs/run-r2.parquet",
        f"write_table {new}/runs/run-NEW.parquet",
    ]:
        assert name in names
    assert names[-5:] == [
        "fsync .versions",
        f"unlink .days/{DAY}.tmp-NEW",
        f"symlink .days/{DAY}.tmp-NEW",
        SWITCH,
        "fsync .days",
    ]
    _committed_from_the_switch_on(steps)


def test_first_publish_killed_at_every_step(publisher: Publisher, tmp_path: Path) -> None:
    template = _first(tmp_path / "template")
    steps = _kill_at_every_step(publisher, template.out, tmp_path, None, [])
    names = [name for name, _ in steps]
    assert [n for n in names if n.startswith("symlink") and "day=" in n] == [
        f"symlink {t}/day={DAY}" for t in [*day_tables("x"), "runs"]
    ]
    _committed_from_the_switch_on(steps)


@pytest.mark.parametrize(
    ("kind", "slow_s", "kills"),
    [("republish", 0.03, 12), ("first", 0.03, 8)],
)
def test_slowed_publish_killed_from_outside_at_random_moments(
    publisher: Publisher, tmp_path: Path, kind: str, slow_s: float, kills: int
) -> None:
    template = TEMPLATES[kind](tmp_path / "template")
    probe = tmp_path / "probe"
    shutil.copytree(template.out, probe, symlinks=True)
    with killed_at(0, probe) as passed:
        publish(probe, DAY, "probe")
    window_s = len(passed) * slow_s
    rng = random.Random(12)
    outcomes = []
    for number in range(kills):
        out = tmp_path / f"timed-{number}"
        shutil.copytree(template.out, out, symlinks=True)
        day = Day(out, template.visible, template.history)
        run_id = f"t{number:02d}"
        pid = publisher.start(out, run_id, **{SLOW_S: str(slow_s)})
        # Stratified: the n-th kill lands in the n-th slice of the publish, at random in it.
        time.sleep((number + rng.random()) / kills * window_s)
        os.kill(pid, signal.SIGKILL)
        code = publisher.wait()
        outcomes.append((code, day.killed(run_id)))
        day.published(f"s{number:02d}")
        shutil.rmtree(out)
    killed = [committed for code, committed in outcomes if code == -signal.SIGKILL]
    assert len(killed) >= kills - 1, outcomes  # the last may finish first
    assert not all(killed), outcomes  # kills before the switch


def test_a_fresh_interpreter_killed_at_the_switch(tmp_path: Path) -> None:
    day = _republish(tmp_path / "fresh")
    out = day.out
    done = subprocess.run(
        [sys.executable, "-m", "tests.publishing", str(out), DAY.isoformat(), "f1", SWITCH],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL and SWITCH in done.stderr, done.stderr
    assert not day.killed("f1")
    day.published("s1")


@st.composite
def _publishes(draw: st.DrawFn) -> list[tuple[dt.date, list[str], int | None]]:
    """Publishes of DAY or OTHER, each of some tables, each maybe killed at some step."""
    tables = st.lists(st.sampled_from(list(TABLES)), min_size=1, unique=True)
    kill_at = st.none() | st.integers(min_value=1, max_value=60)
    return draw(st.lists(st.tuples(st.sampled_from([DAY, OTHER]), tables, kill_at), max_size=6))


@settings(max_examples=20, deadline=None, derandomize=True)
@given(template=st.sampled_from(list(TEMPLATES)), publishes=_publishes())
def test_any_sequence_of_publishes_and_kills_keeps_days_whole(
    publisher: Publisher, template: str, publishes: list
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        model = TEMPLATES[template](out)
        theirs = user_things(out)  # agebatch must never touch these, killed or not
        # What readers must see: per day, each table's run (absent: no such day), and runs.
        visible = {d: dict.fromkeys(TABLES, model.visible) for d in (DAY, OTHER)}
        history = {DAY: list(model.history), OTHER: ["o1"]}
        visible[OTHER] = dict.fromkeys(TABLES, "o1")
        for number, (day, names, kill_at) in enumerate(publishes):
            run_id = f"h{number}"
            env = {KILL_AT: str(kill_at)} if kill_at else {}
            publisher.start(out, run_id, day=day, names=names, **env)
            code = publisher.wait()
            stderr = (Path(tmp) / f"{run_id}.stderr").read_text()
            assert code in (0, -signal.SIGKILL), stderr
            if code == 0 or stderr.rstrip().endswith(" fsync .days"):  # after its switch
                visible[day] = {t: run_id if t in names else None for t in TABLES}
                history[day].append(run_id)
            seen = read_tables(out)
            for d in (DAY, OTHER):
                assert day_view(out, d, seen) == visible[d]
                assert day_runs(out, d, seen) == sorted(history[d])
        for d in (DAY, OTHER):  # a normal publish afterwards leaves no garbage
            publish(out, d, f"final-{d}")
            assert day_runs(out, d) == sorted([*history[d], f"final-{d}"])
            versions = os.listdir(out / ".versions" / d.isoformat())
            assert len(versions) <= 2
        assert not list((out / ".days").glob("*.tmp-*"))
        assert os.listdir(out / ".staging") == ["locks"]
        assert snapshot(theirs) == theirs.before
