"""One photo, one shopper: the receipt-photo pairing at busy tills, drifting camera clocks,
UTC offsets and the daylight-saving nights, on generated days in a real DuckDB."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agebatch.config import default_age_bounds
from agebatch.duck import connect
from agebatch.transform.join import join_day
from tests.busy_till import (
    CATALOG,
    LINES_SCHEMA,
    STATUS_RANK,
    WINDOW_AFTER_S,
    WINDOW_BEFORE_S,
    BusyDay,
    burst_winner,
    busy_day,
)
from tests.conftest import DAY, captures_frame, compliance

LONDON = ZoneInfo("Europe/London")
NOON = dt.datetime.combine(DAY, dt.time(12, 0))


def run(
    lines: pa.Table, captures: pd.DataFrame, offsets: pa.Table | None = None
) -> dict[str, pa.Table]:
    """join_day on the inputs with the default window."""
    with connect() as con:
        return join_day(
            con,
            day=DAY,
            lines=lines,
            catalog=CATALOG,
            captures=captures,
            model_version="m1",
            age_bounds=default_age_bounds(),
            window_before_s=WINDOW_BEFORE_S,
            window_after_s=WINDOW_AFTER_S,
            clock_offsets=offsets,
            compliance=compliance(),
            min_cell_receipts=1,  # every cell published (k = 1)
        )


def outcome(tables: dict[str, pa.Table]) -> dict[str, tuple[str | None, str]]:
    """receipt_id -> (photo, status) as published."""
    ages = tables["receipt_ages"]
    return {
        r: (p, s)
        for r, p, s in zip(
            ages["receipt_id"].to_pylist(),
            ages["photo"].to_pylist(),
            ages["status"].to_pylist(),
            strict=True,
        )
    }


def clocks(tables: dict[str, pa.Table]) -> pd.DataFrame:
    """till_clocks indexed by (store_id, register_id)."""
    return tables["till_clocks"].to_pandas().set_index(["store_id", "register_id"])


def offsets_table(*rows: tuple[str, str | None, float]) -> pa.Table:
    """clock_offsets rows: (store_id, register_id or None for the whole store, offset_s)."""
    names = ["store_id", "register_id", "offset_s"]
    return pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)})


def assert_one_to_one(
    tables: dict[str, pa.Table],
    lines: pa.Table,
    captures: pd.DataFrame,
    offsets: dict[tuple[str, str], float] | None = None,
) -> None:
    """Every receipt once; no photo twice; a photo paired by time lies in its receipt's window
    (on the register's clock, offset taken off); revenue adds up to the day's sales."""
    ages = tables["receipt_ages"].to_pandas()
    receipt_ids = set(lines["receipt_id"].to_pylist())
    assert len(ages) == len(receipt_ids) and set(ages["receipt_id"]) == receipt_ids
    photos = ages["photo"].dropna()
    assert not photos.duplicated().any(), photos[photos.duplicated()].tolist()
    utc = _utc_registers(lines, captures)
    paid_at = lines.to_pandas().groupby("receipt_id")[["paid_at", "paid_at_utc"]].max()
    shots = captures.set_index("photo")
    for row in ages.dropna(subset=["photo"]).itertuples():
        shot = shots.loc[row.photo]
        if pd.notna(shot["receipt_id"]):  # named in the manifest: paired by name, not time
            assert shot["receipt_id"] == row.receipt_id
            continue
        register = (row.store_id, row.register_id)
        assert (shot["store_id"], shot["register_id"]) == register
        paid = paid_at.loc[row.receipt_id, "paid_at_utc" if register in utc else "paid_at"]
        taken = shot.get("captured_at_utc") if register in utc else shot["captured_at"]
        taken -= pd.Timedelta(seconds=(offsets or {}).get(register, 0.0))
        lag_s = (paid - taken).total_seconds()
        assert -WINDOW_AFTER_S <= lag_s <= WINDOW_BEFORE_S, (row.receipt_id, row.photo, lag_s)
    revenue = sum(tables["age_group_purchases"]["revenue"].to_pylist())
    sales = sum(Decimal(str(amount)) for amount in lines["amount"].to_pylist())
    assert revenue == sales  # exact: money is DECIMAL(18,2)


def _utc_registers(lines: pa.Table, captures: pd.DataFrame) -> set[tuple[str, str]]:
    frame = lines.select(["store_id", "register_id", "paid_at_utc"]).to_pandas()
    both = pd.concat(
        [
            frame.rename(columns={"paid_at_utc": "utc"}),
            captures.assign(utc=captures.get("captured_at_utc", pd.NaT))[
                ["store_id", "register_id", "utc"]
            ],
        ]
    )
    known = both.groupby(["store_id", "register_id"])["utc"].apply(lambda s: s.notna().all())
    return set(known[known].index)


def assert_day(day: BusyDay, tables: dict[str, pa.Table]) -> None:
    """Each receipt got exactly the photo and status the generator says it must."""
    got = outcome(tables)
    wrong = {r: (got[r], want) for r, want in day.expected.items() if got[r] != want}
    assert not wrong, f"{len(wrong)} receipts wrong, e.g. {list(wrong.items())[:3]}"


# -- busy tills -----------------------------------------------------------------------------


@pytest.mark.parametrize("missing", [0.0, 0.1, 0.33, 0.5])
def test_busy_till_each_receipt_gets_its_own_shoppers_photo(missing: float) -> None:
    day = busy_day(missing, seed=int(missing * 100))
    tables = run(day.lines, day.captures)
    assert_day(day, tables)
    assert_one_to_one(tables, day.lines, day.captures)
    statuses = pd.Series([s for _, s in outcome(tables).values()])
    assert (statuses == "no_photo").sum() == 2 * round(missing * 60)


def test_issue_11_every_third_shopper_missed_gets_no_photo_not_the_previous_one() -> None:
    """The day from the issue: a receipt every 50-70 s, every third shopper not photographed:
    the 20 missed shoppers are no_photo, and no photo serves two receipts."""
    day = busy_day(1 / 3, receipts=60, gap_s=(50, 70), registers=(("S1", "R1"),), named=0.0)
    tables = run(day.lines, day.captures)
    assert_day(day, tables)
    missed = [r for r, (photo, _) in day.expected.items() if photo is None]
    assert len(missed) == 20
    assert {outcome(tables)[r] for r in missed} == {(None, "no_photo")}


def test_the_nearer_payment_wins_and_the_other_receipt_takes_its_next_nearest_photo() -> None:
    captures = captures_frame(
        ("early.jpg", "S1", "R1", NOON - dt.timedelta(seconds=100), 40.0, "ok"),
        ("shared.jpg", "S1", "R1", NOON - dt.timedelta(seconds=10), 30.0, "ok"),
    )
    # r1 at NOON-8 is 2 s from shared.jpg; r2 at NOON is 10 s from it and 100 s from early.jpg.
    lines = _lines(("r1", "R1", NOON - dt.timedelta(seconds=8)), ("r2", "R1", NOON))
    tables = run(lines, captures)
    assert outcome(tables) == {"r1": ("shared.jpg", "matched"), "r2": ("early.jpg", "matched")}


def test_pairs_are_taken_nearest_first_across_the_whole_register() -> None:
    """r3 (t-1), r1 (t), a (t+4), r2 (t+7), b (t+9). Nearest first takes (r2, b) at 2 s,
    then (r1, a) at 4 s; r3, paid 5 s before a, is left without. Taking receipts in time
    order, each with its nearest free photo, would give a to r3 and leave r1 without."""
    t = NOON
    captures = captures_frame(
        ("a.jpg", "S1", "R1", t + dt.timedelta(seconds=4), 30.0, "ok"),
        ("b.jpg", "S1", "R1", t + dt.timedelta(seconds=9), 40.0, "ok"),
    )
    lines = _lines(
        ("r1", "R1", t),
        ("r2", "R1", t + dt.timedelta(seconds=7)),
        ("r3", "R1", t - dt.timedelta(seconds=1)),
    )
    got = outcome(run(lines, captures))
    assert got == {"r1": ("a.jpg", "matched"), "r2": ("b.jpg", "matched"), "r3": (None, "no_photo")}


@pytest.mark.parametrize(
    ("paid_a", "paid_b", "winner"),
    [
        (3, -3, "ra"),  # equal distance: the photo taken before payment beats one after it
        (-3, 3, "rb"),
        (3, 3, "ra"),  # same distance, same side: the smaller receipt_id
    ],
)
def test_ties_break_deterministically(paid_a: int, paid_b: int, winner: str) -> None:
    captures = captures_frame(("p.jpg", "S1", "R1", NOON, 30.0, "ok"))
    lines = _lines(
        ("ra", "R1", NOON + dt.timedelta(seconds=paid_a)),
        ("rb", "R1", NOON + dt.timedelta(seconds=paid_b)),
    )
    got = outcome(run(lines, captures))
    assert got[winner] == ("p.jpg", "matched")
    assert got[({"ra", "rb"} - {winner}).pop()] == (None, "no_photo")


def test_two_photos_at_equal_distance_the_one_before_payment_wins() -> None:
    captures = captures_frame(
        ("after.jpg", "S1", "R1", NOON + dt.timedelta(seconds=3), 30.0, "ok"),
        ("before.jpg", "S1", "R1", NOON - dt.timedelta(seconds=3), 40.0, "ok"),
    )
    assert outcome(run(_lines(("r1", "R1", NOON)), captures))["r1"] == ("before.jpg", "matched")


def test_a_receipt_named_in_the_manifest_leaves_the_pool() -> None:
    """r1 has its named photo, so the free photo 2 s before r1 goes to r2, 32 s from it."""
    captures = captures_frame(
        ("named.jpg", "S1", "R1", NOON - dt.timedelta(minutes=30), 50.0, "ok", "r1"),
        ("free.jpg", "S1", "R1", NOON - dt.timedelta(seconds=2), 30.0, "ok"),
    )
    lines = _lines(("r1", "R1", NOON), ("r2", "R1", NOON + dt.timedelta(seconds=30)))
    got = outcome(run(lines, captures))
    assert got == {"r1": ("named.jpg", "matched"), "r2": ("free.jpg", "matched")}


def test_a_burst_with_a_named_photo_serves_only_that_receipt() -> None:
    at = NOON - dt.timedelta(seconds=4)
    captures = captures_frame(
        ("b.jpg", "S1", "R1", at, 30.0, "ok", "r1"),
        ("b_1.jpg", "S1", "R1", at, 31.0, "ok"),  # same shopper, same second, no name
    )
    lines = _lines(("r1", "R1", NOON), ("r2", "R1", NOON + dt.timedelta(seconds=20)))
    assert outcome(run(lines, captures)) == {
        "r1": ("b.jpg", "matched"),
        "r2": (None, "no_photo"),
    }


def test_a_burst_in_one_second_serves_one_receipt() -> None:
    at = NOON - dt.timedelta(seconds=4)
    captures = captures_frame(
        ("b.jpg", "S1", "R1", at, 30.0, "ok"),
        ("b_1.jpg", "S1", "R1", at + dt.timedelta(milliseconds=400), None, "unreadable"),
    )
    lines = _lines(("r1", "R1", NOON), ("r2", "R1", NOON + dt.timedelta(seconds=20)))
    assert outcome(run(lines, captures)) == {
        "r1": ("b.jpg", "matched"),
        "r2": (None, "no_photo"),
    }


# -- random small days ----------------------------------------------------------------------


@st.composite
def small_days(draw: st.DrawFn) -> tuple[pa.Table, pd.DataFrame]:
    """Up to 12 receipts and 14 photos at three registers (two in store S1, one in S2 with
    the same register_id as one of them) within 4 minutes, in whole seconds, so that ties,
    bursts and equal payment times are frequent; some photos are named in a manifest."""
    registers = [("S1", "R1"), ("S1", "R1"), ("S1", "R2"), ("S2", "R1")]  # mostly S1/R1
    receipts = draw(
        st.lists(
            st.tuples(
                st.sampled_from(registers),
                st.integers(0, 240),
                st.lists(st.integers(-500, 5000), min_size=1, max_size=3),
            ),
            min_size=1,
            max_size=12,
        )
    )
    rows = [
        {
            "receipt_id": f"r{i}",
            "store_id": store,
            "register_id": register,
            "cashier_id": "C1",
            "paid_at": NOON + dt.timedelta(seconds=s),
            "paid_at_utc": None,
            "sku": "SKU1",
            "quantity": 1.0,
            "amount": cents / 100,
        }
        for i, ((store, register), s, amounts) in enumerate(receipts)
        for cents in amounts
    ]
    shots = draw(
        st.lists(
            st.tuples(
                st.sampled_from(registers),
                st.integers(-130, 250),
                st.sampled_from(sorted(STATUS_RANK)),
                st.one_of(st.none(), st.integers(0, 12)),
            ),
            min_size=2,
            max_size=14,
        )
    )
    captures = captures_frame(
        *(
            (
                f"p{i:02d}.jpg",
                store,
                register,
                NOON + dt.timedelta(seconds=s),
                40.0 if status == "ok" else None,
                status,
                None if named is None else f"r{named}",
            )
            for i, ((store, register), s, status, named) in enumerate(shots)
        )
    )
    return pa.Table.from_pylist(rows, schema=LINES_SCHEMA), captures


@settings(max_examples=60, deadline=None, database=None)
@given(small_days())
def test_random_days_pair_one_to_one_nearest_first(day: tuple[pa.Table, pd.DataFrame]) -> None:
    """The invariants, and the pairing is the nearest-first one: every pool pair left out
    touches a receipt or photo that was paired with a nearer (or tie-winning) partner, and no
    receipt and photo that could pair are both left free."""
    lines, captures = day
    tables = run(lines, captures)
    assert_one_to_one(tables, lines, captures)
    got = {r: p for r, (p, _) in outcome(tables).items()}
    paired_photo = {p: r for r, p in got.items() if p is not None}
    receipts = (
        lines.to_pandas()
        .groupby("receipt_id")
        .agg(
            register=("register_id", "first"), store=("store_id", "first"), paid=("paid_at", "max")
        )
    )
    named = captures.dropna(subset=["receipt_id"])
    named = named[named["receipt_id"].isin(receipts.index)]
    for receipt_id, photos in named.groupby("receipt_id"):
        order = ["ok", "captured_at", "photo"]
        best = photos.assign(ok=photos["status"] == "ok").sort_values(order, ascending=False)
        assert got[receipt_id] == best["photo"].iloc[0]
    pool = _pool_shots(captures)
    free_receipts = receipts.drop(index=named["receipt_id"].unique())

    def rank(receipt_id: str, photo: str) -> tuple:
        paid, taken = receipts.loc[receipt_id, "paid"], pool.loc[photo, "captured_at"]
        return (abs((paid - taken).total_seconds()), taken > paid, receipt_id, photo)

    for receipt_id, receipt in free_receipts.iterrows():
        for photo, shot in pool.iterrows():
            lag_s = (receipt["paid"] - shot["captured_at"]).total_seconds()
            same = (shot["store_id"], shot["register_id"]) == (
                receipt["store"],
                receipt["register"],
            )
            if not same or not -WINDOW_AFTER_S <= lag_s <= WINDOW_BEFORE_S:
                continue
            if got[receipt_id] == photo:
                continue
            beaten = [
                rank(receipt_id, got[receipt_id]) if got[receipt_id] in pool.index else None,
                rank(paired_photo[photo], photo) if photo in paired_photo else None,
            ]
            assert any(b is not None and b < rank(receipt_id, photo) for b in beaten), (
                receipt_id,
                photo,
            )


def _pool_shots(captures: pd.DataFrame) -> pd.DataFrame:
    """Unnamed photos that count: one per burst (one second, one register), none from a burst
    with a named photo."""
    keep = []
    seconds = captures["captured_at"].dt.floor("s")
    for _, burst in captures.groupby([captures["store_id"], captures["register_id"], seconds]):
        if burst["receipt_id"].notna().any():
            continue
        winner = burst_winner([tuple(row) for row in burst.itertuples(index=False)])
        keep.append(winner[0])
    return captures.set_index("photo").loc[keep]


# -- camera clocks --------------------------------------------------------------------------

BUSY, QUIET = (30, 90), (180, 600)


@pytest.mark.parametrize("gap_s", [BUSY, QUIET], ids=["busy", "quiet"])
@pytest.mark.parametrize("ahead_s", [90, -90, 0], ids=["fast", "slow", "right"])
def test_till_clocks_finds_a_camera_90_s_off(gap_s: tuple[int, int], ahead_s: int) -> None:
    day = busy_day(0.33, receipts=80, gap_s=gap_s, seed=7, camera_ahead_s={("S1", "R2"): ahead_s})
    table = clocks(run(day.lines, day.captures))
    right, drifted = table.loc[("S1", "R1")], table.loc[("S1", "R2")]
    assert not right["drift_suspected"]
    assert 1 <= right["median_lag_s"] <= 20  # photographed 1-20 s before paying
    assert drifted["drift_suspected"] == (ahead_s != 0)
    assert drifted["median_lag_s"] == pytest.approx(10.5 - ahead_s, abs=6)
    assert drifted["threshold_s"] == 62.5
    assert (drifted["receipts"], drifted["captures"], drifted["lagged"]) == (80, 54, 54)


def test_a_drifting_camera_is_named_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    day = busy_day(0.1, seed=4, camera_ahead_s={("S1", "R2"): 90.0})
    with caplog.at_level("WARNING", logger="agebatch.transform.join"), connect() as con:
        tables = join_day(
            con,
            day=DAY,
            lines=day.lines,
            catalog=CATALOG,
            captures=day.captures,
            model_version="m1",
            age_bounds=default_age_bounds(),
            window_before_s=WINDOW_BEFORE_S,
            window_after_s=WINDOW_AFTER_S,
            compliance=compliance(),
            min_cell_receipts=1,  # every cell published (k = 1)
        )
    assert tables["till_clocks"].num_rows == 2  # one row per register, published with the day
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "store S1, register R2" in warnings[0]
    assert "after payment" in warnings[0]


def test_till_clocks_keys_and_values() -> None:
    """One row per register seen in receipts or photos; counts never null; day is the run's."""
    day = busy_day(0.33, seed=9)
    lines = pa.concat_tables([day.lines, _lines(("lonely", "R9", NOON))])
    captures = pd.concat(
        [day.captures, captures_frame(("S1/R7/x.jpg", "S1", "R7", NOON, 30.0, "ok"))],
        ignore_index=True,
    )
    table = run(lines, captures)["till_clocks"].to_pandas()
    assert not table.duplicated(["store_id", "register_id"]).any()
    assert list(zip(table["store_id"], table["register_id"], strict=True)) == [
        ("S1", "R1"),
        ("S1", "R2"),
        ("S1", "R7"),
        ("S1", "R9"),
    ]
    counts = ["day", "clock", "offset_s", "receipts", "captures", "matched", "lagged"]
    assert table[[*counts, "threshold_s", "drift_suspected"]].notna().all().all()
    assert set(table["day"]) == {DAY}
    by_register = table.set_index("register_id")
    assert by_register.loc["R7", ["receipts", "captures", "lagged"]].tolist() == [0, 1, 0]
    assert by_register.loc["R9", ["receipts", "captures", "matched"]].tolist() == [1, 0, 0]
    assert pd.isna(by_register.loc["R9", "median_lag_s"])
    assert by_register.loc["R1", "matched"] == 40 and by_register.loc["R1", "lagged"] == 40


def test_a_clock_offset_makes_a_fast_camera_match_as_on_a_right_clock() -> None:
    day = busy_day(0.33, seed=3, camera_ahead_s={("S1", "R2"): 90.0})
    without = run(day.lines, day.captures)
    wrong = [r for r, want in day.expected.items() if outcome(without)[r] != want]
    assert len(wrong) > 30 and all(r.startswith("S1-R2") for r in wrong)

    offsets = offsets_table(("S1", "R2", 90.0))
    tables = run(day.lines, day.captures, offsets)
    assert_day(day, tables)
    assert_one_to_one(tables, day.lines, day.captures, {("S1", "R2"): 90.0})
    table = clocks(tables)
    assert table.loc[("S1", "R2"), "offset_s"] == 90.0
    assert not table["drift_suspected"].any()


@pytest.mark.parametrize("store_register", [None, ""])
def test_a_register_offset_beats_its_stores(store_register: str | None) -> None:
    """S1's cameras run 30 s fast, except R2's, 90 s: a store row and a register row."""
    ahead = {("S1", "R1"): 30.0, ("S1", "R2"): 90.0}
    day = busy_day(0.1, seed=5, camera_ahead_s=ahead)
    offsets = offsets_table(("S1", store_register, 30.0), ("S1", "R2", 90.0), ("S2", None, 500))
    tables = run(day.lines, day.captures, offsets)
    assert_day(day, tables)
    assert_one_to_one(tables, day.lines, day.captures, ahead)
    assert clocks(tables)["offset_s"].to_dict() == {("S1", "R1"): 30.0, ("S1", "R2"): 90.0}


# -- time zones and daylight saving ----------------------------------------------------------


def test_autumn_night_with_utc_offsets_pairs_exactly() -> None:
    """25 Oct 2026: 02:00 BST -> 01:00 GMT, the hour 01:00-01:59 is lived twice."""
    day = busy_day(
        0.33, receipts=180, start=dt.datetime(2026, 10, 24, 23, 30), zone=LONDON, utc=True
    )
    wall = day.lines["paid_at"].to_pandas()
    assert (wall.dt.hour == 1).sum() > (day.lines["paid_at_utc"].to_pandas().dt.hour == 1).sum()
    tables = run(day.lines, day.captures)
    assert_day(day, tables)
    assert_one_to_one(tables, day.lines, day.captures)
    assert set(clocks(tables)["clock"]) == {"utc"}


def test_autumn_night_without_offsets_never_shares_a_photo() -> None:
    """On the wall clock the two 01:00 hours interleave and cannot be told apart: receipts
    there may get the other hour's shopper, but no photo serves two receipts, and outside
    the repeated hour (and its window) every receipt gets its own shopper's photo."""
    day = busy_day(0.33, receipts=200, start=dt.datetime(2026, 10, 24, 23, 30), zone=LONDON)
    tables = run(day.lines, day.captures)
    assert_one_to_one(tables, day.lines, day.captures)
    assert set(clocks(tables)["clock"]) == {"local"}
    got = outcome(tables)
    paid = dict(
        zip(day.lines["receipt_id"].to_pylist(), day.lines["paid_at"].to_pylist(), strict=True)
    )
    clear = [r for r in day.expected if not dt.time(0, 57) <= paid[r].time() < dt.time(2, 3)]
    assert len(clear) > 100
    assert {r: got[r] for r in clear} == {r: day.expected[r] for r in clear}


@pytest.mark.parametrize("utc", [True, False], ids=["utc", "wall-clock"])
def test_spring_night(utc: bool) -> None:
    """29 Mar 2026: 01:00 GMT -> 02:00 BST. With offsets every receipt is paired exactly; on
    the wall clock a shopper photographed before 01:00 who paid after the jump is an hour
    apart, so that receipt alone is no_photo. R3's one shopper is photographed 4 s before
    the jump and pays 8 s after it."""
    night = busy_day(0.1, receipts=120, start=dt.datetime(2026, 3, 29, 0, 0), zone=LONDON, utc=utc)
    jump = dt.datetime(2026, 3, 29, 1, 0)  # UTC
    paid_utc, taken_utc = jump + dt.timedelta(seconds=8), jump - dt.timedelta(seconds=4)
    paid, taken = paid_utc + dt.timedelta(hours=1), taken_utc  # BST after, GMT before
    lines = pa.concat_tables(
        [night.lines, _lines(("across", "R3", paid, paid_utc if utc else None))]
    )
    extra = captures_frame(("S1/R3/across.jpg", "S1", "R3", taken, 30.0, "ok"))
    extra["captured_at_utc"] = pd.Series([taken_utc if utc else None], dtype="datetime64[us]")
    captures = pd.concat([night.captures, extra], ignore_index=True)
    tables = run(lines, captures)
    assert_one_to_one(tables, lines, captures)

    expected = night.expected | {"across": ("S1/R3/across.jpg", "matched")}
    if not utc:
        paid_at = dict(
            zip(lines["receipt_id"].to_pylist(), lines["paid_at"].to_pylist(), strict=True)
        )
        shots = captures.set_index("photo")
        across = [  # a photo named in the manifest pairs by name, whatever its time
            r
            for r, (photo, _) in expected.items()
            if photo is not None
            and pd.isna(shots.loc[photo, "receipt_id"])
            and shots.loc[photo, "captured_at"].hour == 0
            and paid_at[r].hour == 2
        ]
        assert "across" in across
        expected |= {r: (None, "no_photo") for r in across}
    assert outcome(tables) == expected


def test_spring_gap_times_are_taken_as_written() -> None:
    """01:30 on 29 Mar 2026 never happens in London; without offsets it is matched as written."""
    at = dt.datetime(2026, 3, 29, 1, 30)
    captures = captures_frame(("p.jpg", "S1", "R1", at - dt.timedelta(seconds=10), 30.0, "ok"))
    assert outcome(run(_lines(("r1", "R1", at)), captures)) == {"r1": ("p.jpg", "matched")}


def test_a_register_missing_one_utc_time_matches_on_the_wall_clock() -> None:
    """R1 has UTC times throughout and pairs on them; at R2 one photo lacks its UTC time, so R2
    pairs on the wall clock (UTC and wall-clock times are never compared)."""
    day = busy_day(
        0.1, receipts=40, seed=2, zone=LONDON, start=dt.datetime(2026, 7, 1, 12), utc=True
    )
    captures = day.captures.copy()
    first_r2 = captures.index[captures["register_id"] == "R2"][0]
    captures.loc[first_r2, "captured_at_utc"] = pd.NaT
    tables = run(day.lines, captures)
    assert clocks(tables)["clock"].to_dict() == {("S1", "R1"): "utc", ("S1", "R2"): "local"}
    assert_day(day, tables)


def _lines(*receipts: tuple) -> pa.Table:
    """One 4.50 line per receipt at store S1: (receipt_id, register_id, paid_at[, utc])."""
    return pa.Table.from_pylist(
        [
            {
                "receipt_id": receipt[0],
                "store_id": "S1",
                "register_id": receipt[1],
                "cashier_id": "C1",
                "paid_at": receipt[2],
                "paid_at_utc": receipt[3] if len(receipt) > 3 else None,
                "sku": "SKU1",
                "quantity": 1.0,
                "amount": 4.5,
            }
            for receipt in receipts
        ],
        schema=LINES_SCHEMA,
    )
