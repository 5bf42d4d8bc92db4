"""Generated pictures for the tests: faceless scenes, frames with cartoon faces, grey squares
for the brightness model and textured faces for the pattern model.

No real person is in any of them; BlazeFace finds the cartoon faces.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SKIN = (225, 180, 150)


def scene(width: int = 640, height: int = 480, seed: int = 0) -> np.ndarray:
    """A frame with no face: gradient, blotches and shapes."""
    rng = np.random.default_rng(seed)
    xx = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    base = np.broadcast_to(xx, (height, width, 3)) * np.array([0.9, 0.5, 0.2], dtype=np.float32)
    image = Image.fromarray(np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        w, h = rng.uniform(20, 200), rng.uniform(20, 200)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.rectangle((x, y, x + w, y + h), fill=colour)
        else:
            draw.ellipse((x, y, x + w, y + h), fill=colour)
    return np.asarray(image)


def draw_face(
    draw: ImageDraw.ImageDraw,
    cx: float,
    cy: float,
    s: float,
    skin: tuple[int, int, int] = SKIN,
) -> None:
    """A cartoon face `s` px wide (hair, skin, eyes, brows, nose, mouth); BlazeFace finds these."""
    draw.ellipse((cx - 0.62 * s, cy - 0.85 * s, cx + 0.62 * s, cy + 0.5 * s), fill=(60, 40, 25))
    draw.ellipse((cx - 0.5 * s, cy - 0.65 * s, cx + 0.5 * s, cy + 0.7 * s), fill=skin)
    for ex in (cx - 0.2 * s, cx + 0.2 * s):
        draw.ellipse((ex - 0.11 * s, cy - 0.17 * s, ex + 0.11 * s, cy - 0.05 * s), fill="white")
        draw.ellipse(
            (ex - 0.05 * s, cy - 0.16 * s, ex + 0.05 * s, cy - 0.06 * s), fill=(50, 30, 20)
        )
        brow = (ex - 0.13 * s, cy - 0.25 * s, ex + 0.13 * s, cy - 0.27 * s)
        draw.line(brow, fill=(70, 45, 30), width=max(2, int(0.04 * s)))
    nose = [(cx, cy - 0.05 * s), (cx - 0.07 * s, cy + 0.17 * s), (cx + 0.07 * s, cy + 0.17 * s)]
    draw.polygon(nose, fill=(200, 150, 120))
    draw.ellipse((cx - 0.17 * s, cy + 0.28 * s, cx + 0.17 * s, cy + 0.38 * s), fill=(170, 60, 60))


def drawn_frame(
    size: tuple[int, int],
    faces: list[tuple[float, float, float]],
    skins: list[tuple[int, int, int]] | None = None,
) -> np.ndarray:
    """A plain frame with cartoon faces at (centre x, centre y, width), slightly blurred."""
    image = Image.new("RGB", size, (90, 120, 160))
    draw = ImageDraw.Draw(image)
    for i, (cx, cy, s) in enumerate(faces):
        draw_face(draw, cx, cy, s, skins[i] if skins else SKIN)
    return np.asarray(image.filter(ImageFilter.GaussianBlur(1.2)))


@dataclass(frozen=True)
class SolidFaces:
    """Flat grey photos whose level encodes the age, round(age * 2.55): the brightness model
    reads each back within 0.2 years."""

    suffix: str = ".png"

    def __call__(self, path: Path, age: float, rng: np.random.Generator) -> None:
        """Write the grey square."""
        Image.new("RGB", (96, 96), (round(age * 2.55),) * 3).save(path)


# The pattern model (tests/conftest.py, save_pattern_model): age = PATTERN_BIAS + the sum of
# PATTERN_WEIGHTS times the 64x64 RGB chip the model card asks for (PATTERN_CROP, box
# resampling). The weights differ by channel and between the face's left and right halves, so a
# wrong crop box, resampling, mirror image or colour order reads a different age (by 5-50 years
# on these faces), and a preprocessing change fails the tests that use it.
PATTERN_SIZE = 64
PATTERN_CROP = (0.05, 0.09, 0.93, 0.96)
PATTERN_RESAMPLE = "box"
PATTERN_BIAS = 40.0


def pattern_weights(seed: int = 0) -> np.ndarray:
    """The pattern model's (64, 64, 3) weights."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(0, 1, (PATTERN_SIZE, PATTERN_SIZE, 3)) * np.array([1.0, 0.6, 0.3])
    weights[:, : PATTERN_SIZE // 2] *= 1.7
    return weights / (np.abs(weights).sum() / 40)


PATTERN_WEIGHTS = pattern_weights()


def pattern_chip(image: Image.Image) -> np.ndarray:
    """The 64x64 chip the pattern model's card asks for, cut here independently of agebatch."""
    w, h = image.size
    x0, y0, x1, y1 = PATTERN_CROP
    box = (x0 * w, y0 * h, x1 * w, y1 * h)
    size = (PATTERN_SIZE, PATTERN_SIZE)
    return np.asarray(image.resize(size, Image.Resampling.BOX, box=box), dtype=np.float64)


def pattern_age(path: Path) -> float:
    """The age the pattern model must read from a photo file (the tests' oracle)."""
    with Image.open(path) as image:
        chip = pattern_chip(image.convert("RGB"))
    return max(0.0, PATTERN_BIAS + float((chip * PATTERN_WEIGHTS).sum()))


@dataclass(frozen=True)
class PatternFaces:
    """Textured, asymmetric faces designed so the pattern model reads about the given age.

    The photo is a random texture (blobs, noise, a dark band on the left) plus a small multiple
    of the weights painted over the crop box; the multiple is solved so the reading is the age.
    pattern_age(path) gives the exact reading of the saved file.
    """

    suffix: str = ".png"
    size: tuple[int, int] = (200, 200)

    def __call__(self, path: Path, age: float, rng: np.random.Generator) -> None:
        """Write the face."""
        texture = _texture(rng, self.size)
        painted = _painted_weights(self.size)
        base = PATTERN_BIAS + float((_float_chip(texture) * PATTERN_WEIGHTS).sum())
        gain = float((_float_chip(painted) * PATTERN_WEIGHTS).sum())
        pixels = np.clip(np.round(texture + (age - base) / gain * painted), 0, 255)
        Image.fromarray(pixels.astype(np.uint8)).save(path)


def _texture(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    image = Image.new("RGB", size, tuple(int(v) for v in rng.integers(90, 160, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(25):
        x, y, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(5, 40)
        fill = tuple(int(v) for v in rng.integers(70, 180, 3))
        draw.ellipse((x - r, y - r * rng.uniform(0.5, 1.5), x + r, y + r), fill=fill)
    draw.rectangle((0, 0, 0.18 * w, h), fill=(70, 60, 50))
    pixels = np.asarray(image.filter(ImageFilter.GaussianBlur(1.5)), dtype=np.float64)
    return pixels + rng.normal(0, 6, pixels.shape)


def _painted_weights(size: tuple[int, int]) -> np.ndarray:
    """The weights stretched (nearest neighbour) over the crop box of a picture; zero outside."""
    w, h = size
    x0, y0 = round(PATTERN_CROP[0] * w), round(PATTERN_CROP[1] * h)
    x1, y1 = round(PATTERN_CROP[2] * w), round(PATTERN_CROP[3] * h)
    painted = np.zeros((h, w, 3))
    for c in range(3):
        channel = Image.fromarray(PATTERN_WEIGHTS[..., c].astype(np.float32), "F")
        stretched = channel.resize((x1 - x0, y1 - y0), Image.Resampling.NEAREST)
        painted[y0:y1, x0:x1, c] = np.asarray(stretched)
    return painted


def _float_chip(pixels: np.ndarray) -> np.ndarray:
    """pattern_chip of a float picture, channel by channel (the chip is linear in the pixels)."""
    channels = [
        pattern_chip(Image.fromarray(pixels[..., c].astype(np.float32), "F")) for c in range(3)
    ]
    return np.stack(channels, axis=-1)
