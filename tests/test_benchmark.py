"""`agebatch bench`: the generated day it measures on, and every figure of its --json file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agebatch.benchmark import DISTINCT_MAX, model_only, stage, write_day, write_names
from agebatch.cli import main
from agebatch.config import PhotoKind, PredictConfig
from agebatch.inputs.captures import find_captures
from agebatch.predict.images import InputSpec, crop_vote, load_photo
from agebatch.predict.model import AgeModel
from tests.conftest import write_labelled_faces

ZONE = "UTC"

KEYS = {
    "model_only_ips",
    "decode_ips_per_core",
    "predict_stage_ips",
    "stage_over_model",
    "auto_over_crops",
    "auto_over_model",
    "loose_ips",
    "frames_ips",
    "loose_over_frames",
    "loose_over_frames_cpu",
    "find_files_per_s",
    "peak_rss_mb",
    "device",
}


def test_the_day_is_a_day_the_job_reads(tmp_path: Path) -> None:
    day = write_day(tmp_path, photos=25, kind=PhotoKind.CROPS, per_camera=10)
    found = find_captures(day.folder, ZONE).table
    assert len(found) == 25 and found["photo"].is_unique
    cameras = list(zip(found["store_id"], found["register_id"], strict=True))
    assert sorted(cameras) == sorted(day.cameras)
    assert day.cameras.count(("S001", "R1")) == 10 and day.cameras.count(("S001", "R3")) == 5
    assert sorted(str(p.relative_to(day.folder)) for p in day.paths) == sorted(found["photo"])


def test_a_big_day_is_links_to_a_thousand_pictures(tmp_path: Path) -> None:
    day = write_day(tmp_path, photos=DISTINCT_MAX + 5, kind=PhotoKind.CROPS, per_camera=400)
    inodes = {os.stat(path).st_ino for path in day.paths}
    assert len(inodes) == DISTINCT_MAX
    assert day.paths[DISTINCT_MAX].read_bytes() == day.paths[0].read_bytes()


def test_the_loose_day_is_the_same_faces_loosened(tmp_path: Path) -> None:
    crops = write_day(tmp_path / "crops", photos=8, kind=PhotoKind.CROPS)
    loose = write_day(tmp_path / "loose", photos=8, kind=PhotoKind.CROPS, loosen=True)
    for crop, loosened in zip(crops.paths, loose.paths, strict=True):
        with Image.open(crop) as a, Image.open(loosened) as b:
            assert a.size == b.size == (200, 200)
            # the same face (the photo's middle), cut elsewhere and looser
            assert 0 < np.abs(np.asarray(a, float) - np.asarray(b, float)).mean() < 60
        aligned, misaligned = crop_vote(crop), crop_vote(loosened)
        assert isinstance(aligned, float) and aligned < 1  # measured, aligned
        assert misaligned is True or misaligned > 1  # not confirmed as aligned
    with pytest.raises(ValueError):
        write_day(tmp_path / "frames", photos=2, kind=PhotoKind.FRAMES, loosen=True)


def test_names_to_find(tmp_path: Path) -> None:
    folder = write_names(tmp_path, names=1234, per_camera=500)
    table = find_captures(folder, ZONE).table
    assert len(table) == 1234 and table["store_id"].nunique() == 1
    assert sorted(table["register_id"].unique()) == ["R1", "R2", "R3"]


@pytest.mark.parametrize("faces", [False, True])
def test_bench_writes_every_figure(
    tmp_path: Path, brightness_model_path: Path, faces: bool, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "bench.json"
    args = [
        "bench", "--photos", "30", "--per-camera", "12", "--repeats", "2",
        "--find-names", "300", "--batch-size", "8", "--workers", "2", "--side-photos", "12",
        "--model", str(brightness_model_path), "--json", str(out),
        "--workdir", str(tmp_path / "work"),
    ]  # fmt: skip
    if faces:  # real faces in the labelled layout (here: grey squares of known ages)
        labelled = write_labelled_faces(tmp_path / "faces", [20.0, 40.0, 60.0])
        args += ["--faces", str(labelled)]
    assert main(args) == 0
    figures = json.loads(out.read_text())
    assert set(figures) >= KEYS
    statuses = figures["statuses"]
    assert statuses["crops"] == statuses["auto"] == {"ok": 30}
    assert sum(statuses["auto_loose"].values()) == sum(statuses["auto_frames"].values()) == 12
    assert min(figures[k] for k in KEYS - {"device"}) > 0
    assert figures["side_photos"] == 12
    runs = figures["runs"]
    assert {name: len(rates) for name, rates in runs.items()} == {
        "model_only": 2, "decode": 2, "crops": 2, "auto": 2, "auto_loose": 2, "auto_frames": 2
    }  # fmt: skip
    assert figures["loose_ips"] == max(runs["auto_loose"])
    assert figures["frames_ips"] == max(runs["auto_frames"])
    ratios = [lo / fr for lo, fr in zip(runs["auto_loose"], runs["auto_frames"], strict=True)]
    assert figures["loose_over_frames"] == pytest.approx(sum(ratios) / 2, abs=2e-3)
    ratios = [a / m for a, m in zip(runs["auto"], runs["model_only"], strict=True)]
    assert figures["auto_over_model"] == pytest.approx(sum(ratios) / 2, abs=2e-3)
    read_as = figures["cameras_read_as"]
    if not faces:  # drawn faces: as crops, loosened and in frames, each read as it was saved
        assert read_as == {
            "auto": {"aligned crops": 3},
            "auto_loose": {"loose crops": 1},
            "auto_frames": {"frames": 1},
        }
        assert statuses["auto_loose"] == {"ok": 12}
    assert figures["model_only_ips"] == max(runs["model_only"])  # the best of the runs
    ratios = [s / m for s, m in zip(runs["crops"], runs["model_only"], strict=True)]
    assert figures["stage_over_model"] == pytest.approx(sum(ratios) / 2, abs=2e-3)  # median
    ratios = [a / c for a, c in zip(runs["auto"], runs["crops"], strict=True)]
    assert figures["auto_over_crops"] == pytest.approx(sum(ratios) / 2, abs=2e-3)
    cpu = figures["cpu_ms_per_photo"]
    assert figures["stage_over_model_cpu"] == pytest.approx(cpu["model_only"] / cpu["crops"], 1e-2)
    assert figures["find_names"] == 300 and figures["find_files_per_s"] > 0
    assert figures["peak_rss_mb"] >= figures["stage_peak_rss_mb"] > 50
    assert figures["device"].startswith("CPU (") and figures["flip_averaging"] is False
    assert figures["faces"] == (str(tmp_path / "faces") if faces else "generated")
    printed = capsys.readouterr().out
    assert "predict stage (crops)" in printed and "stage / model (median" in printed
    if not faces:
        assert "auto (aligned crops) / crops (median of the repeats)" in printed
        assert "predict stage, auto on loose crops (loose crops)" in printed
        assert "loose crops / frames (median of the repeats)" in printed
    assert "loose crops and frames: 12 photos each" in printed


def test_bench_on_frames(tmp_path: Path, brightness_model_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = [
        "bench", "--kind", "frames", "--photos", "6", "--repeats", "1", "--find-names", "10",
        "--workers", "1", "--model", str(brightness_model_path), "--json", str(out),
    ]  # fmt: skip
    assert main(args) == 0
    figures = json.loads(out.read_text())
    assert figures["kind"] == "frames" and figures["auto_over_crops"] is None
    assert figures["loose_ips"] is None and figures["loose_over_frames"] is None
    assert sum(figures["statuses"]["frames"].values()) == 6
    assert figures["statuses"]["frames"].get("ok", 0) >= 4  # drawn faces pasted in scenes


def test_bench_refuses_nonsense(brightness_model_path: Path) -> None:
    assert main(["bench", "--photos", "0", "--model", str(brightness_model_path)]) == 2
    model = ["--model", str(brightness_model_path)]
    assert main(["bench", "--side-photos", "-1", *model]) == 2


def test_bench_without_the_side_days(tmp_path: Path, brightness_model_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = [
        "bench", "--photos", "8", "--repeats", "1", "--find-names", "10", "--side-photos", "0",
        "--workers", "1", "--model", str(brightness_model_path), "--json", str(out),
    ]  # fmt: skip
    assert main(args) == 0
    figures = json.loads(out.read_text())
    assert set(figures["runs"]) == {"model_only", "decode", "crops", "auto"}
    assert figures["side_photos"] is None and figures["loose_over_frames"] is None


class _Counting:
    """A Keras model stand-in that counts the images it is run on (and reads a fixed age)."""

    def __init__(self) -> None:
        self.images = 0

    def predict_on_batch(self, x: np.ndarray) -> np.ndarray:
        self.images += len(x)
        return np.full((len(x), 1), 30.0, dtype=np.float32)


@pytest.mark.parametrize("flip", ["none", "flip"])
def test_the_model_alone_and_the_stage_do_the_same_model_work(
    tmp_path: Path, brightness_model: AgeModel, flip: str
) -> None:
    card = brightness_model.card.model_copy(update={"test_time_augmentation": flip})
    counting = _Counting()
    model = AgeModel(card, counting)
    day = write_day(tmp_path, photos=20, kind=PhotoKind.CROPS, per_camera=10)
    config = PredictConfig(batch_size=8, workers=1, photo_kind="crops")
    inputs = [load_photo(p, InputSpec.from_card(card, "crops")).pixels for p in day.paths]
    assert model_only(model, inputs, 20, config.batch_size) == 20
    alone, counting.images = counting.images, 0
    assert stage(day, model, config, {}) == 20
    assert alone == counting.images == (40 if flip == "flip" else 20)
