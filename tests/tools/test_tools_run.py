"""Every developer tool in tools/ runs on tiny inputs and prints figures that add up (#23.6).

Each tool is run as its docs say (`python tools/X.py …` or `python -m tools.X …`) in a process
of its own, on generated data in tmp_path (never ../shared), and its printed figures are read
back and checked. tools/convert_dlib.py and tools/stage_memory.py have tests of their own;
tools/facebench.py is run by tests/predict/test_faces.py and tools/datasets_doc.py by
tests/test_analyst_queries.py.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from agebatch.preflight import estimate_bytes
from tests.conftest import write_labelled_faces

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _tool(*argv: str, timeout: int = 300) -> str:
    """A tool's standard output; its failure fails the test with its error output."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _rows(text: str) -> list[list[str]]:
    """The tab-separated lines of a tool's output, header first."""
    return [line.split("\t") for line in text.splitlines() if "\t" in line]


def test_bench_decode_memory_refuses_over_the_budget_only() -> None:
    header, *rows = _rows(
        _tool("tools/bench_decode_memory.py", "--sides", "300,6000", "--modes", "RGB")
    )
    assert header == ["side", "pixels", "mode", "limits", "peak_MiB", "outcome"]
    outcomes = {(side, limits): outcome for side, _, _, limits, _, outcome in rows}
    assert outcomes == {
        ("300", "budget"): "decoded",
        ("300", "pillow"): "decoded",
        ("6000", "budget"): "refused: 6000x6000 pixels, over the budget of 25,000,000",
        ("6000", "pillow"): "decoded",
    }
    peak = {(side, limits): int(mib) for side, _, _, limits, mib, _ in rows}
    assert peak["6000", "pillow"] >= 100 > peak["6000", "budget"]  # 36 Mpx x 3 bytes decoded


def test_bench_opening_times_crops_and_frames() -> None:
    header, *rows = _rows(_tool("tools/bench_opening.py", "--photos", "5", "--rounds", "1"))
    assert header[0] == "photos" and all(h.endswith("_us") for h in header[1:])
    assert [row[0] for row in rows] == ["crops", "frames"]
    for row in rows:
        assert all(int(cell) > 0 for cell in row[1:] if cell != "-"), row


def test_day_bytes_measures_what_preflight_allows(tmp_path: Path) -> None:
    text = _tool("tools/day_bytes.py", str(tmp_path / "work"), "40", "80")
    sizes = {int(n): int(b) for n, b in re.findall(r"(\d+) receipts:\s+(\d+) bytes", text)}
    assert set(sizes) == {40, 80} and 0 < sizes[40] < sizes[80]
    ((per_receipt, fixed),) = re.findall(
        r"40->80: ([\d.]+) bytes per extra receipt, (\d+) fixed", text
    )
    assert float(per_receipt) == pytest.approx((sizes[80] - sizes[40]) / 40, abs=0.05)
    # the printed slope is rounded to 0.1 byte, so the fixed part read back from it may be up
    # to 40 x 0.05 bytes off, and the printed fixed part itself is rounded to a byte
    assert int(fixed) == pytest.approx(sizes[40] - 40 * float(per_receipt), abs=2.5)
    assert estimate_bytes(80) > sizes[80]  # the preflight estimate stays above the real day


def test_suppression_reports_the_days_revenue(tmp_path: Path) -> None:
    work = tmp_path / "work"
    text = _tool("tools/suppression.py", str(work), "60", "7")
    day = dt.date(2026, 11, 24)
    ((sales,),) = duckdb.sql(
        "select round(sum(amount), 2)::double from read_parquet($p)",
        params={"p": str(work / "data" / "transactions" / f"{day}.parquet")},
    ).fetchall()
    assert f"sales of the day: {sales:.2f}" in text
    (k1,) = re.findall(r"k=1: age_group_purchases (\d+) rows, .*; revenue ([\d.]+)", text)
    assert float(k1[1]) == pytest.approx(sales)  # k = 1: every line is in a published cell
    assert re.search(r"k=5: age_group_purchases \d+ rows", text)


def test_affinity_bench_prints_each_plant_per_level_and_correction() -> None:
    text = _tool("-m", "tools.affinity_bench", "--seeds", "1", "--receipts", "600")
    assert text.startswith("1 seeds x 1 day(s) x 600 receipts, 3 stores")
    rates = [
        float(x)
        for line in text.splitlines()
        if re.search(r"\b(chain|store)\s+\d+\s", line)
        for x in line.split()[-3:]
    ]
    assert len(rates) == 3 * 24  # first, top3, elsewhere; 2 plants x 2 corrections x 3 x 2
    assert all(0 <= rate <= 1 for rate in rates)


def test_missed_checks_counts_add_up(tmp_path: Path) -> None:
    faces = write_labelled_faces(
        tmp_path / "faces", [12, 14, 15, 16, 17, 19, 22, 25, 30, 40], stripes=30
    )
    text = _tool(
        "-m", "tools.missed_checks", "--faces", str(faces), "--receipts", "120",
        "--max-teen-miss", "none",
    )  # fmt: skip
    header, row = (line.split() for line in text.strip().splitlines()[-2:])
    figures = dict(zip(header, row, strict=True))
    assert figures["flag_threshold"] == "25.0"
    sales, listed = int(figures["restricted_sales"]), int(figures["listed_for_review"])
    assert 0 < listed <= sales
    assert int(figures["found"]) <= min(
        int(figures["true_missed_under_25"]), int(figures["listed_missed"])
    )
    assert int(figures["teens_found"]) <= int(figures["teens_unasked"])
