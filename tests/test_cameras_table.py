"""The published `cameras` table end to end: a day with a camera of aligned crops and one of
loose crops says so; the next day, the first camera re-mounted (loose crops) shows as changed
against the published day before; and a run in shards publishes the same rows as a plain run.

Photos are generated: a drawn cartoon face cut as the card's aligned crop, or as a camera's own
box (12% off-centre, 15% looser), by the brightness model's cropping card."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from PIL import Image

from agebatch.config import PhotoKind, RunConfig
from agebatch.pipeline import (
    Night,
    Predicted,
    begin,
    find_stage,
    from_shards,
    plan_shards,
    predict_stage,
    run_day,
    transform_stage,
)
from agebatch.predict.cameras import SAMPLE_SPAN
from agebatch.predict.faces import FaceFinder, aligned_crop_chip
from agebatch.predict.model import AgeModel, load_model
from agebatch.sample import make_sample_day
from agebatch.shards import Shard, ShardJob, release_staging, run_shard
from tests.conftest import DAY, save_brightness_model
from tests.pictures import drawn_frame

NEXT = DAY + dt.timedelta(days=1)
DOC = Path(__file__).resolve().parents[1] / "docs" / "face-finding.md"
SAMPLE = 4  # auto_sample: each camera's first 4 photos vote
LOOSE_BOX = (0.5 - 1.15 / 2 + 0.12, 0.5 - 1.15 / 2, 0.5 + 1.15 / 2 + 0.12, 0.5 + 1.15 / 2)


@functools.cache
def _chips() -> dict[str, np.ndarray]:
    """The drawn face as an aligned crop and as a loose one (200x200)."""
    frame = drawn_frame((640, 480), [(320, 240, 120)])
    face = FaceFinder().find_shopper(frame)
    assert face is not None
    image = Image.fromarray(frame)
    return {
        "aligned": aligned_crop_chip(image, face, (200, 200), resample="bilinear"),
        "loose": aligned_crop_chip(image, face, (200, 200), box=LOOSE_BOX, resample="bilinear"),
    }


@dataclasses.dataclass(frozen=True)
class CameraCrops:
    """Writes each register's photos as that camera cuts them: loose crops at the registers
    named, aligned crops elsewhere (a little brighter or darker with the shopper's age)."""

    loose: frozenset[str]
    suffix: str = ".png"

    def __call__(self, path: Path, age: float, rng: np.random.Generator) -> None:
        """Write the crop."""
        chip = _chips()["loose" if path.parent.name in self.loose else "aligned"]
        shade = int(age) % 9 - 4
        Image.fromarray(np.clip(chip.astype(int) + shade, 0, 255).astype(np.uint8)).save(path)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The brightness model with an aligned-crop box on its card (as tests/conftest.py's
    cropping_model), saved once for this module."""
    path = save_brightness_model(tmp_path_factory.mktemp("cropping") / "bright.keras")
    card_file = path.with_name("bright.card.json")
    card = json.loads(card_file.read_text())
    card["face"] = {"aligned_crop": {"box": [0.025, 0.025, 0.975, 0.975], "resample": "box"}}
    card_file.write_text(json.dumps(card))
    return path


@pytest.fixture(scope="module")
def model(model_path: Path) -> AgeModel:
    return load_model(model_path)


def _config(root: Path, day: dt.date, loose: set[str], model_path: Path, **more) -> RunConfig:
    """A day of one store with two registers under root, its run config publishing to
    root/out."""
    sample = make_sample_day(
        root / day.isoformat(),
        day,
        stores=1,
        registers=2,
        receipts=20,
        writer=CameraCrops(frozenset(loose)),
        seed=day.day,
        unreadable=1,
    )
    return sample.config(
        root / "out",
        model=model_path,
        photo_kind="auto",
        auto_sample=SAMPLE,
        workers=1,
        batch_size=8,
        **more,
    )


def _rows(out: Path, day: dt.date) -> dict[str, dict]:
    """The published cameras rows of a day, by register."""
    (file,) = (out / "cameras" / f"day={day}").glob("*.parquet")
    return {row["register_id"]: row for row in pq.read_table(file).to_pylist()}


def _photos(config: RunConfig, day: dt.date) -> dict[str, tuple[int, int]]:
    """Each register's photos and unreadable photos, from the day folder itself."""
    counts = {}
    for folder in sorted(config.day_folder(day).glob("S01/R*")):
        files = list(folder.glob("*.png"))
        broken = sum(1 for f in files if f.read_bytes().startswith(b"this is not"))
        counts[folder.name] = (len(files), broken)
    return counts


@pytest.fixture(scope="module")
def two_days(tmp_path_factory: pytest.TempPathFactory, model: AgeModel, model_path: Path):
    """DAY: R1 aligned crops, R2 loose crops; NEXT: R1 re-mounted, both loose crops. Both days
    published by run_day into one OUT."""
    root = tmp_path_factory.mktemp("cameras")
    first = _config(root, DAY, {"R2"}, model_path)
    run_day(first, DAY, model=model)
    second = _config(root, NEXT, {"R1", "R2"}, model_path)
    run_day(second, NEXT, model=model)
    return root, first, second


def test_a_day_says_which_camera_saves_aligned_and_which_loose_crops(two_days) -> None:
    root, config, _ = two_days
    rows = _rows(root / "out", DAY)
    assert sorted(rows) == ["R1", "R2"]
    aligned, loose = rows["R1"], rows["R2"]
    assert (aligned["photo_kind"], aligned["saves"]) == ("auto", "aligned crops")
    assert (loose["photo_kind"], loose["saves"]) == ("auto", "loose crops")
    # A majority's worth of the sample votes (3 of 4; 2 when the broken photo is among them,
    # it does not vote), every vote a crop.
    for row in rows.values():
        assert row["frame_votes"] == 0 and row["crop_votes"] in (2, 3)
    assert aligned["misaligned_crops"] == 0 and aligned["misalignment"] <= 1.0
    assert loose["misaligned_crops"] == loose["crop_votes"] and loose["misalignment"] > 1.0
    photos = _photos(config, DAY)
    for register, row in rows.items():
        assert (row["photos"], row["unreadable"]) == photos[register]
        assert row["aged"] == row["photos"] - row["unreadable"]  # every readable crop aged
        assert (row["no_face"], row["low_quality"], row["refused"]) == (0, 0, 0)
    # The first published day has nothing to compare with.
    assert all(r["saves_before"] is None and r["changed"] is None for r in rows.values())


def test_the_next_day_shows_the_re_mounted_camera(two_days) -> None:
    root, _, _ = two_days
    before, rows = _rows(root / "out", DAY), _rows(root / "out", NEXT)
    remounted, same = rows["R1"], rows["R2"]
    assert (remounted["saves"], remounted["saves_before"], remounted["changed"]) == (
        "loose crops",
        "aligned crops",
        True,
    )
    assert remounted["day_before"] == DAY
    assert remounted["misalignment_before"] == before["R1"]["misalignment"] <= 1.0
    assert remounted["misalignment"] > 1.0
    assert (same["saves"], same["saves_before"], same["changed"]) == (
        "loose crops",
        "loose crops",
        False,
    )


def _sharded(config: RunConfig, night: Night) -> tuple[Predicted, ShardJob, list[Shard]]:
    """The night's photos predicted shard by shard in this process, as Dask workers would."""
    job, planned = plan_shards(config, night.found, night.run)
    try:
        outcomes = [run_shard(config, job, shard) for shard in planned]
        return from_shards(night.found, job, planned, outcomes, 1.0), job, planned
    finally:
        release_staging(config.restricted_root(), NEXT.isoformat(), night.run.run_id)


def test_a_run_in_shards_publishes_the_cameras_rows_of_a_plain_run(
    two_days, model: AgeModel
) -> None:
    # Shards of 4 photos: each camera in several shards, its first one holding all the plain
    # run's sample can reach (shard_size >= SAMPLE_SPAN x auto_sample: the sample goes on past
    # unreadable photos that far).
    _, _, second = two_days
    config = second.model_copy(update={"shard_size": SAMPLE, "auto_sample": SAMPLE // SAMPLE_SPAN})
    plain = transform_stage(predict_stage(find_stage(begin(config, NEXT, model))))
    night = find_stage(begin(config, NEXT, model))
    predicted, job, planned = _sharded(config, night)
    assert len(planned) >= 4  # two cameras, several shards each
    assert predicted.stats.verdicts == plain.predicted.stats.verdicts
    sharded = transform_stage(dataclasses.replace(night, predicted=predicted))
    cameras = plain.joined.tables["cameras"]
    assert cameras.num_rows == 2 and set(cameras["saves"].to_pylist()) == {"loose crops"}
    assert sharded.joined.tables["cameras"].equals(cameras)
    assert cameras["changed"].to_pylist() == [True, False]  # against the published DAY
    # The verdict travels in each staged file's metadata.
    staged = pq.read_schema(job.staging / f"{planned[0].fingerprint}.parquet").metadata
    assert json.loads(staged[b"verdict"])["crop_votes"] >= 1
    assert staged[b"layout"] == b"agebatch.shard/3"


def test_a_shard_under_a_set_kind_keeps_no_verdict(two_days, model: AgeModel) -> None:
    _, _, second = two_days
    config = second.model_copy(update={"photo_kind": PhotoKind.CROPS})
    night = find_stage(begin(config, NEXT, model))
    predicted, _, _ = _sharded(config, night)
    assert predicted.stats.verdicts == ()
    rows = transform_stage(dataclasses.replace(night, predicted=predicted)).joined.tables
    cameras = rows["cameras"]
    assert cameras["saves"].to_pylist() == ["crops (set)"] * 2
    assert cameras["crop_votes"].null_count == 2 and cameras["changed"].null_count == 2


def test_the_report_names_the_loose_crop_camera_and_the_re_mounted_one(two_days) -> None:
    root, _, _ = two_days
    first = (root / "out" / "reports" / DAY.isoformat() / "index.html").read_text()
    assert "Cameras read as loose crops (each face aligned by its landmarks): S01/R2." in first
    assert "re-mounted?" not in first and "read as frames" not in first
    store = (root / "out" / "reports" / NEXT.isoformat() / "store-S01.html").read_text()
    assert "Cameras read as loose crops (each face aligned by its landmarks): S01/R1, S01/R2." in (
        store
    )
    assert (
        "Cameras read otherwise than on their previous day (re-mounted?): S01/R1 (aligned crops "
        f"on {DAY} → loose crops)." in store
    )


def test_the_docs_query_finds_the_re_mounted_camera(two_days) -> None:
    root, _, _ = two_days
    section = DOC.read_text().split("### The `cameras` table", 1)[1]
    query = section.split("```sql\n", 1)[1].split("```", 1)[0]
    rows = duckdb.sql(query.replace("'OUT/", f"'{root / 'out'}/")).fetchall()
    assert [row[:5] for row in rows] == [("S01", "R1", DAY, "aligned crops", "loose crops")]


def test_a_changed_camera_is_named_in_the_runs_log(two_days, caplog) -> None:
    from agebatch.pipeline import _warn_changed_cameras

    root, _, _ = two_days
    rows = _rows(root / "out", NEXT)
    table = pa.Table.from_pylist(list(rows.values()))
    remounted = f"{rows['R1']['store_id']}/R1 (aligned crops on {DAY} -> loose crops)"
    with caplog.at_level("WARNING", logger="agebatch.pipeline"):
        _warn_changed_cameras(table)
    (record,) = caplog.records
    assert record.getMessage().startswith("1 camera(s) read otherwise than on their latest")
    assert remounted in record.getMessage()
    caplog.clear()
    unchanged = table.filter(pc.invert(table["changed"]))
    _warn_changed_cameras(unchanged)
    assert not caplog.records
