"""Reading a day's transactions: times with and without UTC offsets, and bad values."""

from __future__ import annotations

import datetime as dt
import math
import re
import tempfile
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agebatch.errors import InputError
from agebatch.inputs.transactions import read_transactions

DAY = dt.date(2026, 10, 25)
HEADER = "receipt_id,store_id,register_id,cashier_id,paid_at,sku,quantity,amount\n"


def _read(tmp_path: Path, *times: str, zone: str = "Europe/London"):
    rows = [f"r{i},S1,R1,C1,{t},BEE000,1,4.50\n" for i, t in enumerate(times)]
    (tmp_path / f"{DAY}.csv").write_text(HEADER + "".join(rows))
    return read_transactions(tmp_path, DAY, zone).to_pydict()


def test_times_with_offsets_keep_their_instant_and_show_the_wall_clock(tmp_path: Path) -> None:
    lines = _read(
        tmp_path,
        "2026-10-25T01:30:00+01:00",  # the first 01:30 of the autumn night (BST)
        "2026-10-25T01:30:00+00:00",  # the second (GMT)
        "2026-10-25T01:30:00Z",
        "2026-10-25 01:30:00",  # no offset: the wall clock as written, instant unknown
        "2026-10-25T12:00:00+05:00",  # an offset from elsewhere: the store's wall clock shown
    )
    wall = dt.datetime(2026, 10, 25, 1, 30)
    assert lines["paid_at"] == [wall, wall, wall, wall, dt.datetime(2026, 10, 25, 7, 0)]
    assert lines["paid_at_utc"] == [
        dt.datetime(2026, 10, 25, 0, 30),
        dt.datetime(2026, 10, 25, 1, 30),
        dt.datetime(2026, 10, 25, 1, 30),
        None,
        dt.datetime(2026, 10, 25, 7, 0),
    ]


def test_the_wall_clock_follows_the_configured_zone(tmp_path: Path) -> None:
    lines = _read(tmp_path, "2026-10-25T12:00:00Z", zone="America/New_York")
    assert lines["paid_at"] == [dt.datetime(2026, 10, 25, 8, 0)]


@pytest.mark.parametrize("value", ["soon", "", "2026-13-01 10:00:00"])
def test_a_time_that_is_not_one_is_one_sentence(tmp_path: Path, value: str) -> None:
    with pytest.raises(InputError, match="column paid_at has 1 value\\(s\\) that are empty or"):
        _read(tmp_path, "2026-10-25 10:00:00", value)


def _big_csv(folder: Path, bad: str, at: int = 40_000, lines: int = 50_000) -> Path:
    """A day's CSV of `lines` lines (header included) with `bad` as line `at`; receipts of three
    lines each, all fine."""
    rows = (f"r{i // 3},S1,R1,C1,2026-10-25 10:00:00,BEE000,1,4.50\n" for i in range(2, lines + 1))
    text = "".join(bad if i == at else row for i, row in enumerate(rows, start=2))
    path = folder / f"{DAY}.csv"
    path.write_bytes((HEADER + text).encode("utf-8", "surrogateescape"))
    return path


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("r9,S1,R1,C1,2026-10-25 10:00:00,BEE000,1,4.50,x\n", "has 9 field\\(s\\) where the"),
        ("r9,S1,R1,C1,2026-10-25 10:00:00,BEE000,1\n", "has 7 field\\(s\\) where the header has 8"),
        ("r9,S1,R1,C\udcff1,2026-10-25 10:00:00,BEE000,1,4.50\n", "is not UTF-8 text"),
        ('r9,S1,R1,"C1,2026-10-25 10:00:00,BEE000,1,4.50\n', "opens a quote that is never closed"),
    ],
)
def test_a_bad_line_past_duckdbs_sample_is_one_sentence_naming_it(
    tmp_path: Path, bad: str, message: str
) -> None:
    path = _big_csv(tmp_path, bad)
    with pytest.raises(InputError) as error:
        read_transactions(tmp_path, DAY, "Europe/London")
    assert str(error.value).startswith(f"Transactions file {path}: line 40,000 ")
    assert re.search(message, str(error.value))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            "r13332,S1,R2,C1,2026-10-25 10:00:00,BEE000,1,4.50\n",
            "receipt 'r13332' is at register 'R2' but at register 'R1' on line 39,996; a receipt "
            "is rung up at one store, register and cashier",
        ),
        (
            "r13332,S2,R1,C1,2026-10-25 10:00:00,BEE000,1,4.50\n",
            "receipt 'r13332' is at store 'S2' but at store 'S1' on line 39,996",
        ),
        (
            "r13332,S1,R1,C7,2026-10-25 10:00:00,BEE000,1,4.50\n",
            "receipt 'r13332' is at cashier 'C7' but at cashier 'C1' on line 39,996",
        ),
        (
            "x,S1,R1,C1,2026-10-26 00:00:30,BEE000,1,4.50\n",
            "receipt 'x' is paid at 2026-10-26 00:00:30 \\(the store's wall clock\\), not on "
            "2026-10-25",
        ),
        (
            "x,S1,R1,C1,2026-10-25T23:30:00-01:00,BEE000,1,4.50\n",  # 00:30 on the 26th in London
            "receipt 'x' is paid at 2026-10-26 00:30:00",
        ),
        (
            "r13332,S1,R1,C1,2026-10-23 10:00:00,BEE000,1,4.50\n",
            "receipt 'r13332' has a line paid at 2026-10-23 10:00:00, neither on 2026-10-25 nor",
        ),
        ("x,S1,R1,C1,2026-10-25 10:00:00,BEE000,0,4.50\n", "receipt 'x' has quantity 0"),
        ("x,S1,R1,C1,2026-10-25 10:00:00,BEE000,inf,4.50\n", "quantity inf, not a finite"),
        ("x,S1,R1,C1,2026-10-25 10:00:00,BEE000,1e9,4.50\n", "quantity 1e\\+09; a line holds"),
        ("x,S1,R1,C1,2026-10-25 10:00:00,BEE000,-1,4.50\n", "quantity -1 with amount 4.50: the"),
        ("x,S1,R1,C1,2026-10-25 10:00:00,BEE000,2,-9.00\n", "quantity 2 with amount -9.00: the"),
    ],
)
def test_lines_the_join_cannot_trust_are_refused_naming_the_first(
    tmp_path: Path, bad: str, message: str
) -> None:
    path = _big_csv(tmp_path, bad)
    with pytest.raises(InputError) as error:
        read_transactions(tmp_path, DAY, "Europe/London")
    assert str(error.value).startswith(f"Transactions file {path}, line 40,000: ")
    assert re.search(message, str(error.value)), str(error.value)


@pytest.mark.parametrize(
    "good",
    [
        "x,S1,R1,C1,2026-10-25 10:00:00,BEE000,-1,-4.50\n",  # a return
        "x,S1,R1,C1,2026-10-25 10:00:00,BEE000,1,0\n",  # a free item
        "x,S1,R1,C1,2026-10-25 10:00:00,BEE000,-1,0\n",  # a free item taken back
        "r13332,S1,R1,C1,2026-10-24 23:59:00,BEE000,1,4.50\n",  # rung up before midnight
        "x,S1,R1,C1,2026-10-25T23:30:00Z,BEE000,1,4.50\n",  # 23:30 GMT, London's wall clock
    ],
)
def test_returns_free_items_and_receipts_over_midnight_are_read(tmp_path: Path, good: str) -> None:
    _big_csv(tmp_path, good, lines=40_100)
    assert read_transactions(tmp_path, DAY, "Europe/London").num_rows == 40_099


def test_a_parquet_file_names_the_row(tmp_path: Path) -> None:
    line = ("S1", "R1", "C1", "2026-10-25 10:00:00", "BEE000", 1.0, "4.50")
    rows = [(f"r{i}", *line) for i in range(5)]
    rows[3] = ("r2", "S1", "R9", *line[2:])
    frame = pd.DataFrame(rows, columns=HEADER.strip().split(","))
    frame["amount"] = frame["amount"].map(Decimal)
    frame.to_parquet(tmp_path / f"{DAY}.parquet")
    with pytest.raises(
        InputError,
        match=r"\.parquet, row 4: receipt 'r2' is at register 'R9' but "
        r"at register 'R1' on row 3;",
    ):
        read_transactions(tmp_path, DAY, "Europe/London")


# A line: receipt, store, register, cashier, paid_at (text), quantity, amount (text).
Line = tuple[str, str, str, str, str, float, str]
FAULTS = ("store", "register", "cashier", "next_day", "long_ago", "zero", "sign", "nan")


@st.composite
def _days_lines(draw: st.DrawFn) -> tuple[list[Line], int, list[tuple[int, str]]]:
    """A day's good lines in a random order, a row to break, and faults for rows after it."""
    lines: list[Line] = []
    for n in range(draw(st.integers(1, 12))):
        place = draw(st.tuples(st.sampled_from("AB"), st.sampled_from("12"), st.sampled_from("xy")))
        paid = dt.datetime.combine(DAY, dt.time()) + dt.timedelta(
            seconds=draw(st.integers(0, 86_399))
        )
        for _ in range(draw(st.integers(1, 3))):
            quantity = draw(st.sampled_from([-2.0, -1.0, 1.0, 2.0, 0.5]))
            price = draw(st.sampled_from(["0", "1.25", "4.50"]))
            amount = price if quantity > 0 or price == "0" else f"-{price}"
            time = paid - dt.timedelta(seconds=draw(st.integers(0, 600)))
            lines.append((f"r{n}", *place, time.isoformat(sep=" "), quantity, amount))
    lines = draw(st.permutations(lines))
    at = draw(st.integers(0, len(lines) - 1))
    later = st.tuples(st.integers(at, len(lines) - 1), st.sampled_from(FAULTS))
    return list(lines), at, draw(st.lists(later, max_size=2))


def _with_fault(line: Line, fault: str) -> Line:
    receipt, store, register, cashier, paid, quantity, amount = line
    if fault in ("store", "register", "cashier"):
        changed = {
            "store": (store + "Z", register, cashier),
            "register": (store, register + "Z", cashier),
            "cashier": (store, register, cashier + "Z"),
        }[fault]
        return (receipt, *changed, paid, quantity, amount)
    if fault == "next_day":
        return (
            receipt,
            store,
            register,
            cashier,
            f"{DAY + dt.timedelta(days=1)} 00:00:01",
            quantity,
            amount,
        )
    if fault == "long_ago":
        return (
            receipt,
            store,
            register,
            cashier,
            f"{DAY - dt.timedelta(days=2)} 12:00:00",
            quantity,
            amount,
        )
    if fault == "zero":
        return (receipt, store, register, cashier, paid, 0.0, amount)
    if fault == "sign":
        opposite = "-4.50" if quantity > 0 else "4.50"
        return (receipt, store, register, cashier, paid, quantity, opposite)
    return (receipt, store, register, cashier, paid, float("nan"), amount)


def _first_fault(lines: list[Line]) -> tuple[int, str] | None:
    """The rule, written plainly: the first line (1-based) the reader must refuse, and why."""
    first: dict[str, Line] = {}
    paid: dict[str, dt.datetime] = {}
    for line in lines:
        first.setdefault(line[0], line)
        paid[line[0]] = max(paid.get(line[0], dt.datetime.min), dt.datetime.fromisoformat(line[4]))
    for row, line in enumerate(lines, start=1):
        receipt, time, quantity, amount = line[0], line[4], line[5], line[6]
        for what, mine, theirs in zip(
            ("store", "register", "cashier"), line[1:4], first[receipt][1:4], strict=True
        ):
            if mine != theirs:
                return row, f"is at {what} {mine!r} but at {what} {theirs!r}"
        if paid[receipt].date() != DAY:
            return row, f"is paid at {paid[receipt]}"
        if dt.datetime.fromisoformat(time).date() not in (DAY, DAY - dt.timedelta(days=1)):
            return row, "has a line paid at"
        if math.isnan(quantity):
            return row, "has quantity nan, not a finite number"
        if quantity == 0:
            return row, "has quantity 0"
        if quantity * float(amount) < 0:
            return row, "the signs disagree"
    return None


@pytest.mark.parametrize("kind", [None, *FAULTS])
@settings(max_examples=25, deadline=None)
@given(day_lines=_days_lines())
def test_the_first_line_against_the_rules_is_the_one_named(
    kind: str | None, day_lines: tuple[list[Line], int, list[tuple[int, str]]]
) -> None:
    lines, at, later = day_lines
    faults = ([] if kind is None else [(at, kind)]) + (later if kind is not None else [])
    for row, fault in faults:
        lines[row] = _with_fault(lines[row], fault)
    with tempfile.TemporaryDirectory() as folder:
        text = "".join(f"{r},{s},{g},{c},{p},BEE000,{q},{a}\n" for r, s, g, c, p, q, a in lines)
        Path(folder, f"{DAY}.csv").write_text(HEADER + text)
        expected = _first_fault(lines)
        if expected is None:
            read = read_transactions(Path(folder), DAY, "Europe/London")
            assert read.column("receipt_id").to_pylist() == [line[0] for line in lines]
            assert read.column("quantity").to_pylist() == [line[5] for line in lines]
            return
        with pytest.raises(InputError) as error:
            read_transactions(Path(folder), DAY, "Europe/London")
    row, says = expected
    assert f", line {row + 1:,}: receipt '{lines[row - 1][0]}' " in str(error.value)
    assert says in str(error.value), (says, str(error.value))
