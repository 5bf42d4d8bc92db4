"""The one settings object of a run, built once at the entry point and passed down."""

from __future__ import annotations

import datetime as dt
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from agebatch.errors import InputError
from agebatch.predict.faces import WHOLE_FRAME, Region
from agebatch.predict.images import PHOTO_KINDS

DEFAULT_AGE_BOUNDS: tuple[int, ...] = (18, 25, 35, 45, 55, 65)
DEFAULT_TIMEZONE = "Europe/London"
DEFAULT_PHOTO_KIND = "auto"  # see README, "Face finding": why auto


def parse_age_bounds(text: str) -> tuple[int, ...]:
    """Parse '18,25,35' into the lower bounds of the age groups after the first."""
    try:
        bounds = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise InputError(f"Age groups {text!r} must be whole years separated by commas.") from None
    if not bounds or list(bounds) != sorted(set(bounds)) or bounds[0] <= 0:
        raise InputError(f"Age groups {text!r} must be increasing positive ages, e.g. 18,25,35.")
    return bounds


def parse_region(text: str | tuple[float, ...]) -> Region:
    """Parse 'x0,y0,x1,y1' (fractions of the frame's width and height) into a face region."""
    try:
        parts = text.split(",") if isinstance(text, str) else list(text)
        x0, y0, x1, y1 = (float(part) for part in parts)
    except ValueError:
        raise InputError(
            f"Face region {text!r} must be four fractions x0,y0,x1,y1, e.g. 0.2,0,0.8,1."
        ) from None
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        raise InputError(
            f"Face region {text!r} must have 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 "
            "(fractions of the frame's width and height)."
        )
    return (x0, y0, x1, y1)


def parse_photo_kind(text: str) -> str:
    """Check a photo kind: auto, frames or crops."""
    if text not in PHOTO_KINDS:
        raise InputError(f"Photo kind {text!r} must be one of {', '.join(PHOTO_KINDS)}.")
    return text


def age_group_labels(bounds: tuple[int, ...]) -> list[tuple[str, float, float]]:
    """Label and [low, high) range of each age group: '<18', '18-24', …, '65+'."""
    groups = [(f"<{bounds[0]}", float("-inf"), float(bounds[0]))]
    for low, high in itertools.pairwise(bounds):
        groups.append((f"{low}-{high - 1}", float(low), float(high)))
    groups.append((f"{bounds[-1]}+", float(bounds[-1]), float("inf")))
    return groups


def yesterday(timezone: str = DEFAULT_TIMEZONE) -> dt.date:
    """The day before today in the chain's timezone: the day a nightly run processes."""
    return dt.datetime.now(ZoneInfo(timezone)).date() - dt.timedelta(days=1)


def parse_day(text: str | dt.date) -> dt.date:
    """Parse a YYYY-MM-DD day, with a clear message when it is not one."""
    if isinstance(text, dt.date):
        return text
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InputError(f"Day {text!r} is not a date in the form YYYY-MM-DD.") from None


@dataclass(frozen=True)
class Settings:
    """Everything one run of one day needs; defaults are the nightly job's."""

    day: dt.date
    photos: Path
    transactions: Path
    catalog: Path
    out: Path
    model: Path | None = None  # None: the bundled model
    window_before_s: float = 120.0
    window_after_s: float = 5.0
    age_bounds: tuple[int, ...] = DEFAULT_AGE_BOUNDS
    batch_size: int = 64
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    decode_processes: bool = False  # decode in processes (many cores, e.g. beside a GPU)
    timezone: str = DEFAULT_TIMEZONE
    legal_age: float = 18.0
    challenge_age: float = 25.0
    margin: float = 0.0  # widen the ID check by this many times the model's error (card)
    policy: Path | None = None  # per-store legal_age / challenge_age (CSV or Parquet)
    photo_kind: str = DEFAULT_PHOTO_KIND  # auto: crops and frames told apart photo by photo
    face_region: Region = WHOLE_FRAME  # where the shopper stands
    face_regions: Path | None = None  # per store/register regions (CSV or Parquet)

    def __post_init__(self) -> None:
        parse_photo_kind(self.photo_kind)
        parse_region(self.face_region)
        if self.window_before_s < 0 or self.window_after_s < 0:
            raise InputError("The match window's seconds before and after payment must be >= 0.")
        if self.batch_size < 1:
            raise InputError("The batch size must be at least 1.")

    @property
    def day_folder(self) -> Path:
        """The folder holding this day's photos."""
        return self.photos / self.day.isoformat()
