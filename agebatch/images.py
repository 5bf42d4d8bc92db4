"""Read a photo into the model's input: decode, respect EXIF orientation, crop, resize."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

log = logging.getLogger(__name__)

# Pillow raises these for files that are not images, truncated or corrupt.
_UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def read_rgb(path: Path, max_side: int | None = None) -> Image.Image | None:
    """Decode an image upright (EXIF orientation applied) as RGB; None when unreadable.

    With max_side, JPEGs are decoded at a reduced scale that stays above it (much faster).
    """
    try:
        with Image.open(path) as image:
            if max_side is not None and image.format == "JPEG":
                image.draft("RGB", (max_side, max_side))
            image.load()
            upright = ImageOps.exif_transpose(image)
            return upright.convert("RGB")
    except _UNREADABLE as error:
        log.debug("Unreadable photo %s: %s", path, error)
        return None


def to_model_input(
    image: Image.Image,
    size: tuple[int, int],
    crop: tuple[float, float, float, float] | None = None,
    resample: str = "bilinear",
) -> np.ndarray:
    """Resize the crop box (fractions of the image) to (width, height); uint8 HWC RGB."""
    w, h = image.size
    box = (0, 0, w, h) if crop is None else (crop[0] * w, crop[1] * h, crop[2] * w, crop[3] * h)
    method = Image.Resampling[resample.upper()]
    return np.asarray(image.resize(size, method, box=box), dtype=np.uint8)


def load_face(
    path: Path,
    size: tuple[int, int],
    crop: tuple[float, float, float, float] | None = None,
    resample: str = "bilinear",
) -> np.ndarray | None:
    """A photo that already is a face crop, ready for the model; None when unreadable."""
    image = read_rgb(path, max_side=2 * max(size))
    return None if image is None else to_model_input(image, size, crop, resample)


def load_faces(
    paths: list[Path],
    size: tuple[int, int],
    crop: tuple[float, float, float, float] | None,
    resample: str = "bilinear",
) -> list[np.ndarray | None]:
    """load_face for a chunk of paths (one call per worker process keeps IPC small)."""
    return [load_face(path, size, crop, resample) for path in paths]
