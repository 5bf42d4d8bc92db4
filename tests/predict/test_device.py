"""The GPU path (XLA, mixed precision, uint8 batches staged on the device ahead of the model),
run on this CPU by forcing it (`accelerate` on): no GPU is needed to check what it computes."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agebatch.config import PredictConfig
from agebatch.predict.device import (
    MIXED_POLICY,
    DeviceModel,
    Staged,
    accelerated,
    bucket,
    for_run,
    mixed_precision_copy,
)
from agebatch.predict.model import PREDICT_CHUNK, AgeModel, load_model
from agebatch.predict.stage import predict_paths
from tests.pictures import drawn_frame


def test_batches_are_padded_to_a_few_shapes() -> None:
    assert [bucket(n) for n in (1, 7, 8, 9, 64, 65, 256)] == [8, 8, 8, 16, 64, 128, 256]
    sizes = {bucket(n) for n in range(1, PREDICT_CHUNK + 1)}
    assert sizes == {8, 16, 32, 64, 128, 256}  # XLA compiles six shapes, not 256


def test_the_model_runs_plain_unless_on_a_gpu_or_forced(brightness_model: AgeModel) -> None:
    assert for_run(brightness_model, PredictConfig(accelerate="off")) is brightness_model
    assert for_run(brightness_model, PredictConfig()) is brightness_model  # auto, on this CPU
    forced = for_run(brightness_model, PredictConfig(accelerate="on"))
    assert isinstance(forced, DeviceModel)
    assert for_run(brightness_model, PredictConfig(accelerate="on")) is forced  # built once
    assert forced.keras_model.jit_compile is True  # XLA


def test_mixed_precision_keeps_the_input_and_head_in_float32() -> None:
    import keras

    inputs = keras.Input((16, 16, 3), name="pixels")
    x = keras.layers.Normalization(mean=100.0, variance=900.0, name="normalize")(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(5, name="logits")(x)
    x = keras.layers.Softmax(name="probabilities")(x)
    outputs = keras.layers.Dense(1, name="age")(x)
    model = keras.Model(inputs, outputs)
    mixed = mixed_precision_copy(model)
    policies = {layer.name: layer.dtype_policy.name for layer in mixed.layers}
    assert policies == {
        "pixels": "float32",
        "normalize": "float32",
        "conv": MIXED_POLICY,
        "pool": MIXED_POLICY,
        "logits": "float32",
        "probabilities": "float32",
        "age": "float32",
    }
    assert all(layer.dtype_policy.name == "float32" for layer in model.layers)  # a copy
    x = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3)).astype(np.float32)
    plain, half = model.predict_on_batch(x), mixed.predict_on_batch(x)
    assert half.dtype == np.float32
    np.testing.assert_allclose(half, plain, rtol=1e-2, atol=1e-2)
    assert not np.array_equal(half, plain)  # the convolution really ran in float16


def test_a_batch_is_staged_as_padded_uint8_chunks(brightness_model: AgeModel) -> None:
    device = accelerated(brightness_model)
    batch = np.full((PREDICT_CHUNK + 3, 64, 64, 3), 102, dtype=np.uint8)
    staged = device.stage(batch)
    assert isinstance(staged, Staged)
    assert [(tuple(t.shape), rows) for t, rows in staged.chunks] == [
        ((PREDICT_CHUNK, 64, 64, 3), PREDICT_CHUNK),
        ((8, 64, 64, 3), 3),
    ]
    import keras

    dtypes = {keras.backend.standardize_dtype(t.dtype) for t, _ in staged.chunks}
    assert dtypes == {"uint8"}  # the cast to float32 happens on the device
    ages = device.predict(staged)
    assert ages.shape == (PREDICT_CHUNK + 3,)
    np.testing.assert_allclose(ages, 40.0, atol=0.1)  # the brightness model: level / 2.55


def test_the_accelerated_stage_gives_the_plain_ages(
    tmp_path: Path, pattern_model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.pictures import PatternFaces, pattern_age

    model = load_model(pattern_model_path)
    rng = np.random.default_rng(3)
    paths = []
    for i, age in enumerate([12, 25, 38, 51, 64, 77, 30, 45, 20, 60, 33]):
        paths.append(tmp_path / f"{i:02d}.png")
        PatternFaces()(paths[-1], age, rng)
    Image.fromarray(drawn_frame((640, 480), [(300, 240, 150)])).save(tmp_path / "frame.png")
    paths.append(tmp_path / "frame.png")  # three views: a batch of another shape
    threads: dict[str, set[str]] = {"stage": set(), "predict": set()}
    stage, predict = DeviceModel.stage, DeviceModel.predict

    def staged(self, images):
        threads["stage"].add(threading.current_thread().name)
        return stage(self, images)

    def predicted(self, images):
        threads["predict"].add(threading.current_thread().name)
        return predict(self, images)

    monkeypatch.setattr(DeviceModel, "stage", staged)
    monkeypatch.setattr(DeviceModel, "predict", predicted)
    options = {"batch_size": 5, "workers": 2, "photo_kind": "auto"}
    plain, _ = predict_paths(paths, model, PredictConfig(**options, accelerate="off"))
    fast, _ = predict_paths(paths, model, PredictConfig(**options, accelerate="on"))
    assert [p.status for p in fast] == [p.status for p in plain] == ["ok"] * len(paths)
    np.testing.assert_allclose(
        [p.age for p in fast[:-1]], [pattern_age(p) for p in paths[:-1]], atol=0.05
    )
    np.testing.assert_allclose([p.age for p in fast], [p.age for p in plain], atol=0.05)
    # The next batch is staged by the main thread while the model thread runs the last one.
    assert threads == {"stage": {"MainThread"}, "predict": {"model_0"}}


def test_the_accelerated_model_averages_the_mirror_image_as_the_card_says(
    tmp_path: Path, pattern_model_path: Path
) -> None:
    from tests.pictures import PatternFaces

    loaded = load_model(pattern_model_path)
    card = loaded.card.model_copy(update={"test_time_augmentation": "flip"})
    flipping = AgeModel(card, loaded.keras_model, loaded.path)
    rng = np.random.default_rng(5)
    paths = []
    for i, age in enumerate([15, 30, 45, 60, 75]):
        paths.append(tmp_path / f"{i}.png")
        PatternFaces()(paths[-1], age, rng)
    options = {"batch_size": 4, "workers": 1, "photo_kind": "crops"}
    plain, _ = predict_paths(paths, loaded, PredictConfig(**options))
    flipped, _ = predict_paths(paths, flipping, PredictConfig(**options))
    fast, _ = predict_paths(paths, flipping, PredictConfig(**options, accelerate="on"))
    # The pattern model reads a mirror image differently: flip averaging shows in every age.
    assert all(abs(a.age - b.age) > 1 for a, b in zip(plain, flipped, strict=True))
    np.testing.assert_allclose([p.age for p in fast], [p.age for p in flipped], atol=0.05)
