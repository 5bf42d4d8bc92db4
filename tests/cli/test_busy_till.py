"""`agebatch run` at busy tills, from files on disk: one photo per shopper, drifting cameras."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from agebatch.cli import main
from tests.busy_till import CATALOG, BusyDay, busy_day
from tests.conftest import DAY
from tests.pictures import SolidFaces, scene


def _write(day: BusyDay, root: Path) -> list[str]:
    """The day as files: photos (grey squares, faceless frames, broken files), a manifest with
    the names of named photos, transactions and catalog; returns the run's path options."""
    folder = root / "photos" / DAY.isoformat()
    rng = np.random.default_rng(0)
    rows = []
    for shot in day.captures.itertuples(index=False):
        path = folder / shot.photo
        path.parent.mkdir(parents=True, exist_ok=True)
        if shot.status == "ok":
            SolidFaces()(path, shot.predicted_age, rng)
        elif shot.status == "no_face":
            Image.fromarray(scene(640, 480, seed=3)).save(path)
        else:
            path.write_bytes(b"not a photo")
        receipt = "" if pd.isna(shot.receipt_id) else shot.receipt_id
        rows.append(f"{shot.photo},{shot.store_id},{shot.register_id},{shot.captured_at},{receipt}")
    (folder / "captures.csv").write_text(
        "photo,store_id,register_id,captured_at,receipt_id\n" + "\n".join(rows) + "\n"
    )
    (root / "transactions").mkdir()
    day.lines.drop_columns(["paid_at_utc"]).to_pandas().to_parquet(
        root / "transactions" / f"{DAY}.parquet"
    )
    CATALOG.to_pandas().to_parquet(root / "catalog.parquet")
    return [
        "--photos", str(root / "photos"),
        "--transactions", str(root / "transactions"),
        "--catalog", str(root / "catalog.parquet"),
    ]  # fmt: skip


def _published(out: Path, table: str) -> pd.DataFrame:
    return pd.read_parquet(out / table)


@pytest.mark.parametrize("missing", [0.1, 0.33, 0.5])
def test_every_missed_shopper_is_no_photo(
    missing: float, tmp_path: Path, brightness_model_path: Path
) -> None:
    day = busy_day(missing, seed=7)
    paths = _write(day, tmp_path)
    argv = ["run", "--day", str(DAY), *paths, "--out", str(tmp_path / "out")]
    # The day misses shoppers on purpose: past the coverage gate (tests/transform/test_coverage.py).
    argv.append("--accept-low-coverage")
    assert main([*argv, "--model", str(brightness_model_path)]) == 0
    ages = _published(tmp_path / "out", "receipt_ages").set_index("receipt_id")
    got = {
        r: (p if isinstance(p, str) else None, s)
        for r, p, s in ages[["photo", "status"]].itertuples()
    }
    assert got == day.expected
    assert (ages["status"] == "no_photo").sum() >= round(missing * 60) * 2
    assert not ages["photo"].dropna().duplicated().any()  # no photo serves two receipts
    clocks = _published(tmp_path / "out", "till_clocks")
    assert sorted(clocks["register_id"]) == ["R1", "R2"] and not clocks["drift_suspected"].any()


def test_a_fast_camera_is_reported_and_its_offset_repairs_the_matches(
    tmp_path: Path, brightness_model_path: Path, capsys: pytest.CaptureFixture
) -> None:
    day = busy_day(0.1, seed=3, camera_ahead_s={("S1", "R2"): 90.0})
    paths = _write(day, tmp_path)
    model = ["--model", str(brightness_model_path), "--day", str(DAY), "--accept-low-coverage"]
    assert main(["run", *model, *paths, "--out", str(tmp_path / "drift")]) == 0
    runs = _published(tmp_path / "drift", "runs")
    assert list(runs["clocks_off"].iloc[0]) == ["S1/R2"]
    assert re.search(r"\n  clocks_off +S1/R2\n", capsys.readouterr().out)
    clocks = _published(tmp_path / "drift", "till_clocks").set_index("register_id")
    assert clocks["drift_suspected"].to_dict() == {"R1": False, "R2": True}
    assert clocks.at["R2", "median_lag_s"] < -62.5  # photos 'after' payment: the clock is fast

    offsets = tmp_path / "offsets.csv"
    offsets.write_text("store_id,register_id,offset_s\nS1,R2,90\nS1,,0\n")
    out = tmp_path / "fixed"
    assert main(["run", *model, *paths, "--out", str(out), "--clock-offsets", str(offsets)]) == 0
    ages = _published(out, "receipt_ages").set_index("receipt_id")
    got = {
        r: (p if isinstance(p, str) else None, s)
        for r, p, s in ages[["photo", "status"]].itertuples()
    }
    assert got == day.expected
    assert list(_published(out, "runs")["clocks_off"].iloc[0]) == []
    assert _published(out, "till_clocks").set_index("register_id").at["R2", "offset_s"] == 90


def test_a_bad_offsets_file_is_one_sentence(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    paths = _write(busy_day(0.1, seed=1, receipts=5), tmp_path)
    offsets = tmp_path / "offsets.csv"
    offsets.write_text("store_id,register_id,offset_s\nS1,R2,90\nS1,R2,30\n")
    argv = ["run", "--day", str(DAY), *paths, "--out", str(tmp_path / "o")]
    assert main([*argv, "--clock-offsets", str(offsets)]) == 2
    assert "lists store S1, register R2, more than once" in capsys.readouterr().err
    offsets.write_text("store_id,register_id,offset_s\nS1,R2,soon\n")
    assert main([*argv, "--clock-offsets", str(offsets)]) == 2
    assert "column offset_s has 1 value(s)" in capsys.readouterr().err
