"""Publishing: a day is swapped in whole; a failure leaves the previous version intact."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from agebatch import publish as publish_module
from agebatch.errors import InputError
from agebatch.publish import partition, publish_day
from tests.conftest import DAY


def _tables(version: int) -> dict[str, pa.Table]:
    return {
        "receipt_ages": pa.table({"receipt_id": ["a", "b"], "version": [version, version]}),
        "age_group_purchases": pa.table({"age_group": ["<18"], "version": [version]}),
    }


def _record(version: int):
    return lambda: pa.table({"run_id": [f"run{version}"]})


def _snapshot(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in out.rglob("*.parquet")
        if ".staging" not in p.parts
    }


def test_publish_writes_hive_partitions_without_day_column(tmp_path: Path) -> None:
    published = publish_day(tmp_path, DAY, _tables(1), _record(1), "run1")
    assert published["receipt_ages"] == tmp_path / "receipt_ages" / f"day={DAY}"
    table = pq.read_table(published["receipt_ages"] / "part-0.parquet")
    assert table.column_names == ["receipt_id", "version"]
    assert [p.name for p in published["runs"].iterdir()] == ["run-run1.parquet"]


@pytest.mark.parametrize("failing_call", [1, 2, 3, 4, 5, 6])
def test_failure_while_swapping_leaves_previous_day_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing_call: int
) -> None:
    publish_day(tmp_path, DAY, _tables(1), _record(1), "run1")
    before = _snapshot(tmp_path)
    calls = {"n": 0}
    real_replace = os.replace

    def flaky_replace(src, dst):
        calls["n"] += 1
        if calls["n"] == failing_call:
            raise OSError("disk full (injected)")
        return real_replace(src, dst)

    monkeypatch.setattr(publish_module.os, "replace", flaky_replace)
    with pytest.raises(OSError, match="injected"):
        publish_day(tmp_path, DAY, _tables(2), _record(2), "run2")
    assert _snapshot(tmp_path) == before
    assert not list((tmp_path / ".staging").glob(f"{DAY}-*"))


def test_failure_while_writing_leaves_previous_day_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_day(tmp_path, DAY, _tables(1), _record(1), "run1")
    before = _snapshot(tmp_path)

    def broken_record() -> pa.Table:
        raise RuntimeError("crash while staging (injected)")

    with pytest.raises(RuntimeError):
        publish_day(tmp_path, DAY, _tables(2), broken_record, "run2")
    assert _snapshot(tmp_path) == before


def test_first_publish_that_fails_leaves_no_partial_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_replace = os.replace
    calls = {"n": 0}

    def fail_second(src, dst):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("injected")
        return real_replace(src, dst)

    monkeypatch.setattr(publish_module.os, "replace", fail_second)
    with pytest.raises(OSError):
        publish_day(tmp_path, DAY, _tables(1), _record(1), "run1")
    assert not partition(tmp_path, "receipt_ages", DAY).exists()
    assert _snapshot(tmp_path) == {}


def test_republish_keeps_run_history_and_replaces_tables(tmp_path: Path) -> None:
    publish_day(tmp_path, DAY, _tables(1), _record(1), "run1")
    publish_day(tmp_path, DAY, _tables(2), _record(2), "run2")
    ages = pq.read_table(partition(tmp_path, "receipt_ages", DAY))
    assert ages.column("version").to_pylist() == [2, 2]
    runs = sorted(p.name for p in partition(tmp_path, "runs", DAY).iterdir())
    assert runs == ["run-run1.parquet", "run-run2.parquet"]


def test_concurrent_publish_of_the_same_day_is_refused(tmp_path: Path) -> None:
    with publish_module._day_lock(tmp_path, DAY), pytest.raises(InputError, match="Another run"):
        publish_day(tmp_path, DAY, _tables(1), _record(1), "run1")
