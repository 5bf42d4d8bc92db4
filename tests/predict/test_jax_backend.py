"""The Keras-on-JAX path (KERAS_BACKEND=jax, the `jax` extra on a GPU) on this CPU: the model
saved by the TensorFlow backend loads under JAX, a batch is staged with jax.device_put, and
the plain and the XLA-compiled mixed-precision model give the ages TensorFlow gives.

Keras picks its backend once per process, so the JAX run is a process of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from agebatch.predict.model import load_model

ROOT = Path(__file__).resolve().parents[2]
LEVELS = (51, 102, 153, 204)  # grey levels the brightness model reads as ages 20, 40, 60, 80
UNDER_JAX = """
import json, sys
import keras, numpy as np
from pathlib import Path
from agebatch.predict.device import accelerated
from agebatch.predict.model import compute_device, load_model

model = load_model(Path(sys.argv[1]))
levels = np.array(json.loads(sys.argv[2]), dtype=np.uint8)
batch = np.broadcast_to(levels[:, None, None, None], (len(levels), 64, 64, 3)).copy()
fast = accelerated(model)
staged = fast.stage(batch)
print(json.dumps({
    "backend": keras.backend.backend(),
    "device": compute_device(),
    "plain": model.predict(batch).tolist(),
    "accelerated": fast.predict(batch).tolist(),
    "staged": [type(chunk).__module__ for chunk, _ in staged.chunks],
}))
"""


def test_the_model_runs_on_keras_jax(brightness_model_path: Path) -> None:
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", UNDER_JAX, str(brightness_model_path), json.dumps(LEVELS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert (found["backend"], found["device"]) == ("jax", "CPU")
    assert all(module.startswith("jax") for module in found["staged"]), found["staged"]
    batch = np.broadcast_to(np.array(LEVELS, np.uint8)[:, None, None, None], (4, 64, 64, 3))
    under_tf = load_model(brightness_model_path).predict(batch.copy())
    np.testing.assert_allclose(found["plain"], under_tf, atol=1e-3)
    np.testing.assert_allclose(found["accelerated"], [20, 40, 60, 80], atol=0.5)  # float16
