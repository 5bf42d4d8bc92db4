"""`agebatch evaluate` on generated labelled faces, and its metrics on known numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agebatch.cli import main
from agebatch.training.evaluate import age_confusion, in_calibration, metrics, read_labelled
from tests.conftest import write_labelled_faces

CALIBRATION_OF_THE_FIRST_12 = [
    "000000.jpg",
    "000001.jpg",
    "000002.jpg",
    "000004.jpg",
    "000005.jpg",
    "000006.jpg",
    "000007.jpg",
    "000008.jpg",
    "000009.jpg",
]


def test_metrics_on_known_predictions() -> None:
    true = np.array([15, 16, 30, 40, 10, 70.0])
    predicted = np.array([26, 16, 20, 40, 12, 60.0])
    result = metrics(true, predicted)
    assert result["n"] == 6
    assert result["mae"] == pytest.approx((11 + 0 + 10 + 0 + 2 + 10) / 6)
    assert result["mae_by_band"] == {"0-12": 2, "13-17": 5.5, "25-34": 10, "35-44": 0, "65+": 10}
    assert result["teen_miss_rate"] == 0.5  # 15 read as 26
    assert result["false_challenge_rate"] == pytest.approx(1 / 3)  # 30 read as 20
    # true groups: <18 x3, 25-34, 35-44, 65+; predicted: <18 x2, 18-24, 25-34, 35-44, 55-64
    assert result["share_tvd"] == pytest.approx(2 / 6)
    assert result["share_tvd_corrected"] is None


def test_age_confusion_counts_floored_years() -> None:
    assert age_confusion(np.array([20, 20, 30.0]), np.array([24.9, 24.2, 31.0])) == [
        [20, 24, 2],
        [30, 31, 1],
    ]


def test_split_is_fixed_by_file_name() -> None:
    # Pinned: the cards' confusions were measured on this side of the split, so the rule (the
    # first 4 bytes of the SHA-1 of the file name, below half of 2**32) must never move.
    names = [f"{i:06d}.jpg" for i in range(12)]
    assert [n for n in names if in_calibration(n)] == CALIBRATION_OF_THE_FIRST_12
    many = [f"{i:06d}.jpg" for i in range(2000)]
    assert 900 < sum(in_calibration(n) for n in many) < 1100


def test_evaluate_command_writes_json(tmp_path: Path, brightness_model_path: Path, capsys) -> None:
    ages = [5, 14, 16, 20, 24, 30, 33, 41, 50, 60, 70, 80] * 3
    faces = write_labelled_faces(tmp_path / "faces", ages)
    model = tmp_path / "m.keras"
    model.write_bytes(brightness_model_path.read_bytes())
    model.with_name("m.card.json").write_text(
        brightness_model_path.with_name("brightness.card.json").read_text()
    )
    out = tmp_path / "eval.json"
    argv = ["evaluate", "--faces", str(faces), "--model", str(model), "--json", str(out)]
    assert main([*argv, "--write-confusion"]) == 0
    result = json.loads(out.read_text())
    for key in ("n", "mae", "mae_by_band", "teen_miss_rate", "false_challenge_rate"):
        assert key in result
    assert result["n"] == len(ages) and result["mae"] < 0.2  # brightness encodes the age
    assert result["teen_miss_rate"] == 0 and result["false_challenge_rate"] == 0
    assert result["share_tvd"] == pytest.approx(0, abs=1e-9)
    assert result["images_per_s"] > 0 and "faces/s" in capsys.readouterr().out
    card = json.loads(model.with_name("m.card.json").read_text())
    assert sum(n for *_, n in card["age_confusion"]["counts"]) == len(ages)
    # With the confusion in the card, the corrected distance is measured too.
    assert main(argv) == 0
    assert json.loads(out.read_text())["share_tvd_corrected"] == pytest.approx(0, abs=1e-6)


def test_read_labelled_sides_do_not_overlap(tmp_path: Path) -> None:
    faces = write_labelled_faces(tmp_path / "faces", list(range(1, 41)))
    calibration = read_labelled(faces, "calibration").paths
    holdout = read_labelled(faces, "holdout").paths
    assert not set(calibration) & set(holdout)
    assert len(calibration) + len(holdout) == 40


def test_confusion_record_names_its_faces() -> None:
    from agebatch.training.evaluate import LabelledFaces, confusion_record

    faces = LabelledFaces([Path("a.png"), Path("b.png"), Path("c.png")], np.array([20, 20, 30.0]))
    predicted = np.array([24.9, np.nan, 31.0])
    record = confusion_record(faces, predicted, "holdout")
    assert record == {
        "split": "holdout (sha1 of file name < 0.5)",
        "n": 2,
        "counts": [[20, 24, 1], [30, 31, 1]],
    }
    assert confusion_record(faces, predicted, "validation")["split"] == "validation"


def test_operating_curve_on_known_predictions() -> None:
    from agebatch.training.evaluate import operating_curve

    true = np.array([15, 16, 17, 10, 30, 40, 50, 60.0])
    predicted = np.array([19.9, 24.0, 27.0, 21.0, 20.0, 26.5, 33.0, 60.0])
    curve = {p["threshold"]: p for p in operating_curve(true, predicted, (20, 25, 27, 34))}
    # teens: 19.9, 24, 27; under 18: those and 21; adults: 20, 26.5, 33, 60
    assert [curve[t]["teen_miss"] for t in (20, 25, 27, 34)] == [2 / 3, 1 / 3, 1 / 3, 0]
    assert [curve[t]["under_18_miss"] for t in (20, 25, 27, 34)] == [3 / 4, 1 / 4, 1 / 4, 0]
    assert [curve[t]["adult_flag"] for t in (20, 25, 27, 34)] == [0, 1 / 4, 2 / 4, 3 / 4]
    # At the challenge age it is the teen_miss_rate and false_challenge_rate of the metrics.
    result = metrics(true, predicted)
    at_25 = next(p for p in result["operating_curve"] if p["threshold"] == 25)
    assert (at_25["teen_miss"], at_25["adult_flag"]) == (
        result["teen_miss_rate"],
        result["false_challenge_rate"],
    )
    assert [p["threshold"] for p in result["operating_curve"]] == list(range(20, 36))


def test_evaluate_writes_the_curve_and_error_to_the_card(
    tmp_path: Path, brightness_model_path: Path
) -> None:
    from agebatch.predict.card import ModelCard

    ages = [14.5, 16.5, 17.5, 22.5, 26.5, 29.5, 31.5, 40.5, 50.5, 70.5]  # clear of thresholds
    faces = write_labelled_faces(tmp_path / "faces", ages)
    model = tmp_path / "m.keras"
    model.write_bytes(brightness_model_path.read_bytes())
    model.with_name("m.card.json").write_text(
        brightness_model_path.with_name("brightness.card.json").read_text()
    )
    argv = ["evaluate", "--faces", str(faces), "--model", str(model)]
    assert main([*argv, "--write-curve", "--write-error", "--write-confusion"]) == 0
    card = ModelCard.read(model)
    curve = card.curve
    assert curve is not None and (curve.faces, curve.split) == ("faces", "all")
    assert (curve.n_teens, curve.n_under_18, curve.n_adults) == (3, 3, 6)
    # The brightness model reads each grey face within 0.2 years of its age.
    assert [p.teen_miss for p in curve.points] == [0.0] * 16
    adults = np.array(ages[4:])
    assert [p.adult_flag for p in curve.points] == [
        round(float((adults < t).mean()), 4) for t in range(20, 36)
    ]
    assert card.error.mae < 0.2 and card.error.mae_by_band["13-17"] < 0.2
    assert card.age_confusion is not None and card.age_confusion.n == len(ages)
    # Faces without teenagers cannot measure a curve: one sentence, nothing written.
    adults_only = write_labelled_faces(tmp_path / "adults", [30, 40])
    argv = ["evaluate", "--faces", str(adults_only), "--model", str(model), "--write-curve"]
    assert main(argv) == 2
    assert ModelCard.read(model).curve == curve


def test_conditions_command_measures_each_condition_as_one_camera(
    tmp_path: Path, brightness_model_path: Path, capsys
) -> None:
    ages = [5, 14, 16, 20, 24, 30, 33, 41, 50, 60, 70, 80] * 2
    faces = write_labelled_faces(tmp_path / "faces", ages)
    model = tmp_path / "m.keras"
    model.write_bytes(brightness_model_path.read_bytes())
    card = json.loads(brightness_model_path.with_name("brightness.card.json").read_text())
    card["quality"] = {"floors": {"exposure": 20.0}}
    model.with_name("m.card.json").write_text(json.dumps(card))
    out, work = tmp_path / "cond.json", tmp_path / "copies"
    argv = ["evaluate", "--faces", str(faces), "--model", str(model), "--json", str(out)]
    argv += ["--conditions", "clean,dim,jpeg", "--subset", "20", "--workdir", str(work)]
    assert main([*argv, "--write-conditions"]) == 0
    table = json.loads(out.read_text())
    assert list(table) == ["clean", "dim", "jpeg"]
    assert all(
        row["n"] + sum(n for s, n in row["statuses"].items() if s != "ok") == 20
        for row in table.values()
    )
    # The brightness model reads the age from the light: clean is near-exact, dim is not,
    # and its darkest faces are low_quality (under the exposure floor) rather than aged.
    assert table["clean"]["mae"] < 3 and table["clean"]["share_aged"] >= 0.9
    assert table["dim"]["mae"] > table["clean"]["mae"] + 5
    assert table["dim"]["statuses"].get("low_quality", 0) > 0
    assert table["dim"]["share_aged"] < table["clean"]["share_aged"]
    assert len(list((work / "dim").iterdir())) == 20 and not any(faces.rglob("*dim*"))
    assert "| dim |" in capsys.readouterr().out
    written = json.loads(model.with_name("m.card.json").read_text())["conditions"]
    assert set(written["table"]) == {"clean", "dim", "jpeg"} and "--subset 20" in written["command"]
    bad = ["evaluate", "--faces", str(faces), "--model", str(model), "--conditions", "fog"]
    assert main(bad) == 2 and "Unknown condition(s) fog" in capsys.readouterr().err


def test_condition_copies_are_seeded_and_change_the_photo(tmp_path: Path) -> None:
    from PIL import Image

    from agebatch.training.conditions import CONDITIONS, write_condition
    from tests.pictures import scene

    paths = []
    for seed in (1, 2):  # textured pictures: every condition changes them
        paths.append(tmp_path / f"{seed}.png")
        Image.fromarray(scene(200, 200, seed=seed)).save(paths[-1])
    for name in CONDITIONS:
        first = write_condition(name, paths, tmp_path / "a", seed=3)
        again = write_condition(name, paths, tmp_path / "b", seed=3)
        pixels = [np.asarray(Image.open(p).convert("RGB"), dtype=float) for p in first]
        assert all(
            np.array_equal(x, np.asarray(Image.open(q).convert("RGB"), dtype=float))
            for x, q in zip(pixels, again, strict=True)
        )
        source = np.asarray(Image.open(paths[0]).convert("RGB"), dtype=float)
        change = np.abs(pixels[0] - source).mean()
        assert (change == 0) if name == "clean" else (change > 0.5), name


def test_every_condition_is_named_by_the_cli_and_the_lighting_ones_do_what_they_say(
    tmp_path: Path,
) -> None:
    from PIL import Image

    from agebatch.cli.evaluate import CONDITION_NAMES
    from agebatch.training.conditions import (
        CONDITIONS,
        OVER_GAIN,
        OVER_NOISE,
        overexposed,
        write_condition,
    )
    from tests.pictures import scene

    assert tuple(CONDITIONS) == CONDITION_NAMES  # `--conditions all` measures every one
    source = tmp_path / "face.png"
    Image.fromarray(scene(200, 200, seed=5)).save(source)
    before = np.asarray(Image.open(source).convert("RGB"), dtype=float)
    (grey,) = write_condition("grey", [source], tmp_path, seed=1)
    g = np.asarray(Image.open(grey).convert("RGB"), dtype=int)
    assert (g[..., 0] == g[..., 1]).all() and (g[..., 1] == g[..., 2]).all()
    over = overexposed(Image.open(source).convert("RGB"), np.random.default_rng(1))
    o = np.asarray(over, dtype=float)
    bright = before * OVER_GAIN > 255 + 6 * OVER_NOISE  # over white, whatever the noise
    assert bright.any() and (o[bright] == 255).all()
    mid = (before > 40) & (before < 100)
    assert abs(np.median(o[mid] / before[mid]) - OVER_GAIN) < 0.05


def test_a_conditions_description_is_its_whole_first_sentence_with_values_not_names() -> None:
    from agebatch.training import conditions

    for name in conditions.CONDITIONS:
        text = conditions.describe(name)
        assert "\n" not in text and text.endswith("."), name  # not cut at a line's end
        constants = [w for w in vars(conditions) if w.isupper() and w in text.split()]
        assert not constants, (name, constants)
    assert (
        conditions.describe("dim") == "Exposure x 0.3 with sensor noise (Gaussian, 4 grey levels)."
    )
    assert conditions.describe("rotated").endswith("the corners filled from the mirrored scene.")
