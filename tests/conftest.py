"""Shared fixtures: a real (tiny) Keras model whose age is a photo's brightness, sample days."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Prefect's server would otherwise send usage telemetry: the job reaches no one but its API.
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"

DAY = dt.date(2026, 11, 24)


def save_brightness_model(path: Path, size: int = 64) -> Path:
    """Save a real .keras model + card: predicted age = mean RGB level / 2.55.

    A flat grey photo of level round(age * 2.55) (tests/pictures.py, SolidFaces) is predicted
    within 0.2 years of that age, so tests know every age in advance. Blind to crop, resampling,
    colour order and mirroring: tests of those use the pattern model.
    """
    import keras

    inputs = keras.Input((size, size, 3), name="pixels")
    pooled = keras.layers.GlobalAveragePooling2D(name="mean_rgb")(inputs)
    age = keras.layers.Dense(1, name="age", activation="relu")(pooled)
    model = keras.Model(inputs, age, name="brightness_age")
    model.get_layer("age").set_weights([np.full((3, 1), 1 / (3 * 2.55)), np.zeros(1)])
    model.save(path)
    card = {
        "schema": "agebatch.model-card/1",
        "name": "brightness",
        "version": "brightness-test-1",
        "model_file": path.name,
        "input": {"height": size, "width": size, "color": "RGB", "preprocessing": "in_model"},
        "output": {"kind": "age"},
        "error": {"mae": 0.0, "mae_by_band": {"13-17": 0.0}},
    }
    path.with_name(path.stem + ".card.json").write_text(json.dumps(card))
    return path


def save_pattern_model(path: Path) -> Path:
    """Save a real .keras model + card whose age is a fixed weighted sum of the chip's pixels.

    The card asks for an aligned-crop box and box resampling (tests/pictures.py, PATTERN_*):
    photos from PatternFaces are read at their designed ages only if every step between the
    file and the model (decode, crop, resampling, colour order, no mirroring) is right.
    """
    import keras

    from tests.pictures import (
        PATTERN_BIAS,
        PATTERN_CROP,
        PATTERN_RESAMPLE,
        PATTERN_SIZE,
        PATTERN_WEIGHTS,
    )

    inputs = keras.Input((PATTERN_SIZE, PATTERN_SIZE, 3), name="pixels")
    flat = keras.layers.Flatten(name="flat")(inputs)
    age = keras.layers.Dense(1, name="age", activation="relu")(flat)
    model = keras.Model(inputs, age, name="pattern_age")
    model.get_layer("age").set_weights(
        [PATTERN_WEIGHTS.reshape(-1, 1).astype(np.float32), np.array([PATTERN_BIAS], np.float32)]
    )
    model.save(path)
    card = {
        "schema": "agebatch.model-card/1",
        "name": "pattern",
        "version": "pattern-test-1",
        "model_file": path.name,
        "input": {"height": PATTERN_SIZE, "width": PATTERN_SIZE, "preprocessing": "in_model"},
        "output": {"kind": "age"},
        "face": {"aligned_crop": {"box": list(PATTERN_CROP), "resample": PATTERN_RESAMPLE}},
        "error": {"mae": 0.0, "mae_by_band": {"13-17": 0.0}},
    }
    path.with_name(path.stem + ".card.json").write_text(json.dumps(card))
    return path


def captures_frame(*rows: tuple) -> pd.DataFrame:
    """Predicted captures from (photo, store, register, captured_at, age, status[, receipt_id])."""
    frame = pd.DataFrame(
        [(*row, None) if len(row) == 6 else row for row in rows],
        columns=[
            "photo",
            "store_id",
            "register_id",
            "captured_at",
            "predicted_age",
            "status",
            "receipt_id",
        ],
    )
    return frame.astype(
        {"predicted_age": "Float64", "captured_at": "datetime64[us]", "receipt_id": "string"}
    )


def compliance(**changes: object):
    """ComplianceInputs with the run config's default policy, changed as given."""
    from agebatch.config import RunConfig
    from agebatch.transform.compliance import ComplianceInputs

    policy = {name: RunConfig.model_fields[name].default for name in ComplianceInputs.POLICY}
    return ComplianceInputs(**{**policy, **changes})


def write_labelled_faces(root: Path, ages: list[float], stripes: int = 0) -> Path:
    """Labelled faces in the training layout (labels.csv + final_files/): grey level = age;
    with stripes, bands 25 px high alternately that much lighter and darker (the same mean
    level), so the face has the contrast the model card's quality floor asks for."""
    from PIL import Image

    (root / "final_files").mkdir(parents=True)
    rows = ["file_name,real_age"]
    bands = np.where((np.arange(200) // 25) % 2 == 0, stripes, -stripes)[:, None, None]
    for i, age in enumerate(ages):
        name = f"{i:06d}.png"
        grey = np.clip(round(age * 2.55) + bands, 0, 255).astype(np.uint8)
        Image.fromarray(np.broadcast_to(grey, (200, 200, 3)).copy()).save(
            root / "final_files" / name
        )
        rows.append(f"{name},{age}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="session")
def brightness_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of the brightness model, saved once per test session."""
    return save_brightness_model(tmp_path_factory.mktemp("model") / "brightness.keras")


@pytest.fixture(scope="session")
def cropping_model(tmp_path_factory: pytest.TempPathFactory):
    """The brightness model with an aligned-crop box and box resampling (crops and frames
    read differently), loaded once per test session."""
    from agebatch.predict.model import load_model

    path = save_brightness_model(tmp_path_factory.mktemp("cropping") / "bright.keras")
    card_file = path.with_name("bright.card.json")
    card = json.loads(card_file.read_text())
    card["face"] = {"aligned_crop": {"box": [0.025, 0.025, 0.975, 0.975], "resample": "box"}}
    card_file.write_text(json.dumps(card))
    return load_model(path)


@pytest.fixture(scope="session")
def pattern_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of the pattern model, saved once per test session."""
    return save_pattern_model(tmp_path_factory.mktemp("pattern") / "pattern.keras")


@pytest.fixture(scope="session")
def brightness_model(brightness_model_path: Path):
    """The brightness model, loaded once per test session."""
    from agebatch.predict.model import load_model

    return load_model(brightness_model_path)
