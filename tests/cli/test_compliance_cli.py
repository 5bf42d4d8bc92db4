"""`agebatch run` and the compliance report: --max-teen-miss takes the threshold from the
card's curve and records it in runs and alcohol_checks; a card without a curve, or a bad
age_check in the transactions, is one sentence and exit status 2."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from agebatch.cli import main
from agebatch.sample import make_sample_day
from tests.conftest import DAY
from tests.pictures import SolidFaces
from tests.transform.test_age_checks import CURVE


def _model_with(tmp_path: Path, brightness_model_path: Path, **card: object) -> Path:
    """A copy of the brightness model whose card has the given fields added."""
    model = tmp_path / "model" / "m.keras"
    model.parent.mkdir()
    shutil.copyfile(brightness_model_path, model)
    raw = json.loads(brightness_model_path.with_name("brightness.card.json").read_text())
    model.with_name("m.card.json").write_text(json.dumps({**raw, **card}))
    return model


def _argv(tmp_path: Path, model: Path, *extra: str) -> list[str]:
    sample = make_sample_day(tmp_path / "data", DAY, receipts=60, writer=SolidFaces(), seed=5)
    return [
        "run", "--day", str(DAY),
        "--photos", str(sample.photos),
        "--transactions", str(sample.transactions),
        "--catalog", str(sample.catalog),
        "--out", str(tmp_path / "out"),
        "--model", str(model),
        *extra,
    ]  # fmt: skip


def test_run_flags_under_the_threshold_chosen_from_the_curve(
    tmp_path: Path, brightness_model_path: Path, capsys: pytest.CaptureFixture
) -> None:
    model = _model_with(tmp_path, brightness_model_path, operating_curve=CURVE)
    assert main(_argv(tmp_path, model, "--max-teen-miss", "0.10")) == 0
    assert re.search(r"\n  flag_threshold +27\.0\n", capsys.readouterr().out)
    run = pd.read_parquet(tmp_path / "out" / "runs").iloc[0]
    assert (run["max_teen_miss"], run["flag_threshold"]) == (0.10, 27.0)
    assert (run["expected_teen_miss"], run["expected_adult_flag"]) == (0.10, 0.17)
    assert run["age_checks_recorded"]
    checks = pd.read_parquet(tmp_path / "out" / "alcohol_checks")
    ages = pd.read_parquet(tmp_path / "out" / "receipt_ages").set_index("receipt_id")
    seen = checks[checks["predicted_age"].notna()]
    assert (seen["predicted_age"] < 27).all() and (seen["flag_threshold"] == 27).all()
    assert run["missed_checks"] == checks["missed_check"].sum()
    # Every restricted sale whose shopper looked under 27 is listed, 25-27 included.
    listed = set(seen["receipt_id"])
    assert any(25 <= age < 27 for age in seen["predicted_age"])
    lines = pd.read_parquet(tmp_path / "data" / "transactions" / f"{DAY}.parquet").merge(
        pd.read_csv(tmp_path / "data" / "catalog.csv"), on="sku"
    )
    units = lines[lines["age_restricted"]].groupby("receipt_id")["quantity"].sum()
    sold = units[units > 0].index
    young = ages.loc[sold].query("status == 'matched' and predicted_age < 27").index
    assert set(young) <= listed


def _torn_receipt(tmp_path: Path) -> None:
    """Give the first receipt of the generated day two different age checks."""
    path = tmp_path / "data" / "transactions" / f"{DAY}.parquet"
    lines = pd.read_parquet(path)
    first = lines["receipt_id"] == lines["receipt_id"].iloc[0]
    lines.loc[first, "age_check"] = "id_seen"
    lines = pd.concat([lines, lines[first].assign(age_check="not_asked")])
    lines.to_parquet(path)


@pytest.mark.parametrize(
    ("card", "extra", "message"),
    [
        ({}, ["--max-teen-miss", "0.1"], "needs the operating curve in the card of brightness"),
        ({"operating_curve": CURVE}, ["--max-teen-miss", "0.01"], "No flag threshold of the"),
        ({"operating_curve": CURVE}, ["--max-teen-miss", "0.1", "--margin", "1"], "give one of"),
    ],
)
def test_bad_compliance_input_is_one_sentence_and_publishes_nothing(
    tmp_path: Path,
    brightness_model_path: Path,
    capsys: pytest.CaptureFixture,
    card: dict,
    extra: list[str],
    message: str,
) -> None:
    model = _model_with(tmp_path, brightness_model_path, **card)
    argv = _argv(tmp_path, model, *extra)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("agebatch: error: ") and message in err[-1]
    assert not any((tmp_path / "out").rglob("*.parquet"))


def test_a_receipt_with_two_age_checks_is_quarantined_and_the_day_publishes(
    tmp_path: Path, brightness_model_path: Path
) -> None:
    model = _model_with(tmp_path, brightness_model_path)
    argv = _argv(tmp_path, model)
    _torn_receipt(tmp_path)
    first = pd.read_parquet(tmp_path / "data" / "transactions" / f"{DAY}.parquet")
    assert main(argv) == 0
    listed = pd.read_parquet(tmp_path / "out" / "quarantined_receipts")
    assert listed[["receipt_id", "rule"]].values.tolist() == [
        [first["receipt_id"].iloc[0], "age_check_outcomes"]
    ]
