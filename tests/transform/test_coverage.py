"""The coverage gate refuses a day whose photos or matches collapsed at a store (issue #12).

The finding: a card with an inverted crop box published a day in which 386 of 391 photos were
unreadable, exit status 0. Whatever makes photos unreadable or faceless, or receipts lose their
photos, the gate compares each store's share with the median of its earlier published days.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from agebatch.cli import main
from agebatch.errors import CoverageRefused
from agebatch.pipeline import run_day
from agebatch.sample import SampleDay, make_sample_day
from agebatch.transform.coverage import judge
from tests.conftest import DAY
from tests.pictures import SolidFaces

HISTORY_COLUMNS = ["store_id", "measure", "share", "total"]


def _history(*rows: tuple[str, str, float, int]) -> pa.Table:
    return pa.Table.from_pylist([dict(zip(HISTORY_COLUMNS, row, strict=True)) for row in rows])


def _one(counts: tuple[int, int], history: pa.Table, margin: float = 0.2, min_count: int = 20):
    (row,) = judge({("S1", "receipts_no_photo"): counts}, history, margin, min_count)
    return row


def test_without_history_the_baseline_is_zero() -> None:
    row = _one((25, 100), _history())
    assert (row["baseline"], row["history_days"], row["limit_share"]) == (0.0, 0, 0.2)
    assert row["share"] == 0.25 and row["verdict"] == "over_limit"
    assert _one((20, 100), _history())["verdict"] == "ok"  # at the limit is not over it


def test_the_baseline_is_the_median_of_the_stores_judged_earlier_days() -> None:
    history = _history(
        ("S1", "receipts_no_photo", 0.1, 50),
        ("S1", "receipts_no_photo", 0.5, 50),
        ("S1", "receipts_no_photo", 0.3, 50),
        ("S1", "receipts_no_photo", 0.9, 5),  # too few receipts that day: not in the median
        ("S2", "receipts_no_photo", 0.9, 50),  # another store
        ("S1", "photos_unreadable", 0.9, 50),  # another measure
    )
    row = _one((50, 100), history)
    assert (row["baseline"], row["history_days"]) == (0.3, 3)
    assert row["limit_share"] == pytest.approx(0.5) and row["verdict"] == "ok"
    assert _one((51, 100), history)["verdict"] == "over_limit"


def test_a_store_with_too_few_photos_is_not_judged() -> None:
    row = _one((19, 19), _history())
    assert row["share"] == 1.0 and row["verdict"] == "too_few"


def _day(tmp_path: Path, day: dt.date, no_photo_share: float = 0.05) -> SampleDay:
    return make_sample_day(
        tmp_path / "data", day, stores=2, receipts=80, writer=SolidFaces(),
        no_photo_share=no_photo_share, unreadable=0, seed=day.day,
    )  # fmt: skip


def _break_photos(sample: SampleDay, store: str, keep: int) -> int:
    """Overwrite all but `keep` of a store's photos with bytes that are no image."""
    photos = sorted((sample.photos / sample.day.isoformat() / store).rglob("*.png"))
    for photo in photos[keep:]:
        photo.write_bytes(b"not an image")
    return len(photos)


def _args(sample: SampleDay, out: Path, model: Path) -> list[str]:
    return [
        "run", "--day", str(sample.day), "--photos", str(sample.photos),
        "--transactions", str(sample.transactions), "--catalog", str(sample.catalog),
        "--out", str(out), "--model", str(model),
    ]  # fmt: skip


def test_a_day_of_unreadable_photos_is_refused_and_publishes_nothing(
    tmp_path: Path, brightness_model_path: Path, capsys: pytest.CaptureFixture
) -> None:
    sample = _day(tmp_path, DAY)
    photos = _break_photos(sample, "S01", keep=2)
    out = tmp_path / "out"
    assert main(_args(sample, out, brightness_model_path)) == 3
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"agebatch: refused: Refused to publish {DAY}: at store S01 ")
    assert f"{photos - 2} of {photos} photos" in err and "are unreadable, against no history" in err
    assert "--accept-low-coverage" in err and "S02" not in err
    assert not list(out.rglob("*.parquet"))

    # Accepted: published, and the run record says so.
    assert main([*_args(sample, out, brightness_model_path), "--accept-low-coverage"]) == 0
    (run,) = pq.read_table(out / "runs").to_pylist()
    assert run["coverage_gate"] == "accepted"
    assert [entry.split()[:2] for entry in run["coverage_over"]] == [["S01", "photos_unreadable"]]
    coverage = {
        (r["store_id"], r["measure"]): r for r in pq.read_table(out / "store_coverage").to_pylist()
    }
    unreadable = coverage[("S01", "photos_unreadable")]
    assert (unreadable["affected"], unreadable["total"]) == (photos - 2, photos)
    assert unreadable["verdict"] == "over_limit" and unreadable["limit_share"] == 0.2
    assert coverage[("S02", "photos_unreadable")]["verdict"] == "ok"


def test_the_gate_judges_against_the_stores_own_history(tmp_path: Path, brightness_model) -> None:
    """A store that always misses half its shoppers is not refused for it; a drop is."""
    for usual, today, refused in [(0.05, 0.6, True), (0.55, 0.6, False)]:
        root = tmp_path / f"usual-{usual}"
        for back in (3, 2, 1):
            earlier = _day(root, DAY - dt.timedelta(days=back), no_photo_share=usual)
            # With no history the median is 0: the first day of such a store is accepted once.
            accept = back == 3
            config = earlier.config(root / "out", accept_low_coverage=accept)
            record = run_day(config, earlier.day, model=brightness_model).record
            assert record.coverage_gate == ("accepted" if usual > 0.2 and accept else "passed")
        sample = _day(root, DAY, no_photo_share=today)
        config = sample.config(root / "out")
        if refused:
            with pytest.raises(CoverageRefused, match="have no photo, against a median of"):
                run_day(config, DAY, model=brightness_model)
            assert not (root / "out" / "receipt_ages" / f"day={DAY}").exists()
            continue
        published = run_day(config, DAY, model=brightness_model)
        assert published.record.coverage_gate == "passed" and not published.record.coverage_over
        rows = pq.read_table(root / "out" / "store_coverage" / f"day={DAY}").to_pylist()
        no_photo = [r for r in rows if r["measure"] == "receipts_no_photo"]
        assert {r["history_days"] for r in no_photo} == {3}
        assert all(r["baseline"] > 0.3 and r["verdict"] == "ok" for r in no_photo)


def test_a_store_whose_photos_are_refused_is_refused(
    tmp_path: Path, brightness_model_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # A camera whose files are links to faces elsewhere: each photo is refused unopened (a
    # counted skip), and a store of refusals is a collapsed store like one of unreadable photos.
    sample = _day(tmp_path, DAY)
    elsewhere = tmp_path / "elsewhere.png"
    photos = sorted((sample.photos / sample.day.isoformat() / "S02").rglob("*.png"))
    elsewhere.write_bytes(photos[0].read_bytes())
    for photo in photos[1:]:
        photo.unlink()
        photo.symlink_to(elsewhere)
    out = tmp_path / "out"
    assert main(_args(sample, out, brightness_model_path)) == 3
    err = capsys.readouterr().err.strip().splitlines()[-1]
    refused, total = len(photos) - 1, len(photos)
    assert f"S02 {refused} of {total} photos ({refused / total:.1%}) were refused" in err
    assert "S01" not in err and not list(out.rglob("*.parquet"))
