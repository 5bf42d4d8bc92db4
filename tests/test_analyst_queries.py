"""Every query docs/datasets.md shows, run on the demo's three days exactly as the doc says, gives
the same figures as pandas computes from the inputs, and the figures the doc prints.

The aggregates merge cells of fewer than k receipts into 'suppressed' rows
(sql/small_cells.sql; the rule is tested in tests/reports/test_privacy.py). Here only which
cells and groups were kept is read from the published files; every figure is computed from the
inputs: a kept cell's lines count under its age group, the rest under 'suppressed'.

This is the guard on the pinned DuckDB: 2.0.0 and 2.0.1 drop a day filter under a window
(test_a_window_over_a_day_filter), and the doc's alcohol query comes out wrong with them.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest
from prefect.testing.utilities import prefect_test_harness

from agebatch.config import age_group_labels, default_age_bounds
from agebatch.schema import ABOUT, SUPPRESSED, TABLES, UNKNOWN_GROUP
from tools.datasets_doc import DATABASE, DEMO, DOC, Check, checks, run_python, run_sql, table

pytestmark = pytest.mark.slow
LAST = dt.date(2026, 11, 26)
DAYS = [LAST - dt.timedelta(days=n) for n in (2, 1, 0)]
GROUPS = {label: max(low, 0) for label, low, _ in age_group_labels(default_age_bounds())}
DOC_CHECKS = {check.name: check for check in checks(DOC.read_text())}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder holding agebatch-demo/ after the demo run the doc names (bundled model)."""
    from agebatch.cli.demo import run_demo

    assert "agebatch demo --workdir agebatch-demo --day 2026-11-26 --days 3" in DOC.read_text()
    root = tmp_path_factory.mktemp("analyst")
    home = os.environ.get("PREFECT_HOME")
    os.environ["PREFECT_HOME"] = str(root / "prefect")
    try:
        with prefect_test_harness(server_startup_timeout=120):
            assert run_demo(root / DEMO, day=LAST, days=3) == 0
    finally:
        os.environ.pop("PREFECT_HOME") if home is None else os.environ.update(PREFECT_HOME=home)
    return root


@pytest.fixture
def here(demo: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[duckdb.DuckDBPyConnection]:
    """In the demo's parent folder (the doc's paths are relative), the analytics database."""
    monkeypatch.chdir(demo)
    con = duckdb.connect(str(DATABASE), read_only=True)
    yield con
    con.close()


def lines(demo: Path) -> pd.DataFrame:
    """Every line item of the three days with its catalog entry and its receipt's age group:
    from the generated inputs, with the age group each receipt_ages file gives it. `cell_group`
    is the age group of the line's published age_group_purchases cell ('suppressed' when the
    cell was merged) and `receipt_group` that of its receipt's age_group_receipts row."""
    data = demo / DEMO / "data"
    out = demo / DEMO / "out"
    catalog = pd.read_csv(data / "catalog.csv")
    frames = []
    for day in DAYS:
        day_lines = pd.read_parquet(data / "transactions" / f"{day}.parquet")
        ages = pq.read_table(out / "receipt_ages" / f"day={day}").to_pandas()
        groups = ages.set_index("receipt_id")["age_group"].fillna(UNKNOWN_GROUP)
        day_lines["age_group"] = day_lines["receipt_id"].map(groups)
        frames.append(day_lines.assign(day=day))
    all_lines = pd.concat(frames).merge(catalog, on="sku", how="left")
    all_lines["category"] = all_lines["category"].fillna("uncategorised")
    all_lines["age_restricted"] = all_lines["age_restricted"].fillna(False).astype(bool)
    all_lines["amount"] = [Decimal(f"{a:.2f}") for a in all_lines["amount"]]
    cells, groups = _kept(out, "age_group_purchases"), _kept(out, "age_group_receipts")
    cell_key = ["day", "store_id", "age_group", "category", "age_restricted"]
    cell = all_lines[cell_key].itertuples(index=False, name=None)
    group = all_lines[cell_key[:3]].itertuples(index=False, name=None)
    all_lines["cell_group"] = [key[2] if key in cells else SUPPRESSED for key in cell]
    all_lines["receipt_group"] = [key[2] if key in groups else SUPPRESSED for key in group]
    assert all_lines["age_group"].notna().all()
    return all_lines


def _kept(out: Path, name: str) -> set[tuple]:
    """The (day, store, age group[, category, age_restricted]) of each published row that is not
    a merged one."""
    table = pd.concat(
        pq.read_table(out / name / f"day={day}").to_pandas().assign(day=day) for day in DAYS
    )
    key = ["day", "store_id", "age_group"]
    key += ["category", "age_restricted"] if name == "age_group_purchases" else []
    kept = table[table["age_group"] != SUPPRESSED]
    return set(kept[key].itertuples(index=False, name=None))


def _order(group: str) -> tuple[int, str]:
    """The docs' order: age_group_low nulls last, then the name."""
    return (GROUPS.get(group, 999), group)


def latest_day_revenue_by_age_group(items: pd.DataFrame) -> list[tuple]:
    day = items[items["day"] == max(DAYS)]
    revenue = day.groupby("cell_group")["amount"].apply(sum)
    return [(group, revenue[group]) for group in sorted(revenue.index, key=_order)]


def alcohol_share_per_store(items: pd.DataFrame) -> list[tuple]:
    day = items[items["day"] == dt.date(2026, 11, 25)]
    rows = []
    for store, store_lines in day.groupby("store_id"):
        shown = store_lines["age_restricted"] & (store_lines["cell_group"] != SUPPRESSED)
        alcohol = sum(store_lines.loc[shown, "amount"])
        total = sum(store_lines["amount"])
        rows.append((store, alcohol, total, round(float(100 * alcohol) / float(total), 2)))
    return rows


def receipts_per_age_group(items: pd.DataFrame) -> list[tuple]:
    # A kept group's revenue is that of its kept cells; the rest of the sales is 'suppressed'.
    day = items[items["day"] == LAST]
    receipts = day.groupby("receipt_group")["receipt_id"].nunique()
    revenue = day.groupby("cell_group")["amount"].apply(sum)
    rows = []
    for group in sorted(set(receipts.index) | set(revenue.index), key=_order):
        n, money = int(receipts.get(group, 0)), revenue.get(group, Decimal("0.00"))
        rows.append((group, n, money, round(float(money) / n, 2)))
    return rows


def daily_totals(items: pd.DataFrame) -> list[tuple]:
    return [
        (day, day_lines["receipt_id"].nunique(), sum(day_lines["amount"]))
        for day, day_lines in items.groupby("day")
    ]


ORACLES: dict[str, Callable[[pd.DataFrame], list[tuple]]] = {
    f.__name__: f
    for f in (
        latest_day_revenue_by_age_group,
        alcohol_share_per_store,
        receipts_per_age_group,
        daily_totals,
    )
}


def _same(found: list[tuple], expected: list[tuple]) -> None:
    """Equal row by row: decimals, counts, days and text exactly; floats to 1e-9."""
    assert len(found) == len(expected)
    for row, want in zip(found, expected, strict=True):
        assert [pytest.approx(v, abs=1e-9) if isinstance(v, float) else v for v in want] == list(
            row
        )


def test_every_doc_query_has_an_oracle() -> None:
    assert {c.name for c in DOC_CHECKS.values() if c.lang == "sql"} == set(ORACLES)
    assert "pandas_day_is_a_date" in DOC_CHECKS


@pytest.mark.parametrize("name", sorted(ORACLES))
def test_doc_query_gives_the_pandas_figures_and_the_printed_ones(
    name: str, demo: Path, here: duckdb.DuckDBPyConnection
) -> None:
    check: Check = DOC_CHECKS[name]
    columns, rows = run_sql(here, check.code)
    _same(rows, ORACLES[name](lines(demo)))
    assert check.printed == table(columns, rows), "run python -m tools.datasets_doc"


def test_a_window_over_a_day_filter(demo: Path, here: duckdb.DuckDBPyConnection) -> None:
    # The query of the DuckDB 2.0.1 report, on the files and on the analytics database's view.
    items = lines(demo)
    glob = "agebatch-demo/out/age_group_purchases/*/*.parquet"
    for day in DAYS:
        expected = [
            (store, sum(d["amount"])) for store, d in items[items["day"] == day].groupby("store_id")
        ]
        for source in (f"read_parquet('{glob}', hive_partitioning = true)", "age_group_purchases"):
            query = (
                f"select distinct store_id, sum(revenue) over (partition by store_id) from {source}"
                f" where day = date '{day}' order by store_id"
            )
            assert here.sql(query).fetchall() == expected, (duckdb.__version__, source, day)


def test_the_pandas_block_reads_day_as_a_date(demo: Path, here: duckdb.DuckDBPyConnection) -> None:
    check = DOC_CHECKS["pandas_day_is_a_date"]
    printed = run_python(check.code)
    assert check.printed == f"\n```text\n{printed}```\n", "run python -m tools.datasets_doc"
    kinds, revenue = printed.splitlines()
    assert kinds == "date32[day][pyarrow] decimal128(18, 2)[pyarrow]"
    expected = {store: total for store, total, *_ in _store_totals(lines(demo))}
    assert revenue == repr(expected)


def _store_totals(items: pd.DataFrame) -> list[tuple]:
    day = items[items["day"] == dt.date(2026, 11, 25)]
    return [(store, sum(d["amount"])) for store, d in day.groupby("store_id")]


def test_the_duckdb_cli_answers_the_doc_query(here: duckdb.DuckDBPyConnection) -> None:
    cli = Path(sys.executable).with_name("duckdb")
    code = DOC_CHECKS["latest_day_revenue_by_age_group"].code
    done = subprocess.run(
        [str(cli), "-readonly", "-csv", str(DATABASE), "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    _, rows = run_sql(here, code)
    assert done.stdout.splitlines()[1:] == [f"{group},{revenue}" for group, revenue in rows]


def test_published_data_keys_and_totals(demo: Path, here: duckdb.DuckDBPyConnection) -> None:
    items = lines(demo)
    for name in TABLES:
        key = ", ".join(ABOUT[name].key)
        repeated = here.sql(
            f"select {key}, count(*) from {name} group by all having count(*) > 1"
        ).fetchall()
        assert repeated == [], name
    per_day = dict(items.groupby("day")["amount"].apply(sum))
    for view in ("age_group_purchases", "age_group_receipts"):
        totals = here.sql(f"select day, sum(revenue) from {view} group by day").fetchall()
        assert dict(totals) == per_day, view
    bounds = here.sql(
        "select distinct age_group, age_group_low from age_group_receipts order by all"
    ).fetchall()
    assert all(GROUPS.get(group) == low for group, low in bounds if group != UNKNOWN_GROUP)
    receipts = here.sql("select sum(receipts) from age_group_receipts").fetchone()[0]
    assert receipts == items.groupby("day")["receipt_id"].nunique().sum() == 1200
