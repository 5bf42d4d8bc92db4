"""The `cameras` table (sql/cameras.sql) on tiny inline tables in a real DuckDB: one row per
camera with photos, the verdict under auto or the kind set, the photos per status, and the
camera's previous day (a re-mounted camera shows as changed)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agebatch.config import PhotoKind, default_age_bounds
from agebatch.duck import connect
from agebatch.predict.cameras import Verdict
from agebatch.schema import SAVES, SAVES_VERDICTS, conform, schema
from agebatch.transform.cameras import (
    CameraInputs,
    camera_history,
    camera_inputs,
    history_schema,
    verdict_table,
)
from agebatch.transform.join import join_day
from tests.conftest import DAY, captures_frame, compliance

AT = dt.datetime(2026, 11, 24, 12, 0)
LINES = pa.table(
    {
        "receipt_id": ["r1"],
        "store_id": ["S1"],
        "register_id": ["R1"],
        "cashier_id": ["C1"],
        "paid_at": [AT],
        "sku": ["BEE000"],
        "quantity": [1.0],
        "amount": [4.5],
    }
)
CATALOG = pa.table({"sku": ["BEE000"], "category": ["beer"], "age_restricted": [True]})
# S1/R1 aligned crops (2 of 12 crop votes misaligned: not more than 1 in 8), S1/R2 loose crops
# (5 of 10), S2/R1 frames (the majority of its votes).
VERDICTS = (
    Verdict(("S1", "R1"), 12, 1, 13, 1, 0.41),
    Verdict(("S1", "R2"), 10, 0, 10, 5, 1.62),
    Verdict(("S2", "R1"), 2, 9, 11, 0, None),
)
# Each camera's photos: (store, register, status) per photo.
PHOTOS = [
    *[("S1", "R1", "ok")] * 5,
    ("S1", "R1", "low_quality"),
    *[("S1", "R2", "ok")] * 3,
    ("S1", "R2", "unreadable"),
    *[("S2", "R1", "no_face")] * 2,
    ("S2", "R1", "refused"),
    ("S2", "R1", "ok"),
]


def _captures(photos: list[tuple[str, str, str]] = PHOTOS):
    return captures_frame(
        *(
            (f"{s}/{r}/{n:03d}.jpg", s, r, AT, 30.0 if status == "ok" else None, status)
            for n, (s, r, status) in enumerate(photos)
        )
    )


def _cameras(cameras: CameraInputs, photos: list[tuple[str, str, str]] = PHOTOS) -> list[dict]:
    """The cameras rows join_day publishes, conformed to the schema (keyed by camera)."""
    with connect() as con:
        tables = join_day(
            con,
            day=DAY,
            lines=LINES,
            catalog=CATALOG,
            captures=_captures(photos),
            model_version="m1",
            age_bounds=default_age_bounds(),
            window_before_s=120.0,
            window_after_s=5.0,
            compliance=compliance(),
            cameras=cameras,
        )
    return conform("cameras", tables["cameras"]).to_pylist()


def _history(*rows: tuple[dt.date, str, str, str, float | None]) -> pa.Table:
    keys = ("day", "store_id", "register_id", "saves", "misalignment")
    return pa.Table.from_pylist(
        [dict(zip(keys, row, strict=True)) for row in rows], history_schema()
    )


def test_under_auto_each_camera_says_what_its_sample_decided() -> None:
    rows = _cameras(CameraInputs(PhotoKind.AUTO, verdict_table(VERDICTS)))
    got = {
        (r["store_id"], r["register_id"]): (
            r["photo_kind"],
            r["saves"],
            r["crop_votes"],
            r["frame_votes"],
            r["misaligned_crops"],
            r["misalignment"],
        )
        for r in rows
    }
    assert got == {
        ("S1", "R1"): ("auto", "aligned crops", 12, 1, 1, 0.41),
        ("S1", "R2"): ("auto", "loose crops", 10, 0, 5, 1.62),
        ("S2", "R1"): ("auto", "frames", 2, 9, 0, None),
    }
    counts = {
        (r["store_id"], r["register_id"]): tuple(
            r[c] for c in ("photos", "aged", "low_quality", "no_face", "unreadable", "refused")
        )
        for r in rows
    }
    assert counts == {
        ("S1", "R1"): (6, 5, 1, 0, 0, 0),
        ("S1", "R2"): (4, 3, 0, 0, 1, 0),
        ("S2", "R1"): (4, 1, 0, 2, 0, 1),
    }
    assert all(r["day"] == DAY and r["saves_before"] is None for r in rows)
    assert all(r["changed"] is None and r["day_before"] is None for r in rows)


@pytest.mark.parametrize("kind", [PhotoKind.CROPS, PhotoKind.FRAMES])
def test_under_a_kind_set_the_rows_say_it_was_set_and_no_vote(kind: PhotoKind) -> None:
    # Verdicts given under a set kind (none are taken then) are not published as votes.
    rows = _cameras(CameraInputs(kind, verdict_table(VERDICTS)))
    assert [(r["store_id"], r["register_id"]) for r in rows] == [
        ("S1", "R1"),
        ("S1", "R2"),
        ("S2", "R1"),
    ]
    assert {r["saves"] for r in rows} == {f"{kind.value} (set)"}
    assert {r["photo_kind"] for r in rows} == {kind.value}
    for column in ("crop_votes", "frame_votes", "misaligned_crops", "misalignment"):
        assert {r[column] for r in rows} == {None}, column


def test_a_camera_with_no_verdict_under_auto_is_undecided_never_guessed() -> None:
    rows = _cameras(CameraInputs(PhotoKind.AUTO, verdict_table(VERDICTS[:1])))
    assert {(r["store_id"], r["register_id"]): r["saves"] for r in rows} == {
        ("S1", "R1"): "aligned crops",
        ("S1", "R2"): "undecided",
        ("S2", "R1"): "undecided",
    }


def test_a_verdict_of_a_camera_without_photos_that_day_is_no_row() -> None:
    photos = [p for p in PHOTOS if p[:2] != ("S1", "R2")]
    rows = _cameras(CameraInputs(PhotoKind.AUTO, verdict_table(VERDICTS)), photos)
    assert [(r["store_id"], r["register_id"]) for r in rows] == [("S1", "R1"), ("S2", "R1")]


def test_a_re_mounted_camera_shows_against_its_previous_day() -> None:
    history = _history(
        (DAY - dt.timedelta(days=5), "S1", "R1", "loose crops", 2.0),
        (DAY - dt.timedelta(days=2), "S1", "R1", "aligned crops", 0.35),  # its latest: this one
        (DAY - dt.timedelta(days=3), "S1", "R2", "loose crops", 1.7),
        (DAY - dt.timedelta(days=1), "S2", "R1", "crops (set)", None),  # not a verdict
        (DAY - dt.timedelta(days=1), "S9", "R1", "frames", None),  # no photos today: no row
        (DAY, "S2", "R1", "aligned crops", 0.1),  # the day itself: not earlier
    )
    rows = _cameras(CameraInputs(PhotoKind.AUTO, verdict_table(VERDICTS), history))
    got = {
        (r["store_id"], r["register_id"]): (
            r["saves"],
            r["saves_before"],
            r["misalignment_before"],
            r["day_before"],
            r["changed"],
        )
        for r in rows
    }
    assert got == {
        ("S1", "R1"): ("aligned crops", "aligned crops", 0.35, DAY - dt.timedelta(days=2), False),
        ("S1", "R2"): ("loose crops", "loose crops", 1.7, DAY - dt.timedelta(days=3), False),
        ("S2", "R1"): ("frames", None, None, None, None),  # no earlier verdict
    }
    # S1/R1 re-mounted: aligned crops two days ago, loose crops today.
    remounted = (Verdict(("S1", "R1"), 12, 0, 12, 9, 1.9), *VERDICTS[1:])
    rows = _cameras(CameraInputs(PhotoKind.AUTO, verdict_table(remounted), history))
    first = rows[0]
    assert (first["saves"], first["saves_before"], first["changed"]) == (
        "loose crops",
        "aligned crops",
        True,
    )
    assert [r["changed"] for r in rows[1:]] == [False, None]


@settings(max_examples=60, deadline=None)
@given(before=st.sampled_from(SAVES), now=st.sampled_from(SAVES_VERDICTS))
def test_changed_is_a_difference_of_two_verdicts_and_null_otherwise(before: str, now: str) -> None:
    misaligned = {"aligned crops": 0, "loose crops": 6, "frames": 0}[now]
    crops, frames = (0, 8) if now == "frames" else (8, 0)
    verdict = Verdict(("S1", "R1"), crops, frames, 8, misaligned, None)
    assert verdict.saves == now
    history = _history((DAY - dt.timedelta(days=1), "S1", "R1", before, None))
    (row,) = _cameras(
        CameraInputs(PhotoKind.AUTO, verdict_table([verdict]), history), [("S1", "R1", "ok")]
    )
    if before in SAVES_VERDICTS:
        assert (row["saves_before"], row["changed"]) == (before, before != now)
    else:  # a day run under a set kind, or undecided, is no verdict to compare with
        assert (row["saves_before"], row["changed"]) == (None, None)


def test_a_camera_re_mounted_while_the_chain_ran_crops_shows_on_its_next_auto_day() -> None:
    history = _history(
        (DAY - dt.timedelta(days=3), "S1", "R1", "aligned crops", 0.3),
        (DAY - dt.timedelta(days=2), "S1", "R1", "crops (set)", None),
        (DAY - dt.timedelta(days=1), "S1", "R1", "undecided", None),
    )
    loose = Verdict(("S1", "R1"), 8, 0, 8, 6, 1.8)
    (row,) = _cameras(
        CameraInputs(PhotoKind.AUTO, verdict_table([loose]), history), [("S1", "R1", "ok")]
    )
    assert (row["saves"], row["saves_before"], row["day_before"], row["changed"]) == (
        "loose crops",
        "aligned crops",
        DAY - dt.timedelta(days=3),
        True,
    )


def test_verdicts_of_folders_are_not_rows_of_tills() -> None:
    table = verdict_table([Verdict(Path("/photos/a"), 3, 0, 3), VERDICTS[0]])
    assert table.to_pylist() == [
        {
            "store_id": "S1",
            "register_id": "R1",
            "saves": "aligned crops",
            "crop_votes": 12,
            "frame_votes": 1,
            "misaligned_crops": 1,
            "misalignment": 0.41,
        }
    ]


def test_the_history_is_the_published_days_before_within_the_window(tmp_path: Path) -> None:
    fields = [f for f in schema("cameras") if f.name in ("store_id", "register_id", "saves")]
    for back in (1, 3, 28, 29):
        folder = tmp_path / "cameras" / f"day={DAY - dt.timedelta(days=back)}"
        folder.mkdir(parents=True)
        rows = [{"store_id": "S1", "register_id": "R1", "saves": "frames (set)"}]
        pq.write_table(pa.Table.from_pylist(rows, pa.schema(fields)), folder / "part-0.parquet")
    later = tmp_path / "cameras" / f"day={DAY}"  # the day itself (a re-run): not history
    later.mkdir(parents=True)
    history = camera_history(tmp_path, DAY)
    assert [d.day for d in history["day"].to_pylist()] == [
        (DAY - dt.timedelta(days=back)).day for back in (28, 3, 1)
    ]
    assert history["misalignment"].to_pylist() == [None] * 3  # a column the day predates
    inputs = camera_inputs(tmp_path, DAY, PhotoKind.FRAMES, VERDICTS)
    assert inputs.photo_kind == PhotoKind.FRAMES and inputs.verdicts.num_rows == 3
    assert inputs.history.num_rows == 3
