"""Benchmark: photos/s of the predict stage and of the model alone, on the same photos.

    python -m agebatch.cli.bench PHOTOS_DIR [--n 2000] [--batch-size 64] [--model M]

Not a test: it prints figures for the README, with the machine they ran on.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np

from agebatch.predict.images import PHOTO_KINDS, load_face
from agebatch.predict.loose import image_paths
from agebatch.predict.model import AgeModel, compute_device, load_model
from agebatch.predict.stage import predict_paths


def bench(
    paths: Sequence[Path],
    model: AgeModel,
    batch_size: int,
    workers: int,
    processes: bool,
    photo_kind: str = "crops",
) -> dict[str, float]:
    """Time the predict stage (decode + face finding + model) and the model alone."""
    warm = list(paths[:batch_size])
    options = {
        "batch_size": batch_size,
        "workers": workers,
        "processes": processes,
        "photos": photo_kind,
    }
    predict_paths(warm, model, **options)  # compile, warm caches
    _, stats = predict_paths(paths, model, **options)

    card = model.card
    load = partial(
        load_face, size=(card.width, card.height), crop=card.aligned_crop, resample=card.resample
    )
    images = np.stack([img for img in map(load, paths) if img is not None])
    started = time.perf_counter()
    for start in range(0, len(images), batch_size):
        model.predict(images[start : start + batch_size])
    model_s = time.perf_counter() - started
    return {
        "photos": len(paths),
        "predict_stage_photos_per_s": stats.photos_per_s,
        "model_only_photos_per_s": len(images) / model_s,
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Print the benchmark's figures and the machine they ran on."""
    parser = argparse.ArgumentParser(prog="python -m agebatch.cli.bench", description=__doc__)
    parser.add_argument("photos", type=Path, help="a folder of photos (searched recursively)")
    parser.add_argument("--n", type=int, default=2000, help="photos to use (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64, help="default: %(default)s")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--model", type=Path, help="default: the bundled model")
    parser.add_argument("--decode-processes", action="store_true", help="decode in processes")
    parser.add_argument(
        "--photo-kind",
        choices=PHOTO_KINDS,
        default="crops",
        help="what the photos are (default: %(default)s, the decode-only baseline)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    paths = image_paths([args.photos])[: args.n]
    model = load_model(args.model)
    import keras

    figures = bench(
        paths, model, args.batch_size, args.workers, args.decode_processes, args.photo_kind
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, device {compute_device()}, "
        f"Keras {keras.__version__} ({keras.backend.backend()} backend), model {model.version}"
    )
    print(
        f"photos: {figures['photos']} ({args.photo_kind}), batch size {args.batch_size}, "
        f"{args.workers} decode threads"
    )
    stage, alone = figures["predict_stage_photos_per_s"], figures["model_only_photos_per_s"]
    print(f"predict stage (decode + resize + model): {stage:8.1f} photos/s")
    print(f"model alone on ready tensors:            {alone:8.1f} photos/s")


if __name__ == "__main__":
    main()
