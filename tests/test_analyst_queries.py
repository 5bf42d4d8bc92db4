"""Every query docs/datasets.md shows, run on the demo's three days exactly as the doc says, gives
the same figures as pandas computes from the inputs, and the figures the doc prints.

The aggregates withhold cells of fewer than k receipts (null, withheld = true:
sql/small_cells.sql, tested in tests/transform/test_privacy.py). Here only which groups were
withheld is read from the published files; every figure is computed from the transactions and
each receipt's age group. The queries take their day from the latest published one.

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
from agebatch.schema import ABOUT, TABLES, UNKNOWN_GROUP
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
    from the generated inputs, with the age group each receipt_ages file gives it."""
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
    assert all_lines["age_group"].notna().all()
    return all_lines


def withheld(demo: Path, day: dt.date) -> set[tuple[str, str]]:
    """The (store, age group) pairs age_group_receipts withholds on day: the only thing read
    from the published tables here."""
    table = pq.read_table(demo / DEMO / "out" / "age_group_receipts" / f"day={day}").to_pandas()
    return set(table.loc[table["withheld"], ["store_id", "age_group"]].itertuples(False, None))


def _order(group: str) -> tuple[int, str]:
    """The docs' order: age_group_low nulls last, then the name."""
    return (GROUPS.get(group, 999), group)


def latest_day_revenue_by_age_group(items: pd.DataFrame, hidden: set) -> list[tuple]:
    day = items[items["day"] == max(DAYS)]
    rows = []
    for group in sorted([*GROUPS, UNKNOWN_GROUP], key=_order):
        stores = sum(1 for _, g in hidden if g == group)
        money = sum(day.loc[day["age_group"] == group, "amount"], Decimal("0.00"))
        rows.append((group, None if stores else money, stores))
    return rows


def alcohol_share_per_store(items: pd.DataFrame, hidden: set) -> list[tuple]:
    day = items[items["day"] == max(DAYS) - dt.timedelta(days=1)]
    rows = []
    for store, store_lines in day.groupby("store_id"):
        alcohol = sum(store_lines.loc[store_lines["age_restricted"], "amount"])
        total = sum(store_lines["amount"])
        rows.append((store, alcohol, total, round(float(100 * alcohol) / float(total), 2)))
    return rows


def receipts_per_age_group(items: pd.DataFrame, hidden: set) -> list[tuple]:
    day = items[(items["day"] == LAST) & (items["store_id"] == "S01")]
    rows = []
    for group in sorted([*GROUPS, UNKNOWN_GROUP], key=_order):
        mine = day[day["age_group"] == group]
        if group == UNKNOWN_GROUP and mine.empty:
            continue
        if ("S01", group) in hidden:
            rows.append((group, None, None, None, True))
            continue
        n, money = mine["receipt_id"].nunique(), sum(mine["amount"], Decimal("0.00"))
        rows.append((group, n, money, round(float(money) / n, 2) if n else None, False))
    return rows


def daily_totals(items: pd.DataFrame, hidden: set) -> list[tuple]:
    return [
        (day, day_lines["receipt_id"].nunique(), sum(day_lines["amount"]))
        for day, day_lines in items.groupby("day")
    ]


ORACLES: dict[str, Callable[[pd.DataFrame, set], list[tuple]]] = {
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
        ), (row, want)


def test_every_doc_query_has_an_oracle() -> None:
    assert {c.name for c in DOC_CHECKS.values() if c.lang == "sql"} == set(ORACLES)
    assert "pandas_day_is_a_date" in DOC_CHECKS


@pytest.mark.parametrize("name", sorted(ORACLES))
def test_doc_query_gives_the_pandas_figures_and_the_printed_ones(
    name: str, demo: Path, here: duckdb.DuckDBPyConnection
) -> None:
    check: Check = DOC_CHECKS[name]
    columns, rows = run_sql(here, check.code)
    _same(rows, ORACLES[name](lines(demo), withheld(demo, LAST)))
    assert check.printed == table(columns, rows), "run python -m tools.datasets_doc"


def test_a_window_over_a_day_filter(demo: Path, here: duckdb.DuckDBPyConnection) -> None:
    # The query of the DuckDB 2.0.1 report, on the files and on the analytics database's view.
    items = lines(demo)
    glob = "agebatch-demo/out/store_sales/*/*.parquet"
    for day in DAYS:
        expected = [
            (store, sum(d["amount"])) for store, d in items[items["day"] == day].groupby("store_id")
        ]
        for source in (f"read_parquet('{glob}', hive_partitioning = true)", "store_sales"):
            query = (
                f"select distinct store_id, sum(revenue) over (partition by store_id) from {source}"
                f" where day = date '{day}' and level = 'store' and category != 'all' "
                "order by store_id"
            )
            assert here.sql(query).fetchall() == expected, (duckdb.__version__, source, day)


def test_the_pandas_block_reads_day_as_a_date(demo: Path, here: duckdb.DuckDBPyConnection) -> None:
    check = DOC_CHECKS["pandas_day_is_a_date"]
    printed = run_python(check.code)
    assert check.printed == f"\n```text\n{printed}```\n", "run python -m tools.datasets_doc"
    kinds, revenue = printed.splitlines()
    assert kinds == "date32[day][pyarrow] decimal128(18, 2)[pyarrow]"
    expected = {store: total for store, _, total, _ in alcohol_share_per_store(lines(demo), set())}
    assert revenue == repr(expected)


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
    # the CLI writes a withheld (null) revenue as NULL
    expected = [",".join("NULL" if v is None else str(v) for v in row) for row in rows]
    assert done.stdout.splitlines()[1:] == expected


def test_published_data_keys_and_totals(demo: Path, here: duckdb.DuckDBPyConnection) -> None:
    items = lines(demo)
    for name in TABLES:
        key = ", ".join(ABOUT[name].key)
        repeated = here.sql(
            f"select {key}, count(*) from {name} group by all having count(*) > 1"
        ).fetchall()
        assert repeated == [], name
    per_day = dict(items.groupby("day")["amount"].apply(sum))
    totals = here.sql(
        "select day, sum(revenue) from store_sales where level = 'store' and category != 'all' "
        "group by day"
    ).fetchall()
    assert dict(totals) == per_day
    for view in ("age_group_purchases", "age_group_receipts"):  # published: never above
        totals = here.sql(f"select day, sum(revenue) from {view} group by day").fetchall()
        assert all(total <= per_day[day] for day, total in totals), view
        assert (
            here.sql(
                f"select count(*) from {view} where withheld and revenue is not null"
            ).fetchone()[0]
            == 0
        )
    bounds = here.sql(
        "select distinct age_group, age_group_low from age_group_receipts order by all"
    ).fetchall()
    assert all(GROUPS.get(group) == low for group, low in bounds if group != UNKNOWN_GROUP)
    receipts = here.sql(
        "select sum(receipts) from store_sales where level = 'chain' and category = 'all'"
    ).fetchone()[0]
    assert receipts == items.groupby("day")["receipt_id"].nunique().sum()
