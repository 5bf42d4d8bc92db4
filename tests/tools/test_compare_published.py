"""tools/compare_published.py: published rows compared order aside, run ids and times aside."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from agebatch.schema import schema
from tools.compare_published import compare, main

DAY = dt.date(2026, 11, 24)


def _write(out: Path, table: str, rows: list[dict[str, object]]) -> None:
    fields = [f for f in schema(table) if f.name != "day" and f.name in rows[0]]
    folder = out / table / f"day={DAY.isoformat()}"
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, pa.schema(fields)), folder / "part-0.parquet")


def _root(tmp_path: Path, name: str, shares: list[float], run_id: str) -> Path:
    out = tmp_path / name
    rows = [{"store_id": "S01", "measure": "photos_unreadable", "share": s} for s in shares]
    _write(out, "store_coverage", rows)
    started = dt.datetime(2026, 11, 25, 3, len(run_id), tzinfo=dt.UTC)
    _write(out, "runs", [{"run_id": run_id, "started_at": started, "receipts": 40}])
    return out


def test_the_same_rows_in_another_order_and_another_run_are_the_same(tmp_path: Path) -> None:
    before = _root(tmp_path, "before", [0.1, 0.2, 0.2], "run-a")
    after = _root(tmp_path, "after", [0.2, 0.1, 0.2], "run-bb")
    assert compare(before, after) == {"store_coverage": "same (3 rows)", "runs": "same (1 rows)"}
    assert main([str(before), str(after)]) == 0


@pytest.mark.parametrize(
    ("shares", "verdict"),
    [
        ([0.1, 0.2, 0.3], "differs: 1 of 3 rows before only, 1 of 3 after only"),
        ([0.1, 0.2], "differs: 1 of 3 rows before only, 0 of 2 after only"),
    ],
)
def test_a_changed_or_missing_row_differs(
    tmp_path: Path, shares: list[float], verdict: str
) -> None:
    before = _root(tmp_path, "before", [0.1, 0.2, 0.2], "run-a")
    after = _root(tmp_path, "after", shares, "run-a")
    assert compare(before, after)["store_coverage"] == verdict
    assert main([str(before), str(after)]) == 1


def test_a_table_published_under_one_root_only_differs(tmp_path: Path) -> None:
    before = _root(tmp_path, "before", [0.1], "run-a")
    after = _root(tmp_path, "after", [0.1], "run-a")
    _write(after, "till_clocks", [{"store_id": "S01", "register_id": "R1"}])
    assert compare(before, after)["till_clocks"] == "published under after only"
    assert main([str(before), str(after)]) == 1
