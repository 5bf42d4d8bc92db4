"""`agebatch offers`: the published offers in words, per store and the chain; bad requests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest

from agebatch.cli import main
from agebatch.publish import publish_day
from agebatch.transform.affinity import DAILY, REPORT, affinity_history, affinity_of, wilson
from tests.conftest import DAY
from tests.transform.test_affinity import CATALOG, PLANTED, _day, _inputs


def _publish(out: Path, day: dt.date) -> None:
    """A noise-free day published as a run would: its counts and the window's affinity."""
    history, covered = affinity_history(out, day, 28, _inputs().groups)
    lines, ages = _day(PLANTED)
    tables = affinity_of(lines, CATALOG, ages, day, _inputs(history=history, days_covered=covered))
    tables = {DAILY: tables[DAILY], REPORT: tables[REPORT]}
    publish_day(out, day, tables, lambda: pa.table({"run_id": ["r"]}), f"r{day:%m%d}")


@pytest.fixture
def out(tmp_path: Path) -> Path:
    _publish(tmp_path, DAY - dt.timedelta(days=2))
    _publish(tmp_path, DAY)
    return tmp_path


def test_offers_in_words_per_store_then_the_chain(out: Path, capsys) -> None:
    assert main(["offers", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"Offers for {DAY} (28-day window, 2 of its days published;")
    assert printed[1] == "S1:"
    # Two days of 100 receipts per group: 18-24 bought P1 on 80 of their 200 receipts, all
    # 1,400 receipts on 200: 0.4 of its buyers are 18-24, who are 1/7 of the shoppers.
    low, high = wilson(pa.array([80.0]).to_numpy(), pa.array([200.0]).to_numpy(), 0.95)
    assert printed[2] == (
        "  18\u201324 at S1 buy pantry 2.8\u00d7 as often as the store's shoppers "
        f"({low[0] * 7:.1f}\u2013{high[0] * 7:.1f}\u00d7, 80 receipts over 2 days)"
    )
    assert printed[3].startswith("  18\u201324 at S1 buy fresh ")
    assert printed[4].startswith("  18\u201324 at S1 buy P1 (pantry) 2.8\u00d7")
    assert [line.split(" buy ")[1].split(" ")[0] for line in printed[5:7]] == ["P2", "F1"]
    # 45-54 bought F2 on 19 receipts a day: under the minimum on one day, ranked over two.
    assert printed[7].startswith("  45\u201354 at S1 buy fresh ")
    assert printed[8].startswith("  45\u201354 at S1 buy F2 (fresh) 7.0\u00d7")
    assert printed[9].startswith("  65+ at S1 buy extra ")
    assert printed[10].startswith("  65+ at S1 buy X1 (extra) ")
    assert printed[11] == "  no offers for <18, 25\u201334, 35\u201344, 55\u201364"
    assert printed[12] == "The chain:"
    assert printed[13].startswith("  18\u201324 across the chain buy pantry 2.8\u00d7 as often as")
    assert "the chain's shoppers" in printed[13]
    assert len(printed) == 23


def test_one_store_one_group_one_day_and_top(out: Path, capsys) -> None:
    earlier = DAY - dt.timedelta(days=2)
    argv = ["offers", "--out", str(out), "--store", "S1", "--group", "18\u201324", "--top", "1"]
    assert main([*argv, "--day", str(earlier)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"Offers for {earlier} (28-day window, 1 of its days")
    assert len(printed) == 4 and printed[1] == "S1:"  # no chain, one group, one of each kind
    assert "buy pantry" in printed[2] and "40 receipts over 1 day)" in printed[2]
    assert "buy P1 (pantry)" in printed[3]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--store", "S9"], "Store 'S9' has no rows on 2026-11-24; stores: S1."),
        (["--group", "30-39"], "Age group '30-39' has no rows"),
        (["--day", "2026-11-23"], "2026-11-23 has no age_group_affinity under"),
    ],
)
def test_a_bad_request_is_one_sentence(out: Path, capsys, extra: list[str], message: str) -> None:
    assert main(["offers", "--out", str(out), *extra]) == 2
    assert message in capsys.readouterr().err


def test_an_output_without_the_table_says_so(tmp_path: Path, capsys) -> None:
    assert main(["offers", "--out", str(tmp_path)]) == 2
    assert "No age_group_affinity under" in capsys.readouterr().err
