"""The model on an accelerator: XLA-compiled, in mixed precision, fed uint8 batches copied to
the device ahead of the model.

`for_run` picks the model a run uses: the plain Keras model on a CPU, the DeviceModel on a GPU
(`accelerate` auto), or either when forced (`accelerate` on/off; on runs this path on a CPU too,
which is how the tests check it). What changes on the device:
- XLA: the Keras model compiled with jit_compile (TensorFlow and JAX backends). Batches are
  padded to a power of two (at least MIN_BUCKET photos) so XLA compiles a handful of shapes,
  not one per batch (a frame gives several views, so batch shapes vary).
- Mixed precision: every layer but the input normalisation and the head (Dense, Softmax) runs in
  float16 (Keras `mixed_float16`); the age comes out in float32.
- Prefetch: `stage` copies a batch to the device as uint8 (a quarter of float32's bytes) and the
  stage calls it for the next batch while the model runs the current one; the cast to float32
  happens on the device, inside the compiled model.
"""

from __future__ import annotations

import copy
import logging
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from agebatch.config import Acceleration, PredictConfig
from agebatch.predict.model import PREDICT_CHUNK, AgeModel, compute_device

log = logging.getLogger(__name__)

MIN_BUCKET = 8
MIXED_POLICY = "mixed_float16"
# Layers that stay float32 in mixed precision: the input and its normalisation (raw 0-255
# pixels), and the head, where the softmax over ages and the expectation want full precision.
FLOAT32_LAYERS = frozenset({"InputLayer", "Normalization", "Rescaling", "Dense", "Softmax"})


def accelerates(config: PredictConfig) -> bool:
    """Whether a run with this config uses the accelerated model: on a GPU, or when forced."""
    mode = Acceleration(config.accelerate)
    return mode == Acceleration.ON or (mode == Acceleration.AUTO and compute_device() == "GPU")


def for_run(model: AgeModel, config: PredictConfig) -> AgeModel:
    """The model as a run uses it: accelerated on a GPU (or when forced), else as loaded."""
    return accelerated(model) if accelerates(config) else model


def accelerated(model: AgeModel) -> AgeModel:
    """The model XLA-compiled in mixed precision, fed on the device: built once per loaded
    model (kept while the model lives), the accelerated model itself as it is."""
    if isinstance(model, DeviceModel):
        return model
    if model not in _ACCELERATED:
        _ACCELERATED[model] = DeviceModel(model)
    return _ACCELERATED[model]


# The accelerated model of each loaded model (a weak key: it goes with the model).
_ACCELERATED: weakref.WeakKeyDictionary[AgeModel, AgeModel] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Staged:
    """A batch on the device: chunks padded to a bucket size, and how many rows are real."""

    chunks: list[tuple[Any, int]]


class DeviceModel(AgeModel):
    """An AgeModel XLA-compiled in mixed precision, fed uint8 batches on the device."""

    def __init__(self, model: AgeModel) -> None:
        keras_model = mixed_precision_copy(model.keras_model)
        import keras

        keras_model.compile(jit_compile=keras.backend.backend() in ("tensorflow", "jax"))
        super().__init__(model.card, keras_model, model.path)
        self._device = compute_device()
        log.info(
            "Model %s runs XLA-compiled in %s on %s", model.version, MIXED_POLICY, compute_device()
        )

    def stage(self, images: np.ndarray) -> Staged:
        """Copy a uint8 batch to the device in padded chunks (done while the model runs the
        previous batch)."""
        chunks = []
        for start in range(0, len(images), PREDICT_CHUNK):
            part = np.asarray(images[start : start + PREDICT_CHUNK], dtype=np.uint8)
            padded = np.zeros((bucket(len(part)), *part.shape[1:]), dtype=np.uint8)
            padded[: len(part)] = part
            chunks.append((to_device(padded, self._device), len(part)))
        return Staged(chunks)

    def predict(self, images: Any) -> np.ndarray:
        """One age per image of a uint8 batch, or of a batch staged ahead."""
        staged = images if isinstance(images, Staged) else self.stage(images)
        ages = [self._predict(chunk)[:rows] for chunk, rows in staged.chunks]
        return np.concatenate(ages) if ages else np.zeros(0)

    def _inputs(self, images: Any) -> Any:
        """uint8 on the device; the model casts it to its input dtype inside the compiled call."""
        if self.card.input.preprocessing == "scale_0_1":
            import keras

            return keras.ops.cast(images, "float32") / 255.0
        return images


def bucket(rows: int) -> int:
    """The padded batch size for `rows` photos: the next power of two, at least MIN_BUCKET."""
    return max(MIN_BUCKET, 1 << max(0, rows - 1).bit_length())


def to_device(batch: np.ndarray, device: str) -> Any:
    """The batch copied to the device ("GPU" or "CPU") the backend computes on."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.device(f"/{device}:0"):
            return tf.identity(batch)
    if backend == "jax":
        import jax

        return jax.device_put(batch)
    return keras.ops.convert_to_tensor(batch)


def mixed_precision_copy(keras_model: Any, policy: str = MIXED_POLICY) -> Any:
    """A copy of a Keras model with every layer but FLOAT32_LAYERS in `policy`, same weights."""
    config = copy.deepcopy(keras_model.get_config())
    _set_policy(config, policy)
    clone = type(keras_model).from_config(config)
    clone.set_weights(keras_model.get_weights())
    return clone


def _set_policy(node: Any, policy: str) -> None:
    """Set the dtype policy of every layer config under node (nested models included)."""
    if isinstance(node, dict):
        inner = node.get("config")
        layer = isinstance(inner, dict) and "dtype" in inner and "class_name" in node
        if layer and node["class_name"] not in FLOAT32_LAYERS:
            inner["dtype"] = policy
        for value in node.values():
            _set_policy(value, policy)
    elif isinstance(node, list):
        for value in node:
            _set_policy(value, policy)
