"""Every setting is checked before the model loads (#23.5, #26.7): a wrong --photos, a missing
day, a bad --policy, --margin or --max-teen-miss the card cannot serve are each one sentence and
exit status 2, found before Keras opens the model file. The model here is a file Keras cannot
load beside a valid card: had the model been loaded first, its error would be the one told."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agebatch.cli import main
from agebatch.sample import SampleDay, make_sample_day
from tests.conftest import DAY
from tests.pictures import SolidFaces

KERAS_ERROR = "cannot be loaded by Keras"


@pytest.fixture
def sample(tmp_path: Path) -> SampleDay:
    return make_sample_day(tmp_path / "data", DAY, receipts=12, writer=SolidFaces(), seed=3)


@pytest.fixture
def unloadable(tmp_path: Path, brightness_model_path: Path) -> Path:
    """A model file Keras refuses, beside the brightness model's card (mae per band, no curve)."""
    path = tmp_path / "model" / "unloadable.keras"
    path.parent.mkdir()
    path.write_bytes(b"not a keras file")
    card = brightness_model_path.with_name("brightness.card.json")
    shutil.copy(card, path.with_name("unloadable.card.json"))
    return path


def _run(sample: SampleDay, tmp_path: Path, model: Path, *extra: str) -> list[str]:
    return [
        "run", "--day", str(DAY), "--photos", str(sample.photos),
        "--transactions", str(sample.transactions), "--catalog", str(sample.catalog),
        "--out", str(tmp_path / "out"), "--model", str(model), *extra,
    ]  # fmt: skip


def _error(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    (line,) = [line for line in err if line.startswith("agebatch: error: ")]
    return line.removeprefix("agebatch: error: ")


def test_with_every_setting_right_the_model_is_what_fails(
    sample: SampleDay, tmp_path: Path, unloadable: Path, capsys: pytest.CaptureFixture
) -> None:
    """The control: the unloadable model is found once the settings pass."""
    assert KERAS_ERROR in _error(capsys, _run(sample, tmp_path, unloadable))


def test_a_wrong_photos_root_is_found_before_the_model_loads(
    sample: SampleDay, tmp_path: Path, unloadable: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = _run(sample, tmp_path, unloadable)
    argv[argv.index("--photos") + 1] = str(tmp_path / "no-such-folder")
    message = _error(capsys, argv)
    assert message == (
        f"Photos root {tmp_path / 'no-such-folder'} is not a folder: check --photos."
    )


def test_a_missing_day_is_found_before_the_model_loads(
    sample: SampleDay, tmp_path: Path, unloadable: Path, capsys: pytest.CaptureFixture
) -> None:
    shutil.rmtree(sample.photos / DAY.isoformat())
    assert "does not exist: check --photos and --day" in _error(
        capsys, _run(sample, tmp_path, unloadable)
    )
    make_sample_day(tmp_path / "data", DAY, receipts=12, writer=SolidFaces(), seed=3)
    for day_file in sample.transactions.glob(f"{DAY}.*"):
        day_file.unlink()
    assert f"No transactions for {DAY}" in _error(capsys, _run(sample, tmp_path, unloadable))


def test_a_bad_policy_file_is_found_before_the_model_loads(
    sample: SampleDay, tmp_path: Path, unloadable: Path, capsys: pytest.CaptureFixture
) -> None:
    policy = tmp_path / "policy.csv"
    policy.write_text("store_id,legal_age,challenge_age\nS01,21,18\n")
    message = _error(capsys, _run(sample, tmp_path, unloadable, "--policy", str(policy)))
    assert message == f"Policy file {policy}: store S01 needs 0 < legal_age <= challenge_age."
    missing = tmp_path / "nowhere.csv"
    message = _error(capsys, _run(sample, tmp_path, unloadable, "--policy", str(missing)))
    assert message == f"Policy file {missing} does not exist."


def test_a_margin_the_card_cannot_serve_is_found_before_the_model_loads(
    sample: SampleDay, tmp_path: Path, unloadable: Path, capsys: pytest.CaptureFixture
) -> None:
    card_path = unloadable.with_name("unloadable.card.json")
    card = json.loads(card_path.read_text())
    card["error"] = {"mae": 3.0, "mae_by_band": {}}
    card_path.write_text(json.dumps(card))
    message = _error(capsys, _run(sample, tmp_path, unloadable, "--margin", "1"))
    assert message.startswith("--margin needs the model's error per age band")


def test_a_teen_miss_off_the_card_is_found_before_the_model_loads(
    sample: SampleDay, tmp_path: Path, unloadable: Path, capsys: pytest.CaptureFixture
) -> None:
    message = _error(capsys, _run(sample, tmp_path, unloadable, "--max-teen-miss", "0.1"))
    assert message.startswith("--max-teen-miss needs the operating curve in the card of")


def test_backfill_checks_the_settings_before_loading_the_model(
    sample: SampleDay, tmp_path: Path, unloadable: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = _run(sample, tmp_path, unloadable, "--max-teen-miss", "0.1")
    argv[:3] = ["backfill", "--start", str(DAY), "--end", str(DAY)]
    assert _error(capsys, argv).startswith("--max-teen-miss needs the operating curve")


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("catalog", "Catalog file {path} does not exist."),
        ("face_regions", "Face region file {path} does not exist."),
        ("clock_offsets", "Clock offsets file {path} does not exist."),
        ("model", "Model file {path} does not exist: check --model."),
    ],
)
def test_each_settings_file_is_read_before_the_model_loads(
    sample: SampleDay, tmp_path: Path, unloadable: Path, setting: str, message: str
) -> None:
    from agebatch.errors import InputError
    from agebatch.preflight import check_settings

    path = tmp_path / "absent.csv"
    config = sample.config(tmp_path / "out", **{"model": unloadable, setting: path})
    with pytest.raises(InputError) as error:
        check_settings(config, DAY)
    assert str(error.value) == message.format(path=path)


def test_a_model_without_its_card_is_found_before_the_model_loads(
    sample: SampleDay, tmp_path: Path, unloadable: Path
) -> None:
    from agebatch.errors import InputError
    from agebatch.preflight import check_settings

    unloadable.with_name("unloadable.card.json").unlink()
    with pytest.raises(InputError, match=r"Model card .* is missing"):
        check_settings(sample.config(tmp_path / "out", model=unloadable), DAY)
    assert check_settings(sample.config(tmp_path / "out"), DAY).version  # the bundled card


def test_the_flow_checks_the_settings_before_it_loads_the_model(
    sample: SampleDay, tmp_path: Path, unloadable: Path
) -> None:
    """The flow's body raises before its first task (load) runs: no Prefect run is needed."""
    from agebatch.errors import InputError
    from agebatch.flows.nightly import _nightly

    config = sample.config(tmp_path / "out", model=unloadable, max_teen_miss=0.1)
    with pytest.raises(InputError, match=r"^--max-teen-miss needs the operating curve"):
        _nightly(config, DAY)
