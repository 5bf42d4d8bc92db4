"""The `agebatch` command: runs, backfills, loose predictions and bad input, in-process."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from agebatch.cli import main
from agebatch.sample import SampleDay, make_sample_day
from tests.conftest import DAY
from tests.pictures import SolidFaces


@pytest.fixture
def sample(tmp_path: Path) -> SampleDay:
    return make_sample_day(tmp_path / "data", DAY, receipts=40, writer=SolidFaces(), seed=5)


def _args(sample: SampleDay, out: Path, model: Path, *extra: str) -> list[str]:
    return [
        "--photos", str(sample.photos),
        "--transactions", str(sample.transactions),
        "--catalog", str(sample.catalog),
        "--out", str(out),
        "--model", str(model),
        *extra,
    ]  # fmt: skip


def test_run_publishes_and_prints_where(
    sample: SampleDay, tmp_path: Path, brightness_model_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code = main(["run", "--day", str(DAY), *_args(sample, tmp_path / "out", brightness_model_path)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "receipts_matched" in printed and "read_parquet(" in printed
    ages = pd.read_parquet(tmp_path / "out" / "receipt_ages")
    assert len(ages) == 40


def test_backfill_runs_each_day_and_reports_failures(
    sample: SampleDay, tmp_path: Path, brightness_model_path: Path, capsys: pytest.CaptureFixture
) -> None:
    make_sample_day(tmp_path / "data", DAY + dt.timedelta(days=1), receipts=10, writer=SolidFaces())
    # DAY + 2 has neither photos nor transactions: reported, the other days still published.
    argv = ["backfill", "--start", str(DAY), "--end", str(DAY + dt.timedelta(days=2))]
    code = main([*argv, *_args(sample, tmp_path / "out", brightness_model_path)])
    captured = capsys.readouterr()
    assert code == 1
    assert "2 of 3 days published; failed: 2026-11-26" in captured.out
    days = sorted(p.name for p in (tmp_path / "out" / "receipt_ages").iterdir())
    assert days == ["day=2026-11-24", "day=2026-11-25"]


def test_predict_loose_images(
    tmp_path: Path, brightness_model_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from PIL import Image

    folder = tmp_path / "anywhere" / "deep"
    folder.mkdir(parents=True)
    Image.new("RGB", (80, 80), (102, 102, 102)).save(folder / "grey.png")  # 102 / 2.55 = 40
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "ages.csv"
    assert (
        main(
            [
                "predict",
                str(tmp_path / "anywhere"),
                "--out",
                str(out),
                "--model",
                str(brightness_model_path),
            ]
        )
        == 0
    )
    table = pd.read_csv(out).set_index("status")
    assert table.loc["ok", "predicted_age"] == pytest.approx(40.0, abs=0.01)
    assert pd.isna(table.loc["unreadable", "predicted_age"])
    assert "Wrote 2 predictions" in capsys.readouterr().out


def test_predict_keeps_a_photo_whose_name_is_not_utf8(
    tmp_path: Path, brightness_model_path: Path
) -> None:
    from PIL import Image

    folder = tmp_path / "camera"
    folder.mkdir()
    Image.new("RGB", (80, 80), (102, 102, 102)).save(folder / "plain.png")
    odd = bytes(folder) + b"/odd\xff\xfe.png"  # a name a camera's file system may hold
    Image.new("RGB", (80, 80), (102, 102, 102)).save(odd, format="PNG")
    out = tmp_path / "ages.parquet"
    args = ["predict", str(folder), "--out", str(out), "--model", str(brightness_model_path)]
    assert main(args) == 0
    table = pd.read_parquet(out).set_index("path")
    assert len(table) == 2 and (table["status"] == "ok").all()
    assert table.loc[str(folder / "odd\\xff\\xfe.png"), "predicted_age"] == pytest.approx(
        40.0, abs=0.01
    )


@pytest.mark.parametrize("where", ["folder", "through a file"])
def test_predict_refuses_an_output_it_cannot_write_before_reading_a_photo(
    tmp_path: Path, where: str, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "a file").write_text("x")
    out = tmp_path / "ages.csv" if where == "folder" else tmp_path / "a file" / "ages.csv"
    if where == "folder":
        out.mkdir()
    # No model named: a refusal after the work would first load the bundled model.
    assert main(["predict", str(tmp_path), "--out", str(out), "--model", "no-such.keras"]) == 2
    said = capsys.readouterr().err
    assert said.count("\n") == 1 and "no-such.keras" not in said
    assert ("is a folder" if where == "folder" else "is not a folder") in said


def test_predict_frames_without_a_face(tmp_path: Path, brightness_model_path: Path) -> None:
    from PIL import Image

    from tests.pictures import scene

    Image.fromarray(scene(640, 480, seed=2)).save(tmp_path / "frame.jpg")
    Image.new("RGB", (80, 80), (102, 102, 102)).save(tmp_path / "grey.png")
    out = tmp_path / "ages.csv"
    args = ["predict", str(tmp_path), "--out", str(out), "--model", str(brightness_model_path)]
    assert main([*args, "--photo-kind", "auto"]) == 0
    table = pd.read_csv(out).set_index("path")
    assert table.loc[str(tmp_path / "frame.jpg"), "status"] == "no_face"
    assert pd.isna(table.loc[str(tmp_path / "frame.jpg"), "predicted_age"])
    assert table.loc[str(tmp_path / "grey.png"), "predicted_age"] == pytest.approx(40.0, abs=0.01)
    # As crops (the old behaviour) the frame is resized whole and gets an age.
    assert main([*args, "--photo-kind", "crops"]) == 0
    assert (pd.read_csv(out)["status"] == "ok").all()


def test_an_empty_till_export_on_a_day_with_photos_is_refused_unless_accepted(
    sample: SampleDay, tmp_path: Path, brightness_model_path: Path, capsys: pytest.CaptureFixture
) -> None:
    export = sample.transactions / f"{DAY}.parquet"
    header = ",".join(pd.read_parquet(export).columns)
    export.unlink()
    (sample.transactions / f"{DAY}.csv").write_text(header + "\n")  # the header, no line
    argv = ["run", "--day", str(DAY), *_args(sample, tmp_path / "out", brightness_model_path)]
    assert main(argv) == 3
    said = capsys.readouterr().err
    assert "holds no line but its cameras took" in said and "--accept-low-coverage" in said
    assert not (tmp_path / "out" / "receipt_ages").exists()
    assert main([*argv, "--accept-low-coverage"]) == 0  # a day told to publish as it is


def test_bad_face_region_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["predict", str(tmp_path), "--out", "x.csv", "--face-region", "0.5,0,0.2,1"])
    assert exit_.value.code == 2
    assert "must have 0 <= x0 < x1 <= 1" in capsys.readouterr().err


def _break(sample: SampleDay, problem: str, tmp_path: Path) -> tuple[list[str], str]:
    """Damage one input; return extra CLI args and the expected message."""
    tx = sample.transactions / f"{DAY}.parquet"
    if problem == "missing day folder":
        shutil.rmtree(sample.photos / str(DAY))
        return [], "Photo folder .* does not exist"
    if problem == "missing transactions":
        tx.unlink()
        return [], "No transactions for 2026-11-24"
    if problem == "unreadable transactions":
        tx.write_bytes(b"garbage")
        return [], "Transactions file .* cannot be read"
    if problem == "missing column":
        pd.read_parquet(tx).drop(columns="amount").to_parquet(tx)
        return [], "lacks the column\\(s\\) amount"
    if problem == "wrong type":
        lines = pd.read_parquet(tx)
        lines["paid_at"] = "soon"
        lines.to_parquet(tx)
        return [], "column paid_at has 1.* not of type timestamp"
    if problem == "missing catalog":
        sample.catalog.unlink()
        return [], "Catalog file .* does not exist"
    if problem == "unreadable model":
        bad = tmp_path / "bad.keras"
        bad.write_bytes(b"not a model")
        card = {"name": "x", "version": "1", "input": {"height": 64, "width": 64}}
        (tmp_path / "bad.card.json").write_text(json.dumps({**card, "output": {"kind": "age"}}))
        return ["--model", str(bad)], "Model file .*bad.keras cannot be loaded"
    if problem == "bad face regions":
        regions = tmp_path / "regions.csv"
        regions.write_text("store_id,register_id,x0,y0,x1,y1\nS01,R1,0.5,0,0.4,1\n")
        return ["--face-regions", str(regions)], "Face region file .*regions.csv, row 2: "
    raise AssertionError(problem)


@pytest.mark.parametrize(
    "problem",
    [
        "missing day folder",
        "missing transactions",
        "unreadable transactions",
        "missing column",
        "wrong type",
        "missing catalog",
        "unreadable model",
        "bad face regions",
    ],
)
def test_bad_input_is_one_sentence_and_publishes_nothing(
    problem: str,
    sample: SampleDay,
    tmp_path: Path,
    brightness_model_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    extra, message = _break(sample, problem, tmp_path)
    out = tmp_path / "out"
    code = main(["run", "--day", str(DAY), *_args(sample, out, brightness_model_path, *extra)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("agebatch: error: ")
    assert re.search(message, err[-1]), err[-1]
    assert not any(out.rglob("*.parquet"))


def test_run_reads_csv_transactions_and_parquet_catalog(
    sample: SampleDay, tmp_path: Path, brightness_model_path: Path
) -> None:
    tx = sample.transactions / f"{DAY}.parquet"
    lines = pd.read_parquet(tx)
    lines["store_id"] = lines["store_id"].str.replace("S", "0")  # ids with leading zeros
    lines.to_csv(tx.with_suffix(".csv"), index=False)
    tx.unlink()
    catalog = tmp_path / "catalog.parquet"
    pd.read_csv(sample.catalog).to_parquet(catalog)
    args = _args(sample, tmp_path / "out", brightness_model_path)
    args[args.index("--catalog") + 1] = str(catalog)
    assert main(["run", "--day", str(DAY), *args]) == 0
    ages = pd.read_parquet(tmp_path / "out" / "receipt_ages")
    assert len(ages) == 40 and set(ages["store_id"]) <= {"001", "002", "003"}
    # Photos live under S01/…, the tills now say 001: no receipt can match a photo.
    assert set(ages["status"]) == {"no_photo"}
    purchases = pd.read_parquet(tmp_path / "out" / "age_group_purchases")
    # Exact to the cent: revenue is DECIMAL(18, 2), the CSV's amounts are read as decimals.
    assert purchases["revenue"].sum() == sum(Decimal(f"{a:.2f}") for a in lines["amount"])
