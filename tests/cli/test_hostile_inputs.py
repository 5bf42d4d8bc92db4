"""A day with hostile inputs, run through `agebatch run`: refused photos are counted and their
receipts marked, a 16-bit photo gets its true age, and a bad manifest or transactions file is
one sentence with nothing published."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from agebatch.cli import main
from agebatch.sample import SampleDay, make_sample_day
from tests.cli.test_cli import _args
from tests.conftest import DAY
from tests.pictures import SolidFaces


@pytest.fixture
def sample(tmp_path: Path) -> SampleDay:
    return make_sample_day(tmp_path / "data", DAY, receipts=40, writer=SolidFaces(), seed=5)


def _run(argv: list[str]) -> int:
    """main(argv) in a thread, so that a run that hangs fails the test instead of stalling it."""
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(main(argv)), daemon=True)
    thread.start()
    thread.join(timeout=300)
    assert codes, "the run did not end"
    return codes[0]


def test_refused_photos_are_counted_and_their_receipts_unchecked(
    sample: SampleDay, tmp_path: Path, brightness_model_path: Path
) -> None:
    folder = sample.photos / str(DAY)
    truth = sample.truth[sample.truth["status"] == "matched"].reset_index(drop=True)
    linked, piped, deep = truth.iloc[0], truth.iloc[1], truth.iloc[2]
    # A face from elsewhere, linked in under a matched photo's name: never read.
    stranger = tmp_path / "stranger.png"
    Image.new("RGB", (80, 80), (200, 200, 200)).save(stranger)
    (folder / linked["photo"]).unlink()
    (folder / linked["photo"]).symlink_to(stranger)
    # A named pipe under a photo's name: refused at once, the run goes on.
    (folder / piped["photo"]).unlink()
    os.mkfifo(folder / piped["photo"])
    # The same grey face stored as a 16-bit PNG: the same age, not white's.
    level = np.asarray(Image.open(folder / deep["photo"]).convert("L"))
    Image.fromarray(level.astype(np.uint16) * 257).save(folder / deep["photo"])

    out = tmp_path / "out"
    assert _run(["run", "--day", str(DAY), *_args(sample, out, brightness_model_path)]) == 0

    runs = pd.read_parquet(out / "runs").iloc[0]
    assert (runs["photos_refused"], runs["receipts_refused"]) == (2, 2)
    assert runs["photos_unreadable"] == (sample.truth["status"] == "unreadable").sum()
    ages = pd.read_parquet(out / "receipt_ages").set_index("receipt_id")
    for row in (linked, piped):
        receipt = ages.loc[row["receipt_id"]]
        assert receipt["status"] == "refused" and pd.isna(receipt["predicted_age"])
        assert receipt["photo"] == row["photo"]  # the name in the day folder, not the target
    assert ages.loc[deep["receipt_id"], "status"] == "matched"
    assert ages.loc[deep["receipt_id"], "predicted_age"] == pytest.approx(deep["true_age"], abs=0.3)
    # A refused photo leaves its restricted sale unchecked, like one that is unreadable.
    checks = pd.read_parquet(out / "alcohol_checks").set_index("receipt_id")
    refused = [r for r in (linked["receipt_id"], piped["receipt_id"]) if r in checks.index]
    assert (checks.loc[refused, "reason"] == "refused").all()
    compliance = pd.read_parquet(out / "cashier_compliance")
    unchecked = checks["reason"].isin(["no_photo", "unreadable", "no_face", "refused"]).sum()
    assert compliance["unchecked_receipts"].sum() == unchecked


@pytest.mark.parametrize(
    "problem",
    ["manifest outside", "manifest pipe", "semicolons", "mostly ragged"],
)
def test_a_bad_manifest_or_transactions_file_is_one_sentence_and_publishes_nothing(
    problem: str,
    sample: SampleDay,
    tmp_path: Path,
    brightness_model_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    folder = sample.photos / str(DAY)
    tx = sample.transactions / f"{DAY}.parquet"
    lines = pd.read_parquet(tx)
    if problem == "manifest outside":
        photo = sample.truth["photo"].dropna().iloc[0]
        store, register = photo.split("/")[:2]
        (folder / "captures.csv").write_text(
            "photo,store_id,register_id,captured_at\n"
            f"{photo},{store},{register},{DAY} 10:00:00\n"
            f"/srv/other/face.png,{store},{register},{DAY} 10:00:05\n"
        )
        message = r"captures\.csv, line 3: photo '/srv/other/face\.png' is not a path inside"
    elif problem == "manifest pipe":
        os.mkfifo(folder / "captures.csv")
        message = r"captures\.csv is refused, not a regular file \(a named pipe\)"
    elif problem == "semicolons":
        tx.unlink()
        lines.to_csv(sample.transactions / f"{DAY}.csv", index=False, sep=";")
        message = r"\.csv is separated by semicolons, not by commas"
    elif problem == "mostly ragged":
        tx.unlink()
        text = lines.to_csv(index=False).splitlines()
        text[1:] = [line + ",extra" if i % 3 else line for i, line in enumerate(text[1:])]
        (sample.transactions / f"{DAY}.csv").write_text("\n".join(text) + "\n")
        width = len(lines.columns)
        message = rf"lines cannot be read \(first: line 3 has {width + 1} field\(s\) where the"
    out = tmp_path / "out"
    code = _run(["run", "--day", str(DAY), *_args(sample, out, brightness_model_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("agebatch: error: ")
    assert re.search(message, err[-1]), err[-1]
    assert not any(out.rglob("*.parquet"))


@pytest.mark.parametrize(
    "problem",
    ["two registers", "another day", "nan quantity", "ragged line", "unclosed quote", "age check"],
)
def test_a_bad_line_quarantines_its_receipt_and_the_day_publishes(
    problem: str, sample: SampleDay, tmp_path: Path, brightness_model_path: Path
) -> None:
    tx = sample.transactions / f"{DAY}.parquet"
    lines = pd.read_parquet(tx)
    receipt = lines.loc[0, "receipt_id"]
    if problem == "two registers":
        lines.loc[len(lines)] = {**lines.iloc[0].to_dict(), "register_id": "R9"}
    elif problem == "another day":
        lines.loc[0, "paid_at"] = pd.Timestamp(DAY) - pd.Timedelta(days=3)
    elif problem == "nan quantity":
        lines.loc[0, "quantity"] = float("nan")
    elif problem == "age check":
        lines["age_check"] = None
        lines.loc[0, "age_check"] = "maybe"
    if problem in ("ragged line", "unclosed quote"):  # a CSV line whose fields do not parse
        tx.unlink()
        text = lines.to_csv(index=False).splitlines()
        first = text[1].split(",")
        first[3] = '"' + first[3] if problem == "unclosed quote" else first[3]
        text[1] = ",".join(first) + (",extra" if problem == "ragged line" else "")
        (sample.transactions / f"{DAY}.csv").write_text("\n".join(text) + "\n")
    else:
        lines.to_parquet(tx)
    out = tmp_path / "out"
    assert _run(["run", "--day", str(DAY), *_args(sample, out, brightness_model_path)]) == 0
    listed = pd.read_parquet(out / "quarantined_receipts")
    assert list(listed["receipt_id"]) == [receipt]
    assert pd.read_parquet(out / "runs")["receipts_quarantined"].tolist() == [1]
    ages = pd.read_parquet(out / "receipt_ages")
    assert receipt not in set(ages["receipt_id"]) and len(ages) == 39
    kept = lines[lines["receipt_id"] != receipt]
    sales = pd.read_parquet(out / "store_sales")  # exact: the aggregates withhold small cells
    day = sales[(sales["level"] == "store") & (sales["category"] == "all")]
    revenue = day["revenue"].map(float).sum()
    assert revenue == pytest.approx(kept["amount"].sum(), abs=0.005)


def test_a_store_with_too_many_quarantined_receipts_refuses_the_day_unless_accepted(
    sample: SampleDay, tmp_path: Path, brightness_model_path: Path, capsys
) -> None:
    tx = sample.transactions / f"{DAY}.parquet"
    lines = pd.read_parquet(tx)
    store = lines.loc[0, "store_id"]
    broken = lines["receipt_id"].isin(lines.loc[lines["store_id"] == store, "receipt_id"][:15])
    lines.loc[broken, "quantity"] = float("nan")
    lines.to_parquet(tx)
    out = tmp_path / "out"
    args = ["run", "--day", str(DAY), *_args(sample, out, brightness_model_path)]
    assert _run(args) == 3
    assert "Quarantined too many receipts" in capsys.readouterr().err
    assert not any(out.rglob("*.parquet"))
    assert _run([*args, "--accept-quarantine"]) == 0
    assert pd.read_parquet(out / "runs")["quarantine_gate"].tolist() == ["accepted"]
