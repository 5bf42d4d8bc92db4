"""Reading a day's transactions: times with and without UTC offsets, and bad values."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

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
