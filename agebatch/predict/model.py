"""Load a .keras age model with its card, and predict ages for batches of images."""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from agebatch.errors import InputError
from agebatch.predict.card import ModelCard
from agebatch.quiet import import_keras

log = logging.getLogger(__name__)

BUNDLED_MODEL = "age_v1.keras"
PREDICT_CHUNK = 256  # images per call of the Keras model (bounds its memory)
SMOKE_AGES = (0.0, 120.0)  # a model's ages for generated faces must fall in these years


def bundled_model_path() -> Path:
    """Path of the model shipped inside the package."""
    return Path(str(resources.files("agebatch.models").joinpath(BUNDLED_MODEL)))


class AgeModel:
    """A Keras age model and its card; `predict` turns uint8 RGB batches into ages."""

    def __init__(self, card: ModelCard, keras_model: Any, path: Path | None = None) -> None:
        self.card = card
        self.path = path
        self._model = keras_model

    @property
    def version(self) -> str:
        """The model version written beside every published age."""
        return self.card.version

    @property
    def keras_model(self) -> Any:
        """The underlying Keras model (for fine-tuning)."""
        return self._model

    def stage(self, images: np.ndarray) -> Any:
        """A batch made ready for predict ahead of time (a device copy when accelerated)."""
        return images

    def predict(self, images: np.ndarray) -> np.ndarray:
        """One age per image of an (N, height, width, 3) uint8 RGB batch.

        The card decides everything between pixels and years: its preprocessing, whether the
        output is an age or a distribution over its ages, and flip averaging (each age the mean
        of the image's and its mirror image's prediction).
        """
        ages = [
            self._predict(images[i : i + PREDICT_CHUNK])
            for i in range(0, len(images), PREDICT_CHUNK)
        ]
        return np.concatenate(ages) if ages else np.zeros(0)

    def _predict(self, images: np.ndarray) -> np.ndarray:
        ages = self._run(images)
        if self.card.flip:
            ages = (ages + self._run(images[:, :, ::-1])) / 2
        return ages

    def _run(self, images: Any) -> np.ndarray:
        y = np.asarray(self._model.predict_on_batch(self._inputs(images)), dtype=np.float64)
        if self.card.output.kind == "distribution":
            y = y.reshape(len(images), -1) @ np.asarray(self.card.output.ages)
        return y.reshape(len(images))

    def _inputs(self, images: np.ndarray) -> Any:
        """The model's float32 input, preprocessed as the card says."""
        x = images.astype(np.float32)
        if self.card.input.preprocessing == "scale_0_1":
            x /= 255.0
        return x


def load_model(path: Path | None = None) -> AgeModel:
    """Load a .keras model and its card (the bundled model when path is None)."""
    path = bundled_model_path() if path is None else Path(path)
    if not path.is_file():
        raise InputError(f"Model file {path} does not exist: check --model.")
    card = ModelCard.read(path)
    keras = import_keras()  # heavy: imported only when a model is really needed

    try:
        keras_model = keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for a bad file
        raise InputError(f"Model file {path} cannot be loaded by Keras: {error}") from None
    check_input_size(card, keras_model, path)
    model = AgeModel(card, keras_model, path)
    smoke_test(model, path)
    log.info("Loaded model %s (%s) on %s", card.version, path.name, compute_device())
    return model


def check_input_size(card: ModelCard, keras_model: Any, path: Path) -> None:
    """Refuse a card whose input size or colours disagree with the Keras model's input."""
    shape = keras_model.input_shape
    if isinstance(shape, list):  # a model with several inputs is no age model of ours
        raise InputError(f"Model file {path} takes {len(shape)} inputs; an age model takes one.")
    expected = (card.input.height, card.input.width, 3)
    found = tuple(shape[1:])
    if len(found) != 3 or any(
        f is not None and f != e for f, e in zip(found, expected, strict=True)
    ):
        shown = "x".join("any" if f is None else str(f) for f in found)
        raise InputError(
            f"Model card {ModelCard.path_for(path)} says the input is "
            f"{card.input.width}x{card.input.height} RGB, but the model in {path.name} takes "
            f"{shown}: fix the card's input height and width."
        )


def smoke_test(model: AgeModel, path: Path) -> None:
    """Predict two generated faces through the card's crop and resize; refuse a model whose
    ages are not finite or fall outside SMOKE_AGES (broken weights, a wrong card)."""
    import numpy as np

    from agebatch.predict.images import to_model_input
    from agebatch.sample import drawn_face

    card = model.card
    rng = np.random.default_rng(0)
    faces = [drawn_face(age, rng) for age in (25.0, 60.0)]
    batch = np.stack([to_model_input(face, card.size, card.crop, card.resample) for face in faces])
    try:
        ages = model.predict(batch)
    except Exception as error:  # Keras raises many types for a model that cannot run
        raise InputError(f"Model {path} fails on a generated face: {error}") from None
    low, high = SMOKE_AGES
    if ages.shape != (len(faces),) or not all(np.isfinite(a) and low <= a <= high for a in ages):
        raise InputError(
            f"Model {path} predicts {', '.join(f'{a:g}' for a in np.ravel(ages))} for two "
            f"generated faces: ages must be finite and within {low:g}-{high:g} years "
            "(check its weights and its card's output)."
        )


def compute_device() -> str:
    """'GPU' when the Keras backend sees one, else 'CPU'."""
    keras = import_keras()

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    if keras.backend.backend() == "jax":
        import jax

        return "GPU" if jax.default_backend() == "gpu" else "CPU"
    return "CPU"
