"""The report folder and the analytics database's place are checked for writing before
predicting (issue #27): read-only or without room (8 MB for the pages, 1 MB for the
database), the run stops with one sentence, exit 2, nothing published (before, the day was
published and the run then failed with exit 1)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agebatch.config import RunConfig
from agebatch.errors import OutputError
from agebatch.preflight import check_report_places
from agebatch.sample import SampleDay, make_sample_day
from tests.conftest import DAY
from tests.faults import run_agebatch
from tests.pictures import SolidFaces


@pytest.fixture
def sample(tmp_path: Path) -> SampleDay:
    return make_sample_day(tmp_path / "data", DAY, receipts=30, writer=SolidFaces())


def _run(sample: SampleDay, out: Path, model: Path, *extra: str) -> list[str]:
    return [
        "run", "--day", str(DAY), "--photos", str(sample.photos),
        "--transactions", str(sample.transactions), "--catalog", str(sample.catalog),
        "--out", str(out), "--model", str(model), *extra,
    ]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("place", ["reports", "analytics-db"])
@pytest.mark.parametrize("fault", ["read-only", "full"])
def test_a_place_that_cannot_be_written_stops_the_run_before_predicting(
    sample: SampleDay, tmp_path: Path, brightness_model_path: Path, place: str, fault: str
) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    setting = ["--reports", str(elsewhere)] if place == "reports" else []
    setting = setting or ["--analytics-db", str(elsewhere / "a.duckdb")]
    faults = {"read_only": elsewhere} if fault == "read-only" else {"tmpfs": (elsewhere, "4k")}
    done = run_agebatch(_run(sample, out, brightness_model_path, *setting), **faults)
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 2, done.stderr
    what = "report folder" if place == "reports" else "analytics database's folder"
    folder = elsewhere / DAY.isoformat() if place == "reports" else elsewhere
    if fault == "read-only":
        assert last == (
            f"agebatch: error: The {what} {folder} cannot be written (Read-only file system): "
            f"check --{place}, the folder's permissions and its file system before running."
        )
    else:
        needed = "8.4 MB" if place == "reports" else "1.0 MB"
        assert last == (
            f"agebatch: error: The {what} {folder} has 4.1 kB free and needs about {needed}: "
            f"free some space or give another --{place} before running."
        )
    assert re.search(r"Found \d+ photos", done.stderr) and "Predicted" not in done.stderr
    assert not (out / "receipt_ages").exists()  # nothing published


def test_the_check_leaves_no_folder_behind(tmp_path: Path) -> None:
    paths = {name: tmp_path for name in ("photos", "transactions", "catalog")}
    config = RunConfig.build({**paths, "out": tmp_path / "out"})
    check_report_places(config, DAY)
    assert not (tmp_path / "out").exists()
    (tmp_path / "out").write_text("a file where the folder goes")
    with pytest.raises(OutputError, match=r"^The report folder .* cannot be written \(Not a dir"):
        check_report_places(config, DAY)
