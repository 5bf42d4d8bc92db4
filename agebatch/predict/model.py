"""Load a .keras age model with its model card, and predict ages for batches of images."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from agebatch.errors import InputError

log = logging.getLogger(__name__)

BUNDLED_MODEL = "age_v1.keras"
CARD_SCHEMA = "agebatch.model-card/1"


@dataclass(frozen=True)
class ModelCard:
    """What a model expects and promises: input size, preprocessing, output, version, error."""

    name: str
    version: str
    height: int
    width: int
    preprocessing: str  # "in_model": raw 0..255 RGB floats go in; "scale_0_1": x / 255
    output_kind: str  # "age": one scalar; "distribution": probabilities over `ages`
    ages: tuple[float, ...] | None = None
    aligned_crop: tuple[float, float, float, float] | None = None  # box of a face crop, fractions
    resample: str = "bilinear"  # PIL resampling used to shrink the crop: bilinear, box, …
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def error(self) -> dict[str, Any]:
        """The card's measured error (mae, mae_by_band, …), or {} when it has none."""
        return self.raw.get("error") or {}

    @property
    def group_confusion(self) -> dict[str, Any] | None:
        """True-by-predicted age-group counts from a validation set, if the card has them."""
        return self.raw.get("group_confusion")


def card_path(model_path: Path) -> Path:
    """The card that belongs to a model file: age_v1.keras -> age_v1.card.json."""
    return model_path.with_name(model_path.stem + ".card.json")


def bundled_model_path() -> Path:
    """Path of the model shipped inside the package."""
    return Path(str(resources.files("agebatch.models").joinpath(BUNDLED_MODEL)))


def read_card(model_path: Path) -> ModelCard:
    """Read and check the model card beside a model file."""
    path = card_path(model_path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(
            f"Model card {path} is missing: every model needs a card saying its input and output."
        ) from None
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"Model card {path} cannot be read as JSON: {error}.") from None
    try:
        inp, out = raw["input"], raw["output"]
        crop = (raw.get("face") or {}).get("aligned_crop") or {}
        card = ModelCard(
            name=str(raw["name"]),
            version=str(raw["version"]),
            height=int(inp["height"]),
            width=int(inp["width"]),
            preprocessing=str(inp.get("preprocessing", "in_model")),
            output_kind=str(out["kind"]),
            ages=tuple(float(a) for a in out["ages"]) if out.get("ages") else None,
            aligned_crop=tuple(float(v) for v in crop["box"]) if crop.get("box") else None,
            resample=str(crop.get("resample", "bilinear")),
            raw=raw,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"Model card {path} lacks or mistypes the field {error}.") from None
    if card.preprocessing not in ("in_model", "scale_0_1"):
        raise InputError(f"Model card {path}: unknown input preprocessing {card.preprocessing!r}.")
    if card.output_kind not in ("age", "distribution") or (
        card.output_kind == "distribution" and not card.ages
    ):
        raise InputError(
            f"Model card {path}: output must be kind 'age', or 'distribution' with its 'ages'."
        )
    return card


class AgeModel:
    """A loaded Keras age model and its card; `predict` turns uint8 RGB batches into ages."""

    def __init__(self, path: Path, card: ModelCard, keras_model: Any) -> None:
        self.path = path
        self.card = card
        self._model = keras_model

    @property
    def version(self) -> str:
        """The model version written beside every published age."""
        return self.card.version

    @property
    def keras_model(self) -> Any:
        """The underlying Keras model (for fine-tuning)."""
        return self._model

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Predict one age per image of an (N, height, width, 3) uint8 RGB batch.

        When the card says test_time_augmentation "flip", each age is the mean of the
        image's and its mirror image's prediction.
        """
        ages = self._predict(images)
        if self.card.raw.get("test_time_augmentation") == "flip":
            ages = (ages + self._predict(images[:, :, ::-1])) / 2
        return ages

    def _predict(self, images: np.ndarray) -> np.ndarray:
        x = images.astype(np.float32)
        if self.card.preprocessing == "scale_0_1":
            x /= 255.0
        y = np.asarray(self._model.predict_on_batch(x), dtype=np.float64)
        if self.card.output_kind == "distribution":
            y = y.reshape(len(x), -1) @ np.asarray(self.card.ages)
        return y.reshape(len(x))


def load_model(path: Path | None = None) -> AgeModel:
    """Load a .keras model and its card (the bundled model when path is None)."""
    path = bundled_model_path() if path is None else Path(path)
    if not path.is_file():
        raise InputError(f"Model file {path} does not exist: check --model.")
    card = read_card(path)
    import keras  # heavy: imported only when a model is really needed

    try:
        keras_model = keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for a bad file
        raise InputError(f"Model file {path} cannot be loaded by Keras: {error}") from None
    log.info("Loaded model %s (%s) on %s", card.version, path.name, compute_device())
    return AgeModel(path, card, keras_model)


def compute_device() -> str:
    """'GPU' when the Keras backend sees one, else 'CPU'."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    if keras.backend.backend() == "jax":
        import jax

        return "GPU" if jax.default_backend() == "gpu" else "CPU"
    return "CPU"
