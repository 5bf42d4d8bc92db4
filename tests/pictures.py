"""Generated pictures for the face tests: faceless scenes and frames with cartoon faces.

No real person is in any of them; BlazeFace finds the cartoon faces.
"""

from __future__ import annotations

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
