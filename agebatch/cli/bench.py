"""`agebatch bench`: photos/s of the predict stage and of the model alone, on the same photos.

Not a test: it prints figures for the docs, with the machine they ran on.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agebatch.cli.options import add_config_options, predict_config
from agebatch.config import PredictConfig
from agebatch.predict.images import load_face
from agebatch.predict.loose import image_paths
from agebatch.predict.model import AgeModel, compute_device, load_model
from agebatch.predict.stage import predict_paths


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The `bench` command."""
    bench = sub.add_parser(
        "bench",
        help="measure photos/s of the predict stage and of the model alone",
        description=__doc__,
    )
    bench.add_argument("photos", type=Path, help="a folder of photos (searched recursively)")
    bench.add_argument("--n", type=int, default=2000, help="photos to use (default: %(default)s)")
    add_config_options(bench, PredictConfig, skip=("face_region",))
    bench.set_defaults(handler=command)


def bench(paths: Sequence[Path], model: AgeModel, config: PredictConfig) -> dict[str, float]:
    """Time the predict stage (decode + face finding + model) and the model alone."""
    predict_paths(list(paths[: config.batch_size]), model, config)  # compile, warm caches
    _, stats = predict_paths(paths, model, config)
    card = model.card
    loaded = (load_face(path, card.size, card.crop, card.resample) for path in paths)
    images = np.stack([image for image in loaded if image is not None])
    started = time.perf_counter()
    for start in range(0, len(images), config.batch_size):
        model.predict(images[start : start + config.batch_size])
    model_s = time.perf_counter() - started
    return {
        "photos": len(paths),
        "predict_stage_photos_per_s": stats.photos_per_s,
        "model_only_photos_per_s": len(images) / model_s,
    }


def command(args: argparse.Namespace) -> int:
    """Print the benchmark's figures and the machine they ran on."""
    config = predict_config(args)
    paths = image_paths([args.photos])[: args.n]
    model = load_model(config.model)
    import keras

    figures = bench(paths, model, config)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, device {compute_device()}, "
        f"Keras {keras.__version__} ({keras.backend.backend()} backend), model {model.version}"
    )
    print(
        f"photos: {figures['photos']} ({config.photo_kind}), batch size {config.batch_size}, "
        f"{config.workers} decode {'processes' if config.decode_processes else 'threads'}"
    )
    stage, alone = figures["predict_stage_photos_per_s"], figures["model_only_photos_per_s"]
    print(f"predict stage (decode + resize + model): {stage:8.1f} photos/s")
    print(f"model alone on ready tensors:            {alone:8.1f} photos/s")
    return 0
