"""Named degradations of labelled aligned face crops: how a checkout camera might save the same
faces (`agebatch evaluate --conditions`).

Each condition turns one aligned crop (a UTKFace-style 200x200 photo) into the photo a camera
might have saved of the same face, seeded per face so a run is repeatable. Copies are written
to a folder the caller gives (a temporary one by default): never beside the faces.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

Degrade = Callable[[Image.Image, np.random.Generator], Image.Image]

# The camera's own box: off-centre by 10-15% of the box's side, looser by 10-20% (#24).
LOOSE_SHIFT = (0.10, 0.15)
LOOSE_SCALE = (1.10, 1.20)
DIM_GAIN = 0.3  # exposure x 0.3 ...
DIM_NOISE = 4.0  # ... with sensor noise: Gaussian, this many grey levels (of 255) at the sensor
SMALL_SIDE = 32  # the crop shrunk to 32 px (its face about 28 px wide), scaled back up
BLUR_RADIUS = 3  # box blur, pixels
JPEG_QUALITY = 15
ROTATION_DEG = (12.0, 20.0)  # roll, either way
MOTION_PX = 9  # horizontal motion blur, pixels
OVER_GAIN = 1.8  # exposure x 1.8, highlights clipped (a window behind the till, a flash) ...
OVER_NOISE = 2.0  # ... with a little sensor noise, grey levels


def _reflect_pad(image: Image.Image, pad: int) -> Image.Image:
    """The photo with `pad` pixels of its own mirror image on every side (a camera's wider view
    has more of the scene; the crop only has itself to show)."""
    array = np.asarray(image)
    return Image.fromarray(np.pad(array, ((pad, pad), (pad, pad), (0, 0)), mode="reflect"))


def loose(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The camera's own box: 10-15% off-centre (any direction), 10-20% looser, same size out."""
    w, h = image.size
    side = rng.uniform(*LOOSE_SCALE) * w
    angle = rng.uniform(0, 2 * math.pi)
    shift = rng.uniform(*LOOSE_SHIFT) * side
    cx, cy = w / 2 + shift * math.cos(angle), h / 2 + shift * math.sin(angle)
    pad = w
    padded = _reflect_pad(image, pad)
    box = (cx - side / 2 + pad, cy - side / 2 + pad, cx + side / 2 + pad, cy + side / 2 + pad)
    return padded.resize((w, h), Image.Resampling.BILINEAR, box=box)


def dim(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Exposure x DIM_GAIN with sensor noise (Gaussian, DIM_NOISE grey levels)."""
    array = np.asarray(image, dtype=np.float32) * DIM_GAIN
    array += rng.normal(0.0, DIM_NOISE, array.shape)
    return Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8))


def small(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A far face: the crop shrunk to SMALL_SIDE px, then scaled back to its size."""
    w, h = image.size
    tiny = image.resize((SMALL_SIDE, round(SMALL_SIDE * h / w)), Image.Resampling.BOX)
    return tiny.resize((w, h), Image.Resampling.BILINEAR)


def blur(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Out of focus: a box blur of BLUR_RADIUS px."""
    return image.filter(ImageFilter.BoxBlur(BLUR_RADIUS))


def jpeg(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Saved as a JPEG of quality JPEG_QUALITY."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=JPEG_QUALITY)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def rotated(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A tilted head (or camera): rolled 12-20 degrees either way, the corners filled from the
    mirrored scene."""
    w, h = image.size
    degrees = rng.uniform(*ROTATION_DEG) * rng.choice([-1, 1])
    pad = w // 2
    turned = _reflect_pad(image, pad).rotate(degrees, Image.Resampling.BICUBIC)
    return turned.crop((pad, pad, pad + w, pad + h))


def motion(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A shopper moving past the till: horizontal motion blur over MOTION_PX px."""
    array = np.asarray(image, dtype=np.float32)
    out = np.zeros_like(array)
    for dx in range(MOTION_PX):
        out += np.roll(array, dx - MOTION_PX // 2, axis=1)
    return Image.fromarray(np.clip(np.rint(out / MOTION_PX), 0, 255).astype(np.uint8))


def overexposed(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Too much light (a window behind the till, a flash): exposure x OVER_GAIN, highlights
    clipped, sensor noise OVER_NOISE grey levels."""
    array = np.asarray(image, dtype=np.float32) * OVER_GAIN
    array += rng.normal(0.0, OVER_NOISE, array.shape)
    return Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8))


def grey(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A camera that saves grey (a night or infrared mode): one grey level per pixel, saved as
    RGB."""
    return image.convert("L").convert("RGB")


def clean(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The aligned crop as it is (the training set's framing)."""
    return image


CONDITIONS: dict[str, Degrade] = {
    "clean": clean,
    "loose": loose,
    "dim": dim,
    "small": small,
    "blur": blur,
    "jpeg": jpeg,
    "rotated": rotated,
    "motion": motion,
    "overexposed": overexposed,
    "grey": grey,
}


def describe(name: str) -> str:
    """A condition in one line: the first paragraph of its function's docstring, each of this
    module's numeric constants it names written as its value (the card keeps this text)."""
    first = " ".join((CONDITIONS[name].__doc__ or name).strip().split("\n\n")[0].split())
    return re.sub(r"\b[A-Z][A-Z_]+\b", _valued, first)


def _valued(match: re.Match[str]) -> str:
    """A constant's value when the word names one of this module's numbers, else the word."""
    value = globals().get(match.group())
    return f"{value:g}" if isinstance(value, int | float) else match.group()


def write_condition(name: str, paths: list[Path], out: Path, seed: int = 0) -> list[Path]:
    """The photos of `paths` under condition `name` under out/name/: as JPEG (quality 95), but
    clean and jpeg copies losslessly (PNG: the same pixels, not compressed twice); the same
    seed gives the same copies. A photo that cannot be read gets an empty copy (the stage
    counts it unreadable, as it counts the photo itself)."""
    if name not in CONDITIONS:
        raise ValueError(f"unknown condition {name!r}; known: {', '.join(CONDITIONS)}")
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    degrade = CONDITIONS[name]
    lossless = name in ("clean", "jpeg")
    written = []
    for index, path in enumerate(paths):
        rng = np.random.default_rng([seed, index, sum(map(ord, name))])
        target = folder / f"{index:06d}.{'png' if lossless else 'jpg'}"
        try:
            with Image.open(path) as source:
                image = degrade(source.convert("RGB"), rng)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            # an unreadable face stays unreadable: an empty copy, counted as the run counts it
            target.write_bytes(b"")
        else:
            image.save(target, **({} if lossless else {"quality": 95}))
        written.append(target)
    return written
