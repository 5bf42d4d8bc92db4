"""Clock offsets: NaN, inf and numbers that would overflow a time are refused when the file is
read, before any photo (issue #27); rows for cameras the day does not have are named."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from agebatch.errors import InputError
from agebatch.inputs.clocks import read_clock_offsets, unknown_cameras

HEADER = "store_id,register_id,offset_s\n"


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "1e308", "1e400", "86401"])
def test_an_offset_that_is_not_a_drift_is_one_sentence(tmp_path: Path, value: str) -> None:
    path = tmp_path / "offsets.csv"
    path.write_text(f"{HEADER}S01,R1,90\nS02,,{value}\n")
    with pytest.raises(InputError) as refused:
        read_clock_offsets(path)
    read = {"NaN": "nan", "-inf": "-inf", "1e400": "inf"}.get(value, repr(float(value)))
    assert str(refused.value) == (
        f"Clock offsets file {path}: store S02, all registers, has offset_s {read}, not a "
        "number of seconds within a day either way (-86,400 to 86,400)."
    )


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1e300])
def test_parquet_offsets_are_checked_too(tmp_path: Path, value: float) -> None:
    path = tmp_path / "offsets.parquet"
    pq.write_table(
        pa.table({"store_id": ["S01"], "register_id": ["R1"], "offset_s": [value]}), path
    )
    with pytest.raises(InputError) as refused:
        read_clock_offsets(path)
    assert str(refused.value) == (
        f"Clock offsets file {path}: store S01, register R1, has offset_s {value!r}, not a "
        "number of seconds within a day either way (-86,400 to 86,400)."
    )


def test_offsets_within_a_day_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "offsets.csv"
    path.write_text(f"{HEADER}S01,R1,-86400\nS01,,86400\nS02,R2,0.5\n")
    assert read_clock_offsets(path).column("offset_s").to_pylist() == [-86400.0, 86400.0, 0.5]


def test_rows_for_cameras_the_day_does_not_have_are_named(tmp_path: Path) -> None:
    path = tmp_path / "offsets.csv"
    path.write_text(f"{HEADER}S01,R1,90\nS01,R9,30\nS07,,12\nS02,,5\n")
    cameras = [("S01", "R1"), ("S01", "R2"), ("S02", "R1")]
    assert unknown_cameras(read_clock_offsets(path), cameras) == ["S01/R9", "S07/*"]


def test_unknown_cameras_are_named_in_the_log(tmp_path: Path, caplog) -> None:
    import pandas as pd

    from agebatch.inputs.clocks import name_unknown_cameras

    path = tmp_path / "offsets.csv"
    path.write_text(f"{HEADER}S01,R1,90\nS09,R1,30\n")
    captures = pd.DataFrame({"store_id": ["S01", "S01"], "register_id": ["R1", "R2"]})
    with caplog.at_level("WARNING"):
        assert name_unknown_cameras(path, read_clock_offsets(path), captures) == ["S09/R1"]
    assert caplog.messages == [
        f"Clock offsets file {path} lists 1 camera(s) with no photo this day, whose offsets "
        "correct nothing: S09/R1 (check the store and register ids)"
    ]
