"""Reading a day's transactions: times with and without UTC offsets, and bad values."""

from __future__ import annotations

import dataclasses
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
from agebatch.inputs.captures import Captures
from agebatch.inputs.mapping import TransactionsFormat
from agebatch.inputs.transactions import (
    KEY_NAMES,
    QuarantineRefused,
    keyed_captures,
    read_lines,
    read_transactions,
)

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


@pytest.mark.parametrize("value", ["soon", "", "2026-13-01 10:00:00", "2026-10-25 10:00 Mars/Base"])
def test_a_time_that_is_not_one_quarantines_its_receipt(tmp_path: Path, value: str) -> None:
    rows = [
        f"r{i},S1,R1,C1,{t},BEE000,1,4.50\n" for i, t in enumerate(["2026-10-25 10:00:00", value])
    ]
    (tmp_path / f"{DAY}.csv").write_text(HEADER + "".join(rows))
    read = read_lines(tmp_path, DAY, "Europe/London")
    assert read.lines["receipt_id"].to_pylist() == ["r0"]
    assert read.quarantined.select(["receipt_id", "line", "rule"]).to_pylist() == [
        {"receipt_id": "r1", "line": 3, "rule": "paid_at"}
    ]


@pytest.mark.parametrize(
    ("written", "wall", "utc"),
    [
        ("2026-10-25 12:00:00 UTC", dt.datetime(2026, 10, 25, 12), dt.datetime(2026, 10, 25, 12)),
        ("2026-07-01 12:00:00 UTC", dt.datetime(2026, 7, 1, 13), dt.datetime(2026, 7, 1, 12)),
        (
            "2026-07-01 08:00:00 America/New_York",
            dt.datetime(2026, 7, 1, 13),
            dt.datetime(2026, 7, 1, 12),
        ),
    ],
)
def test_a_time_with_a_zone_name_keeps_its_instant(
    tmp_path: Path, written: str, wall: dt.datetime, utc: dt.datetime
) -> None:
    day = wall.date()
    (tmp_path / f"{day}.csv").write_text(HEADER + f"r1,S1,R1,C1,{written},BEE000,1,4.50\n")
    lines = read_transactions(tmp_path, day, "Europe/London").to_pydict()
    assert (lines["paid_at"], lines["paid_at_utc"]) == ([wall], [utc])


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
        ('r9,S1,R1,"C1,2026-10-25 10:00:00,BEE000,1,4.50\n', "quoted field that does not parse"),
    ],
)
def test_a_line_whose_fields_do_not_parse_quarantines_its_receipt(
    tmp_path: Path, bad: str, message: str
) -> None:
    _big_csv(tmp_path, bad)
    read = read_lines(tmp_path, DAY, "Europe/London")
    (row,) = read.quarantined.to_pylist()
    assert (row["receipt_id"], row["line"], row["rule"]) == ("r9", 40_000, "fields_do_not_parse")
    assert row["detail"].startswith("line 40,000 ") and re.search(message, row["detail"])
    assert row["raw_line"] == bad.rstrip("\n").replace("\udcff", "\ufffd")
    lines = read.lines.to_pydict()
    # 49,999 lines: the broken one and r9's three others left out, every other line kept
    assert len(lines["receipt_id"]) == 49_995 and "r9" not in set(lines["receipt_id"])
    assert sum(lines["amount"]) == Decimal("4.50") * 49_995
    assert not read.over


def test_a_broken_line_that_names_no_receipt_is_listed_and_counts_for_no_store(
    tmp_path: Path,
) -> None:
    rows = [f"r{i},S1,R1,C1,2026-10-25 10:00:00,BEE000,1,4.50\n" for i in range(6)]
    rows[3] = '"\n'  # an unclosed quote, nothing else
    rows.insert(5, "\n")  # a blank line: not a line at all
    rows.append("r6,S1,R1,C1,2026-10-25 10:00:00,BEE000,nan,4.50\n")  # line 9, after it
    (tmp_path / f"{DAY}.csv").write_text(HEADER + "".join(rows))
    read = read_lines(tmp_path, DAY, "Europe/London")
    assert read.quarantined["line"].to_pylist() == [5, 9]
    read = dataclasses.replace(read, quarantined=read.quarantined.slice(0, 1))
    assert read.quarantined.select(
        ["store_id", "receipt_id", "line", "rule", "raw_line"]
    ).to_pylist() == [
        {
            "store_id": None,
            "receipt_id": "",
            "line": 5,
            "rule": "fields_do_not_parse",
            "raw_line": '"',
        }
    ]
    assert read.lines["receipt_id"].to_pylist() == ["r0", "r1", "r2", "r4", "r5"]
    assert not read.over


def test_a_file_mostly_of_broken_lines_is_one_sentence(tmp_path: Path) -> None:
    rows = ["r1,S1,R1,C1,2026-10-25 10:00:00,BEE000,1,4.50\n"] + ["r2;S1;R1\n"] * 3
    path = tmp_path / f"{DAY}.csv"
    path.write_text(HEADER + "".join(rows))
    with pytest.raises(
        InputError, match=r": 3 of its 4 lines cannot be read \(first: line 3 has 1"
    ):
        read_lines(tmp_path, DAY, "Europe/London")


@pytest.mark.parametrize(
    ("checks", "rule"),
    [(["id_seen", "maybe"], "age_check"), (["id_seen", "not_asked"], "age_check_outcomes")],
)
def test_a_bad_age_check_quarantines_its_receipt(
    tmp_path: Path, checks: list[str], rule: str
) -> None:
    header = HEADER.rstrip("\n") + ",age_check\n"
    rows = [f"r{i},S1,R1,C1,2026-10-25 10:00:00,BEE000,1,4.50,id_seen\n" for i in range(5)]
    rows += [f"r9,S1,R1,C1,2026-10-25 10:00:0{i},BEE000,1,4.50,{c}\n" for i, c in enumerate(checks)]
    (tmp_path / f"{DAY}.csv").write_text(header + "".join(rows))
    read = read_lines(tmp_path, DAY, "Europe/London")
    listed = read.quarantined.select(["receipt_id", "line", "rule"]).to_pylist()
    assert listed == [{"receipt_id": "r9", "line": 8 if rule == "age_check" else 7, "rule": rule}]
    assert read.lines["receipt_id"].to_pylist() == [f"r{i}" for i in range(5)]


@pytest.mark.parametrize(
    ("bad", "rule", "says"),
    [
        (
            "r13332,S1,R2,C1,2026-10-25 10:00:00,BEE000,1,4.50",
            "register",
            "line 40,000: receipt 'r13332' is at register 'R2', its first line (line 39,996)",
        ),
        (
            "r13332,S2,R1,C1,2026-10-25 10:00:00,BEE000,1,4.50",
            "store",
            "receipt 'r13332' is at store 'S2', its first line (line 39,996) elsewhere",
        ),
        (
            "x,S1,R1,C1,2026-10-26 00:00:30,BEE000,1,4.50",
            "line_day",
            "receipt 'x' has a line paid at 2026-10-26 00:00:30, neither on 2026-10-25 nor",
        ),
        (
            "x,S1,R1,C1,2026-10-25T23:30:00-01:00,BEE000,1,4.50",  # 00:30 on the 26th in London
            "line_day",
            "receipt 'x' has a line paid at 2026-10-26 00:30:00",
        ),
        (
            "r13332,S1,R1,C1,2026-10-23 10:00:00,BEE000,1,4.50",
            "line_day",
            "a line paid at 2026-10-23 10:00:00, neither on 2026-10-25 nor",
        ),
        ("x,S1,R1,C1,2026-10-25 10:00:00,BEE000,inf,4.50", "quantity_not_finite", "not a finite"),
        ("x,S1,R1,C1,2026-10-25 10:00:00,BEE000,nan,4.50", "quantity_not_finite", "not a finite"),
        ("x,S1,R1,C1,2026-10-25 10:00:00,BEE000,1e9,4.50", "quantity_too_large", "1,000,000,000"),
        ("x,S1,R1,C1,2026-10-25 10:00:00,BEE000,0.0004,4.50", "quantity_scale", "finer than"),
        ("x,S1,R1,C1,2026-10-25 10:00:00,BEE000,two,4.50", "quantity", "not a number"),
        ("x,S1,R1,C1,2026-10-25 10:00:00,BEE000,1,1e20", "amount", "past DECIMAL(18, 2)"),
        ("x,S1,R1,C1,2026-10-25 10:00:00,BEE000,1,", "amount", "empty"),
        ("x,S1,R1,,2026-10-25 10:00:00,BEE000,1,4.50", "cashier_id", "has no cashier_id"),
    ],
)
def test_a_line_against_the_rules_quarantines_its_receipt_and_the_rest_is_read(
    tmp_path: Path, bad: str, rule: str, says: str
) -> None:
    _big_csv(tmp_path, bad + "\n")
    receipt = bad.split(",")[0]
    read = read_lines(tmp_path, DAY, "Europe/London")
    assert read.quarantined.to_pylist() == [
        {
            "store_id": "S1",
            "receipt_id": receipt,
            "file": f"{DAY}.csv",
            "line": 40_000,
            "rule": rule,
            "detail": read.quarantined["detail"][0].as_py(),
            "raw_line": bad,
        }
    ]
    assert says in read.quarantined["detail"][0].as_py()
    kept = read.lines["receipt_id"].to_pylist()
    assert receipt not in kept
    # 49,998 lines after the header, three to a receipt; r13332 had 3 lines, x was one line
    assert len(kept) == 49_998 if receipt == "x" else 49_999 - 3
    assert read.over == []


@pytest.mark.parametrize(
    ("good", "kind", "units", "operator"),
    [
        ("x,S1,R1,C1,2026-10-25 10:00:00,COUPON,1,-1.00\n", "adjustment", 0, None),
        ("x,S1,R1,C1,2026-10-25 10:00:00,BEE000,-1,4.50\n", "adjustment", 0, None),
        ("x,S1,R1,C1,2026-10-25 10:00:00,BAG,0,0\n", "adjustment", 0, None),
        ("x,S1,R1,C1,2026-10-25 10:00:00,BEE000,-1,-4.50\n", "return", -1, None),
        ("r13332,S1,R1,SUP,2026-10-25 10:00:00,BEE000,1,4.50\n", "sale", 1, "SUP"),
    ],
)
def test_adjustments_and_overrides_are_kept(
    tmp_path: Path, good: str, kind: str, units: int, operator: str | None
) -> None:
    _big_csv(tmp_path, good, lines=40_100)
    read = read_lines(tmp_path, DAY, "Europe/London")
    assert read.quarantined.num_rows == 0
    row = read.lines.slice(39_998, 1).to_pylist()[0]  # line 40,000 of the file
    assert (row["line_kind"], row["quantity"], row["operator_id"]) == (kind, units, operator)
    assert row["cashier_id"] == "C1"  # the receipt's: 2 of r13332's 3 lines are C1's


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
    quarantined = read_lines(tmp_path, DAY, "Europe/London").quarantined.to_pylist()
    assert [(q["line"], q["rule"]) for q in quarantined] == [(4, "register")]
    assert quarantined[0]["detail"].startswith("row 4: receipt 'r2' is at register 'R9'")
    assert quarantined[0]["detail"].endswith(
        "its first line (row 3) elsewhere; a receipt is rung up at one register under the "
        "receipt key."
    )


# A till's line as written: receipt, store, register, cashier, paid_at, sku, quantity, amount.
Till = list[tuple[str, str, str, str, str, str, str, str]]
KINDS = ("sale", "return", "discount", "info", "override", "weighed")
BREAKS = ("nan", "two", "scale", "huge_amount", "long_ago", "other_store", "no_amount")


@st.composite
def _tills(draw: st.DrawFn) -> tuple[Till, str]:
    """A day's lines with every line kind, receipts numbered per chain, store or register, and
    perhaps a few broken lines; returns the lines and the numbering."""
    numbering = draw(st.sampled_from(list(KEY_NAMES)))
    counters: dict[tuple[str, ...], int] = {}
    lines: Till = []
    for _ in range(draw(st.integers(1, 10))):
        store, register = draw(st.sampled_from("AB")), draw(st.sampled_from("12"))
        scope = {"chain": (), "store": (store,), "register": (store, register)}[numbering]
        counters[scope] = counters.get(scope, 0) + 1
        number = f"{counters[scope]:04d}"
        cashier = f"C{store}{register}"
        paid = dt.datetime.combine(DAY, dt.time()) + dt.timedelta(
            seconds=draw(st.integers(0, 86_399))
        )
        for kind in draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=4)):
            time = (paid - dt.timedelta(seconds=draw(st.integers(0, 600)))).isoformat(sep=" ")
            line = {
                "sale": (cashier, "BEE000", "2", "9.00"),
                "weighed": (cashier, "APP000", "0.125", "0.41"),
                "return": (cashier, "BEE000", "-1", "-4.50"),
                "discount": (cashier, "COUPON", "1", "-0.50"),
                "info": (cashier, "BAG", "0", "0"),
                "override": ("SUP", "BEE000", "1", "4.50"),
            }[kind]
            lines.append((number, store, register, line[0], time, *line[1:]))
    lines = list(draw(st.permutations(lines)))
    for at, how in draw(
        st.lists(st.tuples(st.integers(0, len(lines) - 1), st.sampled_from(BREAKS)), max_size=2)
    ):
        number, store, register, cashier, time, sku, quantity, amount = lines[at]
        if how == "nan":
            quantity = "nan"
        elif how == "two":
            quantity = "two"
        elif how == "scale":
            quantity = "0.0004"
        elif how == "huge_amount":
            amount = "1e20"
        elif how == "no_amount":
            amount = ""
        elif how == "long_ago":
            time = f"{DAY - dt.timedelta(days=2)} 12:00:00"
        else:
            store = "Z"
        lines[at] = (number, store, register, cashier, time, sku, quantity, amount)
    return lines, numbering


def _oracle(lines: Till, numbering: str) -> dict[str, object]:
    """The rules written plainly, line by line: kept receipts, quarantined ones, revenue, units
    and each kept receipt's cashier."""
    width = {"chain": 1, "store": 2, "register": 3}[numbering]
    receipts: dict[str, list[tuple[int, tuple]]] = {}
    for row, line in enumerate(lines):
        number, store, register = line[:3]
        key = "/".join([*[store, register][: width - 1], number])
        receipts.setdefault(key, []).append((row, line))

    def broken(line: tuple) -> bool:
        try:
            quantity, amount = float(line[6]), Decimal(line[7])
        except (ValueError, ArithmeticError):
            return True
        day = dt.datetime.fromisoformat(line[4]).date()
        return (
            not math.isfinite(quantity)
            or quantity != round(quantity, 3)
            or abs(amount) >= Decimal("1e16")
            or day not in (DAY, DAY - dt.timedelta(days=1))
        )

    kept, quarantined = {}, set()
    for key, rows in receipts.items():
        places = {(line[1], line[2]) for _, line in rows}
        if (
            any(broken(line) for _, line in rows)
            or len(places) > 1
            or max(dt.datetime.fromisoformat(line[4]) for _, line in rows).date() != DAY
        ):
            quarantined.add(key)
        else:
            kept[key] = [line for _, line in rows]
    revenue = sum((Decimal(line[7]) for rows in kept.values() for line in rows), Decimal(0))
    units = sum(
        (
            Decimal(line[6])
            for rows in kept.values()
            for line in rows
            if float(line[6]) * float(line[7]) >= 0 and float(line[6]) != 0
        ),
        Decimal(0),
    )
    cashiers = {}
    for key, rows in kept.items():
        who = [line[3] for line in rows]
        cashiers[key] = max(who, key=lambda c: (who.count(c), -who.index(c)))
    return {"quarantined": quarantined, "revenue": revenue, "units": units, "cashiers": cashiers}


@settings(max_examples=150, deadline=None)
@given(till=_tills())
def test_tills_of_every_line_kind_and_numbering_against_the_rules_written_plainly(
    till: tuple[Till, str],
) -> None:
    lines, numbering = till
    expected = _oracle(lines, numbering)
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, f"{DAY}.csv").write_text(
            HEADER + "".join(",".join(line) + "\n" for line in lines)
        )
        fmt = TransactionsFormat(receipt_key=KEY_NAMES[numbering])
        if expected["quarantined"] and not expected["cashiers"]:  # nothing left: refused
            with pytest.raises(InputError, match=r"no receipt is left|none is left"):
                read_lines(Path(folder), DAY, "Europe/London", fmt)
            return
        read = read_lines(Path(folder), DAY, "Europe/London", fmt)
    kept = read.lines.to_pydict()
    assert sum(kept["amount"], Decimal(0)) == expected["revenue"]
    assert sum(kept["quantity"], Decimal(0)) == expected["units"]
    assert dict(zip(kept["receipt_id"], kept["cashier_id"], strict=True)) == expected["cashiers"]
    assert set(read.quarantined["receipt_id"].to_pylist()) == expected["quarantined"]
    assert read.key == KEY_NAMES[numbering]


@pytest.mark.parametrize(
    ("numbering", "key"),
    [
        ("chain", ("receipt_id",)),
        ("store", ("store_id", "receipt_id")),
        ("register", ("store_id", "register_id", "receipt_id")),
    ],
)
def test_the_receipt_key_is_found_without_a_setting(
    tmp_path: Path, numbering: str, key: tuple[str, ...]
) -> None:
    rows, counters = [], {}
    for store in ("S1", "S2", "S3"):
        for register in ("R1", "R2"):
            for _ in range(15):
                scope = {"chain": (), "store": (store,), "register": (store, register)}[numbering]
                counters[scope] = counters.get(scope, 0) + 1
                number = f"{counters[scope]:04d}"
                rows += [f"{number},{store},{register},C1,2026-10-25 10:00:00,BEE000,1,4.50\n"] * 2
    (tmp_path / f"{DAY}.csv").write_text(HEADER + "".join(rows))
    read = read_lines(tmp_path, DAY, "Europe/London")
    assert read.key == key
    assert read.quarantined.num_rows == 0
    assert len(set(read.lines["receipt_id"].to_pylist())) == 90  # each receipt counted once
    first = {"receipt_id": "0001", "store_id": "S1", "register_id": "R1"}
    assert read.lines["receipt_id"][0].as_py() == "/".join(first[column] for column in key)


def test_a_few_receipts_at_two_stores_are_quarantined_not_taken_for_a_key(tmp_path: Path) -> None:
    rows = [f"r{i},S{i % 3},R1,C1,2026-10-25 10:00:00,BEE000,1,4.50\n" for i in range(600)]
    rows += [f"r{i},S9,R1,C1,2026-10-25 10:00:00,BEE000,1,4.50\n" for i in range(9)]
    (tmp_path / f"{DAY}.csv").write_text(HEADER + "".join(rows))
    read = read_lines(tmp_path, DAY, "Europe/London")
    assert read.key == ("receipt_id",)
    assert read.quarantined["receipt_id"].to_pylist() == [f"r{i}" for i in range(9)]
    assert set(read.quarantined["rule"].to_pylist()) == {"store"}
    # 9 of 600 ids at two stores: fewer than 10, so no key; 3 of each store's 200 receipts
    # quarantined: at least 3 and past 1% -> over the limit
    assert [line.split(":")[0] for line in read.over] == ["store 'S0'", "store 'S1'", "store 'S2'"]
    with pytest.raises(QuarantineRefused, match="Quarantined too many receipts"):
        read.gate(accept=False)
    assert read.gate(accept=True) == "accepted"


def test_a_manifests_receipt_ids_are_read_under_the_days_key(tmp_path: Path) -> None:
    table = pd.DataFrame(
        {
            "photo": ["a.jpg", "b.jpg"],
            "store_id": ["S1", "S2"],
            "register_id": ["R1", "R2"],
            "captured_at": pd.to_datetime(["2026-10-25 10:00", "2026-10-25 10:01"]),
            "receipt_id": pd.array(["0001", None], dtype="string"),
        }
    )
    captures = Captures(tmp_path, table, 0, "manifest")
    assert keyed_captures(captures, KEY_NAMES["chain"]) is captures
    by_store = keyed_captures(captures, KEY_NAMES["store"]).table["receipt_id"]
    assert by_store.tolist() == ["S1/0001", pd.NA]
    by_register = keyed_captures(captures, KEY_NAMES["register"]).table["receipt_id"]
    assert by_register.tolist() == ["S1/R1/0001", pd.NA]


BREAKS = ("truncated", "extra field", "unclosed quote", "bad age_check")


@st.composite
def _till_with_one_bad_line(draw: st.DrawFn) -> tuple[list[list[str]], int, str, int]:
    """Receipts of 1-3 lines (amounts in cents, 3 stores, one age check each), the index of the
    line to break, how to break it, and the field a truncation or a quote starts at."""
    lines: list[list[str]] = []
    for receipt in range(draw(st.integers(3, 25))):
        check = draw(st.sampled_from(["", "id_seen", "id_refused", "not_asked"]))
        for item in range(draw(st.integers(1, 3))):
            cents = draw(st.integers(-2_000, 50_000))
            quantity = "-1" if cents < 0 else "1"
            lines.append(
                [
                    f"r{receipt}",
                    f"S{receipt % 3}",
                    "R1",
                    "C1",
                    f"2026-10-25 10:{receipt % 60:02d}:{item:02d}",
                    "BEE000",
                    quantity,
                    f"{Decimal(cents) / 100:.2f}",
                    check,
                ]
            )
    victim = draw(st.integers(0, len(lines) - 1))
    return lines, victim, draw(st.sampled_from(BREAKS)), draw(st.integers(0, 7))


@settings(max_examples=40, deadline=None)
@given(till=_till_with_one_bad_line())
def test_one_bad_line_among_good_ones_quarantines_exactly_its_receipt(till) -> None:
    lines, victim, how, at = till
    text = [",".join(line) for line in lines]
    bad = lines[victim]
    if how == "truncated":  # the first `at` fields (0: a stub of empty fields, no receipt)
        text[victim] = ",".join(bad[:at]) if at else ",,"
        named = at >= 1
    elif how == "extra field":
        text[victim] += ",extra"
        named = True
    elif how == "unclosed quote":  # a quote opened at field `at`, never closed
        text[victim] = ",".join([*bad[:at], '"' + bad[at], *bad[at + 1 :]])
        named = at >= 1
    else:
        text[victim] = ",".join([*bad[:-1], "maybe"])
        named = True
    header = HEADER.rstrip("\n") + ",age_check\n"
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / f"{DAY}.csv").write_text(header + "\n".join(text) + "\n")
        read = read_lines(Path(folder), DAY, "Europe/London")
    listed = read.quarantined.to_pylist()
    assert [(row["line"], row["receipt_id"]) for row in listed] == [
        (victim + 2, bad[0] if named else "")
    ]
    assert listed[0]["rule"] == ("age_check" if how == "bad age_check" else "fields_do_not_parse")
    assert listed[0]["raw_line"] == text[victim]
    gone = bad[0] if named else None  # a line naming no receipt takes only itself away
    kept = [line for i, line in enumerate(lines) if i != victim and line[0] != gone]
    assert sorted(read.lines["receipt_id"].to_pylist()) == sorted(line[0] for line in kept)
    assert sum(read.lines["amount"].to_pylist(), Decimal(0)) == sum(
        (Decimal(line[7]) for line in kept), Decimal(0)
    )
    assert not read.over


def test_lines_after_a_line_of_bad_bytes_keep_their_line_numbers(tmp_path: Path) -> None:
    rows = [f"r{i},S1,R1,C1,2026-10-25 10:00:00,BEE000,1,4.50\n" for i in range(9)]
    rows[1] = "r1,S1,R1,C\udcff1,2026-10-25 10:00:00,BEE000,1,4.50\n"  # line 3
    rows[2] = "r2,S1,R1,C\udcfe1,2026-10-25 10:00:00,BEE000,1,4.50\n"  # line 4, right after
    rows[4] = "r4,S1,R1,C1,2026-10-25 10:00:00,BEE000,nan,4.50\n"  # line 6
    rows[6] = "r6,S1,R1,C1,2026-10-25 10:00:00,BEE000,1,4.50,x\n"  # line 8
    path = tmp_path / f"{DAY}.csv"
    path.write_bytes((HEADER + "".join(rows)).encode("utf-8", "surrogateescape"))
    read = read_lines(tmp_path, DAY, "Europe/London")
    listed = read.quarantined.select(["receipt_id", "line", "rule"]).to_pylist()
    assert listed == [
        {"receipt_id": "r1", "line": 3, "rule": "fields_do_not_parse"},
        {"receipt_id": "r2", "line": 4, "rule": "fields_do_not_parse"},
        {"receipt_id": "r4", "line": 6, "rule": "quantity_not_finite"},
        {"receipt_id": "r6", "line": 8, "rule": "fields_do_not_parse"},
    ]
    assert read.lines["receipt_id"].to_pylist() == ["r0", "r3", "r5", "r7", "r8"]


def test_a_long_broken_line_is_listed_cut_to_1000_characters(tmp_path: Path) -> None:
    rows = [f"r{i},S1,R1,C1,2026-10-25 10:00:00,BEE000,1,4.50\n" for i in range(5)]
    rows[2] = "r2,S1,R1,C1,2026-10-25 10:00:00,BEE000,1,4.50," + "x" * 5_000 + "\n"
    (tmp_path / f"{DAY}.csv").write_text(HEADER + "".join(rows))
    (row,) = read_lines(tmp_path, DAY, "Europe/London").quarantined.to_pylist()
    assert row["receipt_id"] == "r2" and row["raw_line"] == rows[2][:1_000]


def _lines(n: int, store: str = "S1", first: int = 0) -> str:
    return "".join(
        f"r{i},{store},R1,C1,2026-10-25 12:{i % 60:02d}:00,{'BEE000' if i % 2 else 'BAK000'},1,"
        f"{1 + i % 7}.50\n"
        for i in range(first, first + n)
    )


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 40), st.booleans())
def test_an_export_written_twice_is_refused_and_tills_joined_are_read(n: int, joined: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{DAY}.csv"
        # Twice the same export (its header again in the middle), or two tills' exports joined.
        second = _lines(n, "S2", first=n) if joined else _lines(n)
        path.write_text(HEADER + _lines(n) + HEADER + second)
        if joined:
            lines = read_lines(Path(folder), DAY, "Europe/London")
            assert lines.lines.num_rows == 2 * n  # each till's lines once, the header quarantined
            assert lines.quarantined.num_rows == 1
        else:
            with pytest.raises(InputError, match=rf"repeats its header on line {n + 2:,} and its "):
                read_lines(Path(folder), DAY, "Europe/London")


def test_one_line_more_after_the_header_is_not_an_export_written_twice(tmp_path: Path) -> None:
    (tmp_path / f"{DAY}.csv").write_text(
        HEADER + _lines(5) + HEADER + _lines(5) + _lines(1, first=9)
    )
    assert read_lines(tmp_path, DAY, "Europe/London").lines.num_rows == 11


def test_a_day_with_a_csv_and_a_parquet_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / f"{DAY}.csv").write_text(HEADER + _lines(2))
    pd.read_csv(tmp_path / f"{DAY}.csv").to_parquet(tmp_path / f"{DAY}.parquet")
    with pytest.raises(InputError, match=r"Two transactions files for 2026-10-25: .*parquet and"):
        read_lines(tmp_path, DAY, "Europe/London")


def test_a_sku_padded_to_a_fixed_width_is_the_catalogs_and_unlisted_skus_are_named(
    tmp_path: Path,
) -> None:
    from agebatch.inputs.transactions import read_catalog, unknown_skus

    rows = "p1,S1,R1,C1,2026-10-25 12:00:00, BEE000  ,1,4.50\n"  # a fixed-width till
    rows += "p2,S1,R1,C1,2026-10-25 12:01:00,bee000,1,4.50\n"  # another case
    rows += "p3,S1,R1,C1,2026-10-25 12:02:00,NEW1,2,3.00\n"  # not yet in the catalog
    (tmp_path / f"{DAY}.csv").write_text(HEADER + rows)
    catalog = tmp_path / "catalog.csv"
    catalog.write_text("sku,category,age_restricted\nBEE000 ,beer,true\nBAK000,bakery,false\n")
    lines = read_lines(tmp_path, DAY, "Europe/London").lines
    assert lines.column("sku").to_pylist() == ["BEE000", "bee000", "NEW1"]
    listed = read_catalog(catalog)
    assert listed.column("sku").to_pylist() == ["BEE000", "BAK000"]
    said = unknown_skus(lines, listed)
    assert said is not None and said.startswith("2 till line(s) of 2 sku(s) not in the catalog")
    assert "'bee000' (the catalog has 'BEE000')" in said and "'NEW1'" in said
    assert unknown_skus(lines.slice(0, 1), listed) is None
