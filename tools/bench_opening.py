"""What the safe open, the honest conversion and the time budget cost per photo.

    python tools/bench_opening.py [--photos 400] [--rounds 5] [--faces DIR]

Times one thread reading the same generated JPEG crops (200 x 200, or the first --photos real
faces of DIR/final_files) and frames (1280 x 720) as the bundled card's input, five ways:
Pillow opening the path as before issue #12 (draft, EXIF, convert), read_rgb with Pillow only
(the direct JPEG decode of agebatch/predict/jpeg.py switched off), read_rgb without limits,
read_rgb inside the day folder with the pixel budget, and load_photos (the same in chunks of
32, each chunk on a watched helper thread with the time budget). Prints the best round's
microseconds per photo.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from agebatch.config import PredictConfig
from agebatch.predict import images
from agebatch.predict.card import ModelCard
from agebatch.predict.images import InputSpec, draft_side, load_photos, read_rgb, to_model_input
from agebatch.predict.model import bundled_model_path
from agebatch.predict.opening import Limits


def _before(path: Path, max_side: int | None) -> Image.Image:
    """read_rgb as it was: Image.open on the path, no checks, convert('RGB')."""
    with Image.open(path) as image:
        if max_side is not None and image.format == "JPEG":
            image.draft("RGB", (max_side, max_side))
        image.load()
        return ImageOps.exif_transpose(image).convert("RGB")


def _pillow_only(path: Path, max_side: int | None) -> Image.Image | None:
    """read_rgb with the direct JPEG decode switched off (every file read by Pillow)."""
    direct, images.decode_plain = images.decode_plain, lambda *args: None
    try:
        return read_rgb(path, max_side)
    finally:
        images.decode_plain = direct


def _best(read: Callable[[Path], object], paths: list[Path], rounds: int) -> float:
    """Best round's seconds per photo."""
    for path in paths[:20]:
        read(path)
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for path in paths:
            read(path)
        best = min(best, (time.perf_counter() - started) / len(paths))
    return best


def _watched(paths: list[Path], spec: InputSpec, rounds: int) -> float:
    """Best round's seconds per photo of load_photos in chunks of 32 (a batch of 64 on two
    workers), each chunk watched."""
    items = [(path, (0.0, 0.0, 1.0, 1.0)) for path in paths]
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for start in range(0, len(items), 32):
            load_photos(items[start : start + 32], spec)
        best = min(best, (time.perf_counter() - started) / len(paths))
    return best


def main() -> None:
    """Print microseconds per photo for each way of reading."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--faces", type=Path, help="real face crops (DIR/final_files/*.jpg)")
    args = parser.parse_args()
    config = PredictConfig()
    card = ModelCard.read(bundled_model_path())
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        print("photos\tbefore_us\tpillow_only_us\tread_rgb_us\tlimits_us\twatched_us")
        for kind, shape in (("crops", (200, 200, 3)), ("frames", (720, 1280, 3))):
            day, paths = Path(folder), []
            for i in range(args.photos if kind == "crops" else max(1, args.photos // 8)):
                path = day / f"{kind}{i}.jpg"
                Image.fromarray(rng.integers(90, 160, shape, dtype=np.uint8)).save(path)
                paths.append(path)
            if kind == "crops" and args.faces is not None:
                day = args.faces / "final_files"
                paths = sorted(day.glob("*.jpg"))[: args.photos]
            side = draft_side(card.size, card.crop) if kind == "crops" else None
            limits = Limits(day, config.max_pixels, config.decode_timeout_s)
            spec = InputSpec.from_card(card, "crops", limits)

            def input_of(image: Image.Image | None) -> object:
                if image is None:
                    return None
                return to_model_input(image, card.size, card.crop, card.resample)

            ways = [
                lambda p, s=side: input_of(_before(p, s)),
                lambda p, s=side: input_of(_pillow_only(p, s)),
                lambda p, s=side: input_of(read_rgb(p, s)),
                lambda p, s=side, lim=limits: input_of(read_rgb(p, s, lim)),
            ]
            times = [f"{_best(way, paths, args.rounds) * 1e6:.0f}" for way in ways]
            if kind == "crops":  # load_photos reads crops the way the first three do
                times.append(f"{_watched(paths, spec, args.rounds) * 1e6:.0f}")
            print(f"{kind}\t" + "\t".join(times + ["-"] * (5 - len(times))))


if __name__ == "__main__":
    main()
