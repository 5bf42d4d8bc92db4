"""`agebatch train`: both architectures train for real on generated faces, save, load and resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agebatch.cli import main
from agebatch.config import PredictConfig
from agebatch.errors import InputError
from agebatch.predict.card import ModelCard
from agebatch.predict.images import brightened
from agebatch.predict.model import bundled_model_path, load_model
from agebatch.predict.quality import chip_parts
from agebatch.training.train import TrainConfig, sample_weights, train, validation_split
from tests.conftest import write_labelled_faces

AGES = [4, 9, 14, 16, 17, 21, 24, 28, 30, 33, 38, 45, 52, 61, 70, 85]
PREDICT = PredictConfig(workers=2)


def _card(model: Path) -> dict:
    return ModelCard.read(model).to_dict()


def _validation_mae(model_path: Path, faces: Path) -> float:
    """The saved model's MAE on the validation faces its card lists, with the chips cut here
    (PIL, the card's box and resampling) rather than by agebatch; dim chips brightened by the
    card's light setting (agebatch.predict.images.brightened, tested on its own)."""
    from PIL import Image

    card = ModelCard.read(model_path)
    labels = dict(
        line.split(",") for line in (faces / "labels.csv").read_text().splitlines()[1:] if line
    )
    names = card.training["validation"]["files"]
    chips = []
    for name in names:
        with Image.open(faces / "final_files" / name) as image:
            w, h = image.size
            x0, y0, x1, y1 = card.crop or (0, 0, 1, 1)
            method = Image.Resampling[card.resample.upper()]
            chip = image.convert("RGB").resize(
                card.size, method, box=(x0 * w, y0 * h, x1 * w, y1 * h)
            )
        chip = np.asarray(chip, dtype=np.uint8)
        light = card.quality.light if card.quality else None
        exposure = chip_parts(chip)["exposure"]
        if light is not None and exposure < light.below:  # dim faces brightened, as the card says
            chip = brightened(chip[None], exposure, light.target)[0]
        chips.append(chip)
    ages = load_model(model_path).predict(np.stack(chips))
    return float(np.abs(ages - np.array([float(labels[n]) for n in names])).mean())


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 generated labelled faces (grey level = age) in the training layout."""
    return write_labelled_faces(tmp_path_factory.mktemp("faces"), AGES, stripes=30)


@pytest.fixture(scope="module")
def fine_tuned(faces: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled model fine-tuned for one epoch through the CLI."""
    out = tmp_path_factory.mktemp("trained") / "mine.keras"
    argv = ["train", "--faces", str(faces), "--out", str(out), "--epochs", "1"]
    assert main([*argv, "--batch-size", "8", "--val-share", "0.25", "--seed", "3"]) == 0
    return out


def test_validation_split_is_seeded_and_order_free() -> None:
    names = [f"{i:05d}.jpg" for i in range(1000)]
    mask = validation_split(names, 0.2, seed=1)
    assert mask.sum() == 200
    shuffled = names[::-1]
    again = validation_split(shuffled, 0.2, seed=1)
    assert {n for n, v in zip(shuffled, again, strict=True) if v} == {
        n for n, v in zip(names, mask, strict=True) if v
    }
    assert (validation_split(names, 0.2, seed=2) != mask).any()


def test_sample_weights_lift_rare_ages() -> None:
    ages = np.array([30.0] * 9 + [5.0])
    sqrt, inverse = sample_weights(ages, "sqrt"), sample_weights(ages, "inverse")
    assert sqrt.mean() == pytest.approx(1) and inverse.mean() == pytest.approx(1)
    assert sqrt[-1] / sqrt[0] == pytest.approx(3)  # 9 faces in the 30-34 bin, 1 in 5-9
    assert inverse[-1] / inverse[0] == pytest.approx(9)
    assert (sample_weights(ages, "none") == 1).all()


def test_fine_tuned_model_loads_with_its_card(fine_tuned: Path, faces: Path) -> None:
    card = _card(fine_tuned)
    training = card["training"]
    names = sorted(p.name for p in (faces / "final_files").iterdir())
    expected = sorted(n for n, v in zip(names, validation_split(names, 0.25, 3), strict=True) if v)
    assert training["validation"]["files"] == expected and training["validation"]["seed"] == 3
    assert training["epochs_run"] == 1 and [h["epoch"] for h in training["history"]] == [1]
    assert set(training["history"][0]) >= {"loss", "mae", "val_mae", "learning_rate"}
    assert "non-commercial research only" in card["licence"]["training_data"]
    assert card["licence"]["base_model"]["spdx"] == "CC0-1.0"
    assert card["error"]["n"] == 4 and card["error"]["measured_on"].startswith("validation")
    assert sum(n for *_, n in card["age_confusion"]["counts"]) == 4
    # Never the bundled model's curve: its own, measured on the validation faces, which hold
    # teenagers, under-18s and adults here (ages 9, 14, 16 and 38).
    labels = dict(line.split(",") for line in (faces / "labels.csv").read_text().split()[1:])
    assert sorted(float(labels[name]) for name in expected) == [9, 14, 16, 38]
    curve = card["operating_curve"]
    assert (curve["split"], curve["faces"]) == ("validation", faces.name)
    assert (curve["n_teens"], curve["n_under_18"], curve["n_adults"]) == (2, 3, 1)
    bundled = ModelCard.read(bundled_model_path()).version
    assert card["version"].startswith("default-trained+") and card["version"] != bundled
    assert training["baseline"]["model_version"] == bundled and training["baseline"]["n"] == 4
    # auto keeps flip averaging exactly when it measured lower on the validation faces
    flip = training["flip_tta"]
    wanted = "flip" if flip["val_mae_flip"] < flip["val_mae_plain"] else "none"
    assert card["test_time_augmentation"] == wanted and flip["flip"] == (wanted == "flip")
    assert not fine_tuned.with_name("mine.train").exists()  # work dir removed once saved
    # The saved model and card give the error the card states, on chips cut independently.
    assert _validation_mae(fine_tuned, faces) == pytest.approx(card["error"]["mae"], abs=1e-3)


def test_flip_averaging_follows_the_card(fine_tuned: Path, tmp_path: Path) -> None:
    for suffix in (".keras", ".card.json"):
        source = fine_tuned.with_name("mine" + suffix)
        (tmp_path / ("m" + suffix)).write_bytes(source.read_bytes())
    card = json.loads((tmp_path / "m.card.json").read_text())
    images = np.random.default_rng(0).integers(0, 255, (3, 64, 64, 3), dtype=np.uint8)
    card["test_time_augmentation"] = "none"
    (tmp_path / "m.card.json").write_text(json.dumps(card))
    plain = load_model(tmp_path / "m.keras")
    expected = (plain.predict(images) + plain.predict(images[:, :, ::-1])) / 2
    card["test_time_augmentation"] = "flip"
    (tmp_path / "m.card.json").write_text(json.dumps(card))
    np.testing.assert_allclose(load_model(tmp_path / "m.keras").predict(images), expected, 1e-5)


def test_evaluate_reads_the_validation_split(fine_tuned: Path, faces: Path, tmp_path, capsys):
    out = tmp_path / "eval.json"
    argv = ["evaluate", "--model", str(fine_tuned), "--faces", str(faces), "--split", "validation"]
    assert main([*argv, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["n"] == 4
    assert result["mae"] == pytest.approx(_card(fine_tuned)["error"]["mae"], abs=1e-6)


def test_interrupted_run_resumes_where_it_stopped(faces: Path, tmp_path: Path) -> None:
    import keras

    out, workdir = tmp_path / "resumed.keras", tmp_path / "work"
    config = TrainConfig(epochs=3, batch_size=8, val_share=0.25, patience=3)

    def interrupt(epoch: int, logs: dict) -> None:
        if epoch == 1:
            raise KeyboardInterrupt

    stop = keras.callbacks.LambdaCallback(on_epoch_end=interrupt)
    with pytest.raises(KeyboardInterrupt):
        train(faces, out, config, workdir=workdir, callbacks=[stop], predict=PREDICT, verbose=0)
    assert json.loads((workdir / "state.json").read_text())["epochs_run"] == 2
    assert not out.exists()

    with pytest.raises(InputError, match="--fresh"):
        train(faces, out, TrainConfig(epochs=4), workdir=workdir, predict=PREDICT, verbose=0)
    result = train(faces, out, config, workdir=workdir, predict=PREDICT, verbose=0)
    training = _card(out)["training"]
    history = training["history"]
    assert result.epochs_run == 3 and [h["epoch"] for h in history] == [1, 2, 3]
    assert history[training["best_epoch"] - 1]["val_mae"] == min(h["val_mae"] for h in history)
    assert not workdir.exists()


def test_resnet50_recipe_trains_a_step(faces: Path, tmp_path: Path) -> None:
    out = tmp_path / "resnet.keras"
    config = TrainConfig(arch="resnet50", image_size=32, epochs=1, batch_size=8, val_share=0.25)
    result = train(faces, out, config, predict=PREDICT, verbose=0)
    card = ModelCard.read(out)
    assert (card.size, card.crop) == ((32, 32), (0.0, 0.0, 1.0, 1.0))
    assert card.to_dict()["architecture"]["family"].startswith("ResNet50")
    assert result.metrics["n"] == 4
    model = load_model(out)
    assert model.keras_model.get_layer("age").activation.__name__ == "relu"
    assert _validation_mae(out, faces) == pytest.approx(result.metrics["mae"], abs=1e-3)


def test_bad_training_input_is_one_sentence(faces: Path, tmp_path: Path, capsys) -> None:
    cases = [
        (["--out", str(tmp_path / "m.h5")], "must end in .keras"),
        (["--out", str(tmp_path / "m.keras"), "--weights", "imagenet"], "resnet50 only"),
        (["--out", str(tmp_path / "m.keras"), "--val-share", "1.5"], "Setting val_share"),
        (
            ["--out", str(tmp_path / "m.keras"), "--arch", "resnet50", "--weights", "nope.h5"],
            "is not a file",
        ),
    ]
    for extra, message in cases:
        assert main(["train", "--faces", str(faces), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and err.count("\n") == 0
    assert main(["train", "--faces", str(tmp_path), "--out", str(tmp_path / "m.keras")]) == 2
    assert "labels.csv" in capsys.readouterr().err
    assert not ModelCard.path_for(tmp_path / "m.keras").exists()


def test_imagenet_weights_offline_say_what_to_do(monkeypatch, tmp_path: Path) -> None:
    import keras

    from agebatch.training.train import _resnet_weights

    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("network unreachable")

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(InputError, match="--weights PATH"):
        _resnet_weights("imagenet")


def test_distribution_loss_is_mae_plus_kl_and_finite_beyond_the_classes() -> None:
    from agebatch.training.train import distribution_loss, expected_age_mae

    ages = np.arange(0, 81, dtype=np.float32)
    loss, mae = distribution_loss(ages, sigma=2.0), expected_age_mae(ages)
    label = np.exp(-0.5 * ((ages - 30) / 2.0) ** 2)
    label /= label.sum()
    probs = np.stack([label, np.full(81, 1 / 81)]).astype(np.float32)
    y = np.array([30.0, 30.0], dtype=np.float32)
    values = np.asarray(loss(y, probs))
    assert values[0] == pytest.approx(abs(label @ ages - 30), abs=1e-3)  # KL of the label is 0
    assert values[1] > abs(40 - 30) + 1  # the uniform guess pays its MAE and a KL term
    np.testing.assert_allclose(np.asarray(mae(y, probs)), [abs(label @ ages - 30), 10], atol=1e-3)
    old = np.asarray(loss(np.array([116.0], dtype=np.float32), probs[:1]))
    assert np.isfinite(old).all()  # ages above the last class put the label on it


def test_extra_age_classes_start_close_to_the_bundled_net() -> None:
    from agebatch.training.train import TrainConfig, base_card, extend_ages

    bundled = load_model()
    card = base_card(TrainConfig())
    extended = extend_ages(bundled.keras_model, card, max_age=95)
    assert card["output"]["ages"][-16:] == [float(a) for a in range(80, 96)]
    assert extended.get_layer("probabilities").output.shape[-1] == 81 + 15
    images = np.random.default_rng(1).integers(0, 255, (8, 64, 64, 3)).astype(np.float32)
    # the net itself: the bundled card's flip averaging is not the network's output
    before = np.asarray(bundled.keras_model.predict_on_batch(images)).reshape(-1)
    after = np.asarray(extended.predict_on_batch(images)).reshape(-1)
    np.testing.assert_allclose(after, before, atol=0.5)
    assert (after >= before - 1e-3).all()  # the new classes can only pull ages up


def test_gpu_settings_build_resnet50_in_mixed_precision_and_restore_the_policy() -> None:
    import keras

    from agebatch.training.train import _build_net, base_card

    config = TrainConfig(arch="resnet50", image_size=32)
    net = _build_net(config, base_card(config), gpu=True)
    assert keras.mixed_precision.global_policy().name == "float32"
    assert net.get_layer("pool").dtype_policy.name == "mixed_float16"
    assert net.get_layer("age").dtype_policy.name == "float32"  # the age leaves in float32
    ages = np.asarray(net.predict_on_batch(np.zeros((2, 32, 32, 3), dtype=np.float32)))
    assert ages.dtype == np.float32 and ages.shape == (2, 1)


def test_augmentation_runs_in_training_only() -> None:
    from agebatch.training.train import augmenter

    image = np.zeros((4, 64, 64, 3), dtype=np.float32)
    image[:, :, :20] = 200.0  # a bright left band: flips, turns and brightness all show
    plain = augmenter(TrainConfig(), seed=1)
    assert [type(layer).__name__ for layer in plain.layers] == [
        "RandomFlip",
        "RandomRotation",
        "RandomBrightness",
    ]
    np.testing.assert_array_equal(np.asarray(plain(image, training=False)), image)
    assert not np.allclose(np.asarray(plain(image, training=True)), image)
    jitter = augmenter(TrainConfig(jitter=0.1), seed=1)
    assert [type(layer).__name__ for layer in jitter.layers][3:] == [
        "RandomZoom",
        "RandomTranslation",
    ]


def test_the_best_epoch_is_saved_not_the_last(faces: Path, tmp_path: Path) -> None:
    import keras

    class Ruin(keras.callbacks.Callback):
        """After the checkpoint of the last epoch, wreck the weights being trained."""

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if epoch == 1:
                for weight in self.model.trainable_weights:
                    weight.assign(np.zeros(weight.shape, dtype=weight.dtype))

    out = tmp_path / "best.keras"
    config = TrainConfig(epochs=2, batch_size=8, val_share=0.25, flip_tta="off")
    train(faces, out, config, callbacks=[Ruin()], predict=PREDICT, verbose=0)
    training = _card(out)["training"]
    best = min(h["val_mae"] for h in training["history"])
    assert training["flip_tta"]["val_mae_plain"] == pytest.approx(best, abs=2e-3)
