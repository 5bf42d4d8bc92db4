"""How readable a face is: a quality record per photo from measured parts, and the card's floors.

Parts, each measured on what the model is given (the chip) or on the face's 5 landmarks:
- face_px: the face's width in the stored photo, pixels (0.9 of the aligned-crop framing);
- sharpness: mean absolute Laplacian of the chip's grey centre over its contrast (a blurred
  or upscaled face has little fine detail for its contrast);
- detail: the Laplacian's RMS at the chip's own scale over its RMS at half that scale (the
  centre binned 2x2): how much of the face's detail reaches the finest scale. A face saved
  small and scaled back up, or out of focus, has little there whatever its contrast (clean
  aligned crops: median 0.54; the same faces saved 32 px wide: 0.38). Not floored: a face
  under the card's `quality.detail.below` gets its detail restored (images.sharpened);
- exposure: mean grey level of the chip's centre (0-255);
- contrast: standard deviation of that grey level;
- landmark_fit: how far the 5 landmarks lie from the aligned-crop shape after the best
  similarity (RMS, in crop widths; lower is better);
- yaw: the nose's sideways offset from the eyes' midpoint over the eye distance (0: frontal;
  lower is better); roll: the eye line's tilt, degrees (lower is better; a rolled face is
  turned upright before ageing, so only extreme tilts fail);
- detector: the face detector's confidence (not measured when no detector ran).

A photo's score is its worst part as a multiple of that part's floor (part / floor for parts
where higher is better, floor / part otherwise): 1.0 is at the floor, below 1 the photo is
`low_quality` and the failing part is named. Floors live in the model card (`quality`), chosen
on degraded copies of labelled faces (docs/model.md, Quality).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

HIGHER_IS_BETTER = ("face_px", "sharpness", "detail", "exposure", "contrast", "detector")
LOWER_IS_BETTER = ("landmark_fit", "yaw", "roll")
PARTS = HIGHER_IS_BETTER + LOWER_IS_BETTER
_GREY = np.array([0.299, 0.587, 0.114], np.float32)
SCORE_CAP = 9.99  # a part far above its floor says no more
FACE_OF_CROP = 0.895  # dlib's HOG box spans this much of an aligned crop's width
# Where the 5 landmarks sit in an aligned crop (faces.ALIGNED_CROP_LANDMARKS order: right eye
# outer, right eye inner, left eye outer, left eye inner, nose).


@dataclass(frozen=True, slots=True)
class Quality:
    """A photo's measured parts (None: not measured), its score and the part that scored
    lowest (the failing part when the score is below 1)."""

    parts: tuple[tuple[str, float], ...]
    score: float | None
    part: str

    @property
    def passed(self) -> bool:
        """Whether every measured part is at or above its floor."""
        return self.score is None or self.score >= 1.0


def chip_parts(chip: np.ndarray) -> dict[str, float]:
    """sharpness, detail, exposure and contrast of a (h, w, 3) uint8 chip, from its central
    60% (chips_parts of one chip)."""
    return chips_parts([chip])[0]


# Chips measured in one stack: small enough that a stack's float32 arrays stay in the CPU's
# cache and in malloc's heap (a stack of 256 64 px chips was 2-7 us a chip slower, measured).
STACK = 32


def chips_parts(chips: Sequence[np.ndarray]) -> list[dict[str, float]]:
    """chip_parts of each (h, w, 3) uint8 chip, in a few numpy calls for STACK chips at once.

    Each numpy call on one 38 px centre costs 1-2 us, so the chips of a chunk are measured
    together (a 64 px chip: 30 us alone, about 8 us in stacks). Each chip's values are the same
    float32 arithmetic, in the same order, as the plain expressions in the comments on one
    chip: a chip's sums run over its own contiguous row of the stack, as numpy's pairwise sum
    runs over a lone chip (tests/predict/test_quality.py checks the values are those of the
    plain expressions, bit for bit, alone and in stacks).
    """
    parts: list[dict[str, float] | None] = [None] * len(chips)
    shapes: dict[tuple[int, int], list[int]] = {}
    for i, chip in enumerate(chips):
        shapes.setdefault(chip.shape[:2], []).append(i)
    for (h, w), indices in shapes.items():
        rows, columns = slice(round(0.2 * h), round(0.8 * h)), slice(round(0.2 * w), round(0.8 * w))
        for start in range(0, len(indices), STACK):
            some = indices[start : start + STACK]
            middles = np.stack([chips[i][rows, columns, :3] for i in some])
            for i, measured in zip(some, _middles_parts(middles), strict=True):
                parts[i] = measured
    return parts  # type: ignore[return-value]


def _middles_parts(middle: np.ndarray) -> list[dict[str, float]]:
    """chip_parts of a stack of chips' central 60% (n, h, w, 3) uint8."""
    n = len(middle)
    centre = middle.astype(np.float32) @ _GREY
    # exposure = centre.mean(), contrast = centre.std(): numpy's float32 mean and variance
    mean = _means32(centre)
    spread = np.subtract(centre, mean[:, None, None])
    np.multiply(spread, spread, out=spread)
    contrast = np.sqrt(_means32(spread))
    lap = _laplacian(centre)
    lap_mean = _means32(np.abs(lap))  # np.abs(lap).mean()
    even = (min(centre.shape[1:]) // 2) * 2
    binned = np.add(centre[:, :even:2, :even:2], centre[:, 1:even:2, :even:2])
    binned += centre[:, :even:2, 1:even:2]
    binned += centre[:, 1:even:2, 1:even:2]
    binned *= np.float32(0.25)
    small = min(binned.shape[1:]) <= 2
    coarse = np.zeros((n, 1), np.float32) if small else _laplacian(binned)
    np.multiply(lap, lap, out=lap)  # (lap * lap).mean(), (coarse * coarse).mean()
    np.multiply(coarse, coarse, out=coarse)
    energies = zip(_means32(lap).tolist(), _means32(coarse).tolist(), strict=True)
    parts = []
    for exposure, spread_of, sharp, (fine, rough) in zip(
        mean.tolist(), contrast.tolist(), lap_mean.tolist(), energies, strict=True
    ):
        parts.append(
            {
                "sharpness": sharp / max(spread_of, 1.0),
                "detail": math.sqrt(fine / rough) if rough > 1e-6 else 0.0,
                "exposure": exposure,
                "contrast": spread_of,
            }
        )
    return parts


def _means32(values: np.ndarray) -> np.ndarray:
    """values[i].mean() of each item of a float32 stack: numpy's float32 sum of the item (its
    own contiguous row) over the count, in float32."""
    rows = values.reshape(len(values), -1)
    if not rows.shape[1]:
        return rows.mean(axis=1)  # nan, with numpy's warning, as a lone empty mean
    return np.add.reduce(rows, axis=1) / np.float32(rows.shape[1])


def _laplacian(grey: np.ndarray) -> np.ndarray:
    """The 4-neighbour Laplacian of a stack of 2-D grey arrays, on their inner pixels (a new
    array)."""
    lap = np.multiply(grey[:, 1:-1, 1:-1], np.float32(4))
    lap -= grey[:, :-2, 1:-1]
    lap -= grey[:, 2:, 1:-1]
    lap -= grey[:, 1:-1, :-2]
    lap -= grey[:, 1:-1, 2:]
    return lap


def landmark_parts(
    landmarks: Sequence[tuple[float, float]], canonical: Sequence[tuple[float, float]]
) -> dict[str, float]:
    """face_px, landmark_fit, yaw and roll of a face from its 5 landmarks (pixels of the photo
    as decoded; face_px is scaled by the caller to the stored photo)."""
    from agebatch.predict.faces import _similarity

    a, b, tx, ty = _similarity(landmarks, canonical)
    scale = math.hypot(a, b)  # crop widths per pixel
    if scale <= 0:
        return {"landmark_fit": math.inf}
    points = np.asarray(landmarks, dtype=np.float64)
    mapped = np.stack(
        [a * points[:, 0] - b * points[:, 1] + tx, b * points[:, 0] + a * points[:, 1] + ty], 1
    )
    fit = float(np.sqrt(((mapped - np.asarray(canonical)) ** 2).sum(axis=1).mean()))
    eyes = (points[0] + points[1] + points[2] + points[3]) / 4
    right, left = (points[0] + points[1]) / 2, (points[2] + points[3]) / 2
    across = left - right
    distance = float(np.hypot(*across)) or 1.0
    # The nose's offset along the eye line, over the eye distance; minus where it sits in an
    # aligned crop (its nose is slightly off the eyes' midpoint).
    along = float(np.dot(points[4] - eyes, across)) / distance**2
    c_points = np.asarray(canonical)
    c_eyes = c_points[:4].mean(axis=0)
    c_across = (c_points[2] + c_points[3]) / 2 - (c_points[0] + c_points[1]) / 2
    c_along = float(np.dot(c_points[4] - c_eyes, c_across)) / float(np.dot(c_across, c_across))
    roll = math.degrees(math.atan2(across[1], -across[0]))
    return {
        "face_px": FACE_OF_CROP / scale,
        "landmark_fit": fit,
        "yaw": abs(along - c_along),
        "roll": abs(roll),
    }


def assess(parts: Mapping[str, float | None], floors: Mapping[str, float]) -> Quality:
    """A photo's quality from its measured parts and the card's floors (parts without a floor,
    or not measured, do not count)."""
    margins: list[tuple[float, str]] = []
    for name in PARTS:
        value, floor = parts.get(name), floors.get(name)
        if value is None or floor is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if name in HIGHER_IS_BETTER:
            margin = value / floor if floor > 0 else SCORE_CAP
        else:
            margin = floor / value if value > 0 else SCORE_CAP
        margins.append((min(SCORE_CAP, margin), name))
    measured = tuple((k, round(float(v), 4)) for k, v in parts.items() if v is not None)
    if not margins:
        return Quality(measured, None, "")
    score, part = min(margins)
    # Rounded down, so a part a hair under its floor never reads as 1.0 (passed).
    return Quality(measured, math.floor(score * 1000) / 1000, part)
