"""Publishing: a day is one version behind links, switched in whole by one rename."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from agebatch import publish as publish_module
from agebatch.errors import InputError
from agebatch.publish import partition, publish_day
from tests.conftest import DAY
from tests.publishing import (
    TABLES,
    Killed,
    day_runs,
    day_tables,
    day_view,
    killed_at,
    publish,
    run_record,
    whole_day,
)

OTHER = DAY - dt.timedelta(days=1)
ALL = [*TABLES, "runs"]


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """The output folder; tests keep probes beside it."""
    return tmp_path / "out"


def _versions(out: Path, day: dt.date = DAY) -> list[str]:
    folder = out / ".versions" / day.isoformat()
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _day_files(out: Path, day: dt.date) -> dict[str, bytes]:
    """What a reader of the day's folders gets, file by file."""
    return {
        str(p.relative_to(out)): p.read_bytes()
        for table in ALL
        for p in sorted(partition(out, table, day).glob("*"))
    }


def _pandas_runs(out: Path, table: str) -> dict[str, list[str]]:
    """Run ids per day of one table, read with pandas as the README says."""
    frame = pd.read_parquet(out / table)
    return {str(day): sorted(group["run_id"]) for day, group in frame.groupby("day", observed=True)}


def test_first_publish_lays_out_links_pointer_and_version(out: Path) -> None:
    tables = day_tables("r1")
    tables["receipt_ages"] = tables["receipt_ages"].append_column("day", pa.array([DAY] * 5))
    published = publish_day(out, DAY, tables, lambda: run_record("r1"), "r1")

    assert published == {name: out / name / f"day={DAY}" for name in ALL}
    for name in ALL:
        assert os.readlink(published[name]) == f"../.days/{DAY}/{name}"
    assert os.readlink(out / ".days" / str(DAY)) == f"../.versions/{DAY}/r1"
    version = out / ".versions" / str(DAY) / "r1"
    assert sorted(str(p.relative_to(version)) for p in version.rglob("*.parquet")) == sorted(
        [f"{name}/part-0.parquet" for name in TABLES] + ["runs/run-r1.parquet"]
    )
    # The day lives in the folder name only.
    assert pq.read_table(published["receipt_ages"]).column_names == ["row", "run_id"]
    assert sorted(p.name for p in (out / ".staging").iterdir()) == ["locks"]


def test_readers_see_exactly_one_runs_tables(out: Path) -> None:
    publish(out, OTHER, "o1")
    publish(out, DAY, "r1")
    publish(out, DAY, "r2")

    assert whole_day(out, DAY) == "r2" and whole_day(out, OTHER) == "o1"
    for name, rows in TABLES.items():
        assert _pandas_runs(out, name) == {str(OTHER): ["o1"] * rows, str(DAY): ["r2"] * rows}
        assert pq.read_table(partition(out, name, DAY)).num_rows == rows
    assert _pandas_runs(out, "runs") == {str(OTHER): ["o1"], str(DAY): ["r1", "r2"]}


def test_a_recursive_glob_does_not_follow_the_links(out: Path) -> None:
    """Why the README says `*/*.parquet`: DuckDB's `**` skips linked folders."""
    import duckdb

    publish(out, DAY, "r1")
    publish(out, DAY, "r2")
    with pytest.raises(duckdb.IOException, match="No files found"):
        duckdb.sql(f"select * from read_parquet('{out}/receipt_ages/**/*.parquet')").fetchall()
    # From OUT itself it would reach every kept version: the previous one too.
    files = duckdb.sql(f"select file from glob('{out}/**/receipt_ages/*.parquet')").fetchall()
    assert sorted(Path(f).parent.parent.name for (f,) in files) == ["r1", "r2"]


def test_republish_replaces_exactly_that_day(out: Path) -> None:
    publish(out, OTHER, "o1")
    other = _day_files(out, OTHER)
    other_pointer = os.readlink(out / ".days" / str(OTHER))
    publish(out, DAY, "r1")
    publish(out, DAY, "r2")
    assert _versions(out) == ["r1", "r2"]  # the previous version stays for open readers
    publish(out, DAY, "r3")

    assert whole_day(out, DAY) == "r3"
    assert _versions(out) == ["r2", "r3"]
    assert _day_files(out, OTHER) == other
    assert os.readlink(out / ".days" / str(OTHER)) == other_pointer
    assert _versions(out, OTHER) == ["o1"]


def test_runs_of_the_day_accumulate(out: Path) -> None:
    for run_id in ("r1", "r2", "r3"):
        publish(out, DAY, run_id)
    assert day_runs(out, DAY) == ["r1", "r2", "r3"]
    assert sorted(p.name for p in partition(out, "runs", DAY).iterdir()) == [
        "run-r1.parquet",
        "run-r2.parquet",
        "run-r3.parquet",
    ]


def test_a_run_id_publishes_a_day_once(out: Path) -> None:
    publish(out, DAY, "r1")
    with pytest.raises(ValueError, match="Run r1 has already published 2026-11-24"):
        publish(out, DAY, "r1")
    assert day_runs(out, DAY) == ["r1"]


@pytest.mark.parametrize("bad", [{"runs": pa.table({"x": [1]})}, {"../up": pa.table({"x": [1]})}])
def test_table_names_that_would_clash_are_refused(out: Path, bad: dict) -> None:
    with pytest.raises(ValueError):
        publish_day(out, DAY, bad, lambda: run_record("r1"), "r1")


def test_concurrent_publish_of_the_same_day_is_refused(out: Path) -> None:
    publish(out, DAY, "r1")
    with (
        publish_module._day_lock(out, DAY),
        pytest.raises(InputError) as refused,
    ):
        publish(out, DAY, "r2")
    assert str(refused.value) == f"Another run is publishing {DAY} to {out} right now."
    assert whole_day(out, DAY) == "r1" and _versions(out) == ["r1"]
    publish(out, OTHER, "o1")  # another day is not held up


@pytest.mark.parametrize("broken", ["record", "replace", "symlink", "fsync"])
def test_failure_before_the_switch_leaves_the_previous_day(
    out: Path, monkeypatch: pytest.MonkeyPatch, broken: str
) -> None:
    publish(out, DAY, "r1")
    before = _day_files(out, DAY)

    def fail(*args, **kwargs):
        raise OSError("disk full (injected)")

    if broken == "record":
        record = fail
    else:
        monkeypatch.setattr(publish_module.os, broken, fail)
        record = lambda: run_record("r2")  # noqa: E731
    with pytest.raises(OSError, match="injected"):
        publish_day(out, DAY, day_tables("r2"), record, "r2")
    monkeypatch.undo()

    assert _day_files(out, DAY) == before
    assert whole_day(out, DAY) == "r1" and day_runs(out, DAY) == ["r1"]
    assert _versions(out) == ["r1"]  # its own half-written version removed
    assert not list((out / ".days").glob("*.tmp-*"))


def test_failure_after_the_switch_keeps_the_new_day(
    out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(out, DAY, "r1")
    real_fsync_dir = publish_module.fsync_dir

    def fsync_dir(path: Path) -> None:
        if path.name == ".days":
            raise OSError("I/O error (injected)")
        real_fsync_dir(path)

    monkeypatch.setattr(publish_module, "fsync_dir", fsync_dir)
    with pytest.raises(OSError, match="injected"):
        publish(out, DAY, "r2")
    monkeypatch.undo()
    # Readers already saw r2: its version must stay, whatever the caller is told.
    assert whole_day(out, DAY) == "r2" and day_runs(out, DAY) == ["r1", "r2"]
    assert _versions(out) == ["r1", "r2"]


@pytest.mark.parametrize(
    "step",
    [
        f"fsync .versions/{DAY}/k1/alcohol_checks/part-0.parquet",
        f"fsync .versions/{DAY}",
        f"replace .days/{DAY}",
    ],
    ids=["writing", "synced", "pointer made"],
)
def test_leftovers_of_a_killed_run_are_removed_by_the_next(out: Path, step: str) -> None:
    publish(out, DAY, "r1")
    with killed_at(_step_number(out, step), out) as passed, pytest.raises(Killed) as killed:
        publish(out, DAY, "k1")
    assert str(killed.value) == step and step not in passed
    assert _versions(out) == ["k1", "r1"]  # what the kill left, invisible to readers
    assert whole_day(out, DAY) == "r1" and day_runs(out, DAY) == ["r1"]

    publish(out, DAY, "r2")
    assert _versions(out) == ["r1", "r2"]
    assert not list((out / ".days").glob("*.tmp-*"))
    assert whole_day(out, DAY) == "r2" and day_runs(out, DAY) == ["r1", "r2"]


def _step_number(out: Path, name: str) -> int:
    """Number of the named change (the last by that name) in a re-publish of DAY, counted on a
    copy of the same history."""
    probe = out.parent / "probe"
    publish(probe, DAY, "r1")
    with killed_at(0, probe) as passed:
        publish(probe, DAY, "k1")
    return len(passed) - passed[::-1].index(name)


def test_kill_after_the_switch_keeps_the_new_day(out: Path) -> None:
    publish(out, DAY, "r1")
    # Killed just after the rename of the pointer: before fsyncing the pointer's folder.
    after_switch = _step_number(out, f"replace .days/{DAY}") + 1
    with killed_at(after_switch, out), pytest.raises(Killed, match=r"^fsync \.days$"):
        publish(out, DAY, "k1")
    assert whole_day(out, DAY) == "k1" and day_runs(out, DAY) == ["k1", "r1"]


def test_a_table_a_newer_run_does_not_write_loses_the_day(out: Path) -> None:
    publish(out, OTHER, "o1")
    publish(out, DAY, "r1")
    publish(out, DAY, "r2", names=["receipt_ages", "age_group_purchases"])

    view = day_view(out, DAY)
    assert view == {name: "r2" if name in ("receipt_ages", "age_group_purchases") else None
                    for name in TABLES}  # fmt: skip
    assert _pandas_runs(out, "alcohol_checks") == {str(OTHER): ["o1", "o1"]}
    link = partition(out, "alcohol_checks", DAY)
    assert link.is_symlink() and not link.exists()  # dangling: no reader lists it
    publish(out, DAY, "r3")  # writing it again brings it back
    assert whole_day(out, DAY) == "r3"


def test_first_publish_killed_before_the_switch_shows_no_day(out: Path) -> None:
    publish(out, OTHER, "o1")
    probe = out.parent / "probe"
    publish(probe, OTHER, "o1")
    with killed_at(0, probe) as passed:
        publish(probe, DAY, "p1")
    with killed_at(passed.index(f"replace .days/{DAY}") + 1), pytest.raises(Killed):
        publish(out, DAY, "k1")
    assert partition(out, "receipt_ages", DAY).is_symlink()  # linked, still dangling
    assert whole_day(out, DAY) is None and day_runs(out, DAY) == []
    assert _pandas_runs(out, "receipt_ages") == {str(OTHER): ["o1"] * 5}
    publish(out, DAY, "r1")
    assert whole_day(out, DAY) == "r1" and _versions(out) == ["r1"]


def test_version_is_durable_before_the_switch_and_the_switch_after(
    out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to name the fsynced files")
    publish(out, DAY, "r1")
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst) -> None:
        events.append(("replace", str(Path(dst).absolute())))
        real_replace(src, dst)

    monkeypatch.setattr(publish_module.os, "fsync", fsync)
    monkeypatch.setattr(publish_module.os, "replace", replace)
    publish(out, DAY, "r2")
    monkeypatch.undo()

    pointer = str((out / ".days" / str(DAY)).absolute())
    switch = events.index(("replace", pointer))
    synced_before = {path for kind, path in events[:switch] if kind == "fsync"}
    version = (out / ".versions" / str(DAY) / "r2").resolve()
    must = {str(p) for p in [version, *version.rglob("*"), version.parent, version.parent.parent]}
    assert must - synced_before == set()
    assert ("fsync", str((out / ".days").resolve())) in events[switch + 1 :]


def test_compliance_history_reads_published_days_through_the_links(out: Path) -> None:
    from agebatch.transform.compliance import REPORT, compliance_history

    table = pa.table(
        {
            "store_id": ["S1"],
            "cashier_id": ["C1"],
            "restricted_receipts": [4],
            "flagged_receipts": [1],
            "unchecked_receipts": [0],
        }
    )
    publish_day(out, OTHER, {REPORT: table}, lambda: run_record("o1"), "o1")
    publish_day(out, OTHER, {REPORT: table}, lambda: run_record("o2"), "o2")
    history, days_7d, days_28d = compliance_history(out, DAY)
    assert history is not None and history.column("restricted_receipts").to_pylist() == [4]
    assert (days_7d, days_28d) == (2, 2)
    runs = pq.read_table(partition(out, "runs", OTHER)).column("run_id").to_pylist()
    assert sorted(runs) == ["o1", "o2"]
