"""Finding a day's photos: names, the manifest, ignored files, missing and empty days."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute  # pa.compute
import pytest

from agebatch.errors import InputError
from agebatch.inputs.captures import check_ties, find_captures

ZONE = "Europe/London"


def _touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")


def test_names_give_store_register_and_time(tmp_path: Path) -> None:
    _touch(
        tmp_path,
        "S1/R1/20261124T101500.jpg",
        "S1/R1/20261124T101500_2.JPEG",
        "S2/R3/20261124T235959.png",
        "S2/R3/notes.txt",  # not an image
        "S2/R3/holiday.jpg",  # an image without a capture time
        "S2/loose.jpg",  # not at store/register depth
        "Thumbs.db",
    )
    captures = find_captures(tmp_path, ZONE)
    table = captures.table
    assert table["photo"].tolist() == [
        "S1/R1/20261124T101500.jpg",
        "S1/R1/20261124T101500_2.JPEG",
        "S2/R3/20261124T235959.png",
    ]
    assert table["store_id"].tolist() == ["S1", "S1", "S2"]
    assert table["register_id"].tolist() == ["R1", "R1", "R3"]
    assert table["captured_at"].iloc[2] == pd.Timestamp("2026-11-24 23:59:59")
    assert table["receipt_id"].isna().all()
    assert (captures.ignored, captures.source) == (4, "names")


def test_a_path_that_is_not_utf8_is_ignored_counted_and_named_escaped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from agebatch.retention import fingerprint, photo_files

    _touch(tmp_path, "S1/R1/20261124T101500.jpg")
    root = bytes(tmp_path)
    for odd in (b"/S1/\xfeR\xff/20261124T101600.jpg", b"/S1/R1/20261124T1017\xff0.jpg"):
        os.makedirs(os.path.dirname(root + odd), exist_ok=True)
        Path(os.fsdecode(root + odd)).write_bytes(b"x")
    with caplog.at_level("WARNING", logger="agebatch.inputs.captures"):
        captures = find_captures(tmp_path, ZONE)
    # A register folder or a name no till can hold: counted, never in a table (no Parquet
    # file can hold it) and never fatal.
    assert captures.table["photo"].tolist() == ["S1/R1/20261124T101500.jpg"]
    assert captures.ignored == 2
    pa.Table.from_pandas(captures.table)  # the table is text a Parquet file holds
    [said] = [r.getMessage() for r in caplog.records]
    assert "Ignored 2 photo(s) whose path is not UTF-8" in said and "1017\\xff0.jpg" in said
    # The day's fingerprint (retention) still reads every photo file, odd names included.
    files = photo_files(tmp_path)
    assert len(files) == 3 and len(fingerprint(tmp_path, files)) == 64
    assert fingerprint(tmp_path, files) != fingerprint(tmp_path, files[:1] + files[2:])


def test_manifest_is_the_source_of_truth(tmp_path: Path) -> None:
    _touch(tmp_path, "cam/a.jpg", "cam/b.jpg", "cam/unlisted.jpg")
    (tmp_path / "captures.csv").write_text(
        "photo,store_id,register_id,captured_at,receipt_id\n"
        "cam/a.jpg,007,2,2026-11-24 10:00:00,R-1\n"
        "./cam/b.jpg,007,2,2026-11-24T10:05:00,\n"
    )
    captures = find_captures(tmp_path, ZONE)
    table = captures.table
    assert table["photo"].tolist() == ["cam/a.jpg", "cam/b.jpg"]
    assert table["store_id"].tolist() == ["007", "007"]  # ids stay text: leading zeros kept
    assert table["receipt_id"].tolist()[0] == "R-1" and pd.isna(table["receipt_id"].iloc[1])
    assert (captures.ignored, captures.source) == (1, "manifest")


def test_manifest_without_receipt_ids(tmp_path: Path) -> None:
    (tmp_path / "captures.csv").write_text(
        "photo,store_id,register_id,captured_at\nx.jpg,1,1,2026-11-24 10:00:00\n"
    )
    assert find_captures(tmp_path, ZONE).table["receipt_id"].isna().all()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("photo,store_id,captured_at\n", "lacks the column\\(s\\) register_id"),
        ("photo,store_id,register_id,captured_at\nx.jpg,1,1,yesterday\n", "not timestamps"),
        (
            "photo,store_id,register_id,captured_at\n" + "x.jpg,1,1,2026-11-24 10:00\n" * 2,
            "more than once",
        ),
    ],
)
def test_bad_manifest_is_one_clear_error(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "captures.csv").write_text(content)
    with pytest.raises(InputError, match=message):
        find_captures(tmp_path, ZONE)


def test_missing_day_is_an_error_and_empty_day_is_valid(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        find_captures(tmp_path / "2026-11-24", ZONE)
    (tmp_path / "2026-11-24").mkdir()
    captures = find_captures(tmp_path / "2026-11-24", ZONE)
    assert len(captures.table) == 0 and captures.ignored == 0


def test_utc_offsets_in_names_and_the_manifest(tmp_path: Path) -> None:
    # The autumn night of 2026 in London: 01:30 happens at 00:30 UTC (BST) and 01:30 UTC (GMT).
    _touch(tmp_path, "S1/R1/20261025T013000+0100.jpg", "S1/R1/20261025T013000Z.jpg")
    _touch(tmp_path, "S1/R1/20261025T013000.jpg")
    table = find_captures(tmp_path, ZONE).table.set_index("photo")
    assert table["captured_at"].tolist() == [pd.Timestamp("2026-10-25 01:30")] * 3
    assert table.loc["S1/R1/20261025T013000+0100.jpg", "captured_at_utc"] == pd.Timestamp(
        "2026-10-25 00:30"
    )
    assert table.loc["S1/R1/20261025T013000Z.jpg", "captured_at_utc"] == pd.Timestamp(
        "2026-10-25 01:30"
    )
    assert pd.isna(table.loc["S1/R1/20261025T013000.jpg", "captured_at_utc"])

    (tmp_path / "captures.csv").write_text(
        "photo,store_id,register_id,captured_at\n"
        "a.jpg,S1,R1,2026-03-29T00:59:00Z\n"  # just before the spring jump: GMT
        "b.jpg,S1,R1,2026-03-29T02:01:00+01:00\n"  # just after it: BST
        "c.jpg,S1,R1,2026-03-29 01:30:00\n"  # in the gap, no offset: taken as written
    )
    manifest = find_captures(tmp_path, ZONE).table.set_index("photo")
    assert manifest["captured_at"].astype(str).tolist() == [
        "2026-03-29 00:59:00",
        "2026-03-29 02:01:00",
        "2026-03-29 01:30:00",
    ]
    assert manifest["captured_at_utc"].tolist()[:2] == [
        pd.Timestamp("2026-03-29 00:59:00"),
        pd.Timestamp("2026-03-29 01:01:00"),
    ]
    assert pd.isna(manifest["captured_at_utc"].iloc[2])


def test_an_empty_manifest_is_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "captures.csv").write_text("")
    with pytest.raises(InputError, match=r"captures\.csv is empty: it needs the header"):
        find_captures(tmp_path, ZONE)


MANIFEST_HEADER = "photo,store_id,register_id,captured_at\n"


@pytest.mark.parametrize(
    "photo",
    [
        "/srv/faces/someone.jpg",  # absolute
        "../2026-11-23/S1/R1/a.jpg",  # another day's folder
        "S1/R1/../../../elsewhere/a.jpg",
        "..\\elsewhere\\a.jpg",  # Windows separators are read as '/'
        "C:/faces/a.jpg",
        "",
        "S1/R1/a\x01.jpg",
    ],
)
def test_a_manifest_photo_outside_the_day_folder_is_one_sentence_naming_its_line(
    tmp_path: Path, photo: str
) -> None:
    rows = "".join(f"S1/R1/{i}.jpg,S1,R1,2026-11-24 10:00:{i:02d}\n" for i in range(3))
    (tmp_path / "captures.csv").write_text(
        MANIFEST_HEADER + rows + f'"{photo}",S1,R1,2026-11-24 10:01:00\n'
    )
    with pytest.raises(InputError, match=r"captures\.csv, line 5: photo .* is not a path inside"):
        find_captures(tmp_path, ZONE)


def test_relative_names_that_stay_inside_are_kept(tmp_path: Path) -> None:
    (tmp_path / "captures.csv").write_text(
        MANIFEST_HEADER
        + "./S1/R1/a.jpg,S1,R1,2026-11-24 10:00:00\n"
        + "S1\\R1\\b.jpg,S1,R1,2026-11-24 10:00:01\n"
        + "S1/R1/..c.jpg,S1,R1,2026-11-24 10:00:02\n"  # two dots in a name, not '..'
    )
    photos = find_captures(tmp_path, ZONE).table["photo"].tolist()
    assert photos == ["S1/R1/a.jpg", "S1/R1/b.jpg", "S1/R1/..c.jpg"]


def test_a_manifest_that_is_a_link_out_or_a_pipe_is_refused(tmp_path: Path) -> None:
    day = tmp_path / "day"
    day.mkdir()
    elsewhere = tmp_path / "captures.csv"
    elsewhere.write_text(MANIFEST_HEADER + "a.jpg,S1,R1,2026-11-24 10:00:00\n")
    (day / "captures.csv").symlink_to(elsewhere)
    with pytest.raises(InputError, match="is refused, a link that resolves outside the day"):
        find_captures(day, ZONE)
    (day / "captures.csv").unlink()
    os.mkfifo(day / "captures.csv")  # refused at once, not waited on, not skipped
    with pytest.raises(InputError, match=r"is refused, not a regular file \(a named pipe\)"):
        find_captures(day, ZONE)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("x.jpg,S1,R1,2026-11-24 10:00:00,extra\n", "line 40,000 has 5 field\\(s\\) where"),
        ("x.jpg,S1\n", "line 40,000 has 2 field\\(s\\) where the header has 4"),
        ('x.jpg,"S1,R1,2026-11-24 10:00:00\n', "line 40,000 has a field over 131,072"),
        ('x.jpg,"S1"x,R1,2026-11-24 10:00:00\n', "line 40,000 cannot be read as CSV"),
        ("x.jpg,S1,R1,soon\n", "not timestamps \\(first: 'soon' on line 40,000\\)"),
        ("/x.jpg,S1,R1,2026-11-24 10:00:00\n", "line 40,000: photo '/x.jpg' is not a path"),
    ],
)
def test_a_bad_line_deep_in_a_big_manifest_is_named(tmp_path: Path, bad: str, message: str) -> None:
    rows = (f"S1/R1/{i}.jpg,S1,R1,2026-11-24 10:00:00\n" for i in range(2, 50_000))
    lines = [bad if i == 40_000 else row for i, row in enumerate(rows, start=2)]
    (tmp_path / "captures.csv").write_text(MANIFEST_HEADER + "".join(lines))
    with pytest.raises(InputError, match=message):
        find_captures(tmp_path, ZONE)


def test_a_short_manifest_quote_or_bad_byte_is_named(tmp_path: Path) -> None:
    manifest = tmp_path / "captures.csv"
    manifest.write_text(MANIFEST_HEADER + 'a.jpg,S1,R1,2026-11-24 10:00:00\nb.jpg,"S1,R1,x\n')
    with pytest.raises(InputError, match="line 3 opens a quote that is never closed"):
        find_captures(tmp_path, ZONE)
    manifest.write_bytes(MANIFEST_HEADER.encode() + b"a.jpg,S1,R1,2026-11-24 10:00:00\nb\xff\n")
    with pytest.raises(InputError, match="line 3 is not UTF-8 text"):
        find_captures(tmp_path, ZONE)


@pytest.mark.parametrize("word", ["now", "today", "tomorrow", " NOW ", "noon", "1", "10:00"])
def test_a_manifest_time_must_be_a_written_time(tmp_path: Path, word: str) -> None:
    """Issue #27: pandas reads 'now' and 'today' as the clock of the run; a manifest's time is
    one the camera wrote, date first."""
    header = "photo,store_id,register_id,captured_at\n"
    (tmp_path / "captures.csv").write_text(
        f"{header}a.jpg,S1,R1,2026-11-24 10:00\nb.jpg,S1,R1,{word}\n"
    )
    with pytest.raises(InputError) as refused:
        find_captures(tmp_path, ZONE)
    assert str(refused.value) == (
        f"Capture manifest {tmp_path / 'captures.csv'}: column captured_at has 1 value(s) that "
        f"are not timestamps (first: {word!r} on line 3)."
    )


def test_a_header_only_manifest_is_a_day_without_captures(tmp_path: Path) -> None:
    (tmp_path / "captures.csv").write_text("photo,store_id,register_id,captured_at,receipt_id\n")
    _touch(tmp_path, "S1/R1/20261124T100000.jpg")  # not listed: ignored, as any unlisted file
    captures = find_captures(tmp_path, ZONE)
    assert (len(captures.table), captures.ignored, captures.source) == (0, 1, "manifest")
    assert list(captures.table.columns) == [
        "photo", "store_id", "register_id", "captured_at", "receipt_id", "captured_at_utc"
    ]  # fmt: skip


def test_a_manifest_tie_to_another_stores_receipt_is_one_sentence(tmp_path: Path) -> None:
    """Issue #27: a manifest row may tie a photo to a receipt, but only to one of its store."""
    (tmp_path / "captures.csv").write_text(
        "photo,store_id,register_id,captured_at,receipt_id\n"
        "a.jpg,S1,R1,2026-11-24 10:00,T1\n"
        "b.jpg,S1,R1,2026-11-24 10:01,T2\n"
        "c.jpg,S2,R1,2026-11-24 10:02,\n"
    )
    captures = find_captures(tmp_path, ZONE)
    lines = pa.table({"receipt_id": ["T1", "T1", "T2", "T3"], "store_id": ["S1", "S1", "S2", "S2"]})
    with pytest.raises(InputError) as refused:
        check_ties(captures, lines)
    assert str(refused.value) == (
        f"Capture manifest {tmp_path / 'captures.csv'} ties photo 'b.jpg' of store S1 to receipt "
        "'T2' of store S2 (1 such tie(s)): a photo is only tied to a receipt of its own store."
    )
    check_ties(captures, lines.filter(pa.compute.field("receipt_id") != "T2"))  # no tie crosses
