"""Per-camera face regions: the file, its checks, and which region each capture gets."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from agebatch.config import parse_region
from agebatch.errors import InputError
from agebatch.inputs.regions import read_face_regions, regions_for


def test_parse_region() -> None:
    assert parse_region("0.2,0,0.8,1") == (0.2, 0.0, 0.8, 1.0)
    for bad in ("0.2,0,0.8", "a,b,c,d", "0.8,0,0.2,1", "0,0,1,1.5", "-0.1,0,1,1"):
        with pytest.raises(InputError, match="Face region"):
            parse_region(bad)


def test_register_then_store_then_default(tmp_path: Path) -> None:
    path = tmp_path / "regions.csv"
    path.write_text(
        "store_id,register_id,x0,y0,x1,y1\n007,R1,0.5,0,1,1\n007,,0,0,0.5,1\nS2,*,0,0.5,1,1\n"
    )
    regions = read_face_regions(path)
    assert regions[("007", "R1")] == (0.5, 0.0, 1.0, 1.0)  # ids stay text: 007, not 7
    got = regions_for(
        ["007", "007", "S2", "S3"], ["R1", "R2", "R1", "R1"], regions, (0.1, 0.1, 0.9, 0.9)
    )
    assert got == [(0.5, 0, 1, 1), (0, 0, 0.5, 1), (0, 0.5, 1, 1), (0.1, 0.1, 0.9, 0.9)]
    assert regions_for(["S1"], ["R1"], None) == [(0.0, 0.0, 1.0, 1.0)]


def test_parquet_regions(tmp_path: Path) -> None:
    path = tmp_path / "regions.parquet"
    pd.DataFrame(
        {"store_id": ["S1"], "register_id": ["R2"], "x0": [0.0], "y0": [0], "x1": [0.5], "y1": [1]}
    ).to_parquet(path)
    assert read_face_regions(path) == {("S1", "R2"): (0.0, 0.0, 0.5, 1.0)}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("store_id,register_id,x0,y0,x1\nS1,R1,0,0,1\n", "lacks the column"),
        ("store_id,register_id,x0,y0,x1,y1\nS1,R1,0,0,2,1\n", "row 2: Face region"),
        ("store_id,register_id,x0,y0,x1,y1\nS1,R1,0,0,1,1\nS1,R1,0,0,1,1\n", "more than once"),
        ("store_id,register_id,x0,y0,x1,y1\n,R1,0,0,1,1\n", "store_id is empty"),
    ],
)
def test_bad_region_files_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "regions.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_face_regions(path)


def test_missing_or_foreign_region_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_face_regions(tmp_path / "nope.csv")
    (tmp_path / "regions.txt").write_text("x")
    with pytest.raises(InputError, match=r"must be \.csv or \.parquet"):
        read_face_regions(tmp_path / "regions.txt")
