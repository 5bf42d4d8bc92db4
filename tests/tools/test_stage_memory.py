"""tools.stage_memory: the stage over the first N photos of a day, as the pipeline runs it."""

from __future__ import annotations

from pathlib import Path

from agebatch.benchmark import write_day
from agebatch.config import PhotoKind
from tools.stage_memory import child


def test_one_size_runs_the_stage_over_the_days_first_photos(tmp_path: Path) -> None:
    day = write_day(tmp_path, photos=30, kind=PhotoKind.CROPS, per_camera=10)
    figures = child(day.folder, 25, "auto", 8)
    assert figures["photos"] == figures["ok"] == 25 and figures["batch_size"] == 8
    assert figures["peak_rss_mb"] >= figures["ready_rss_mb"] > 50
    assert figures["photos_per_s"] > 0
