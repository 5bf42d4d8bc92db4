"""Generate a sample day (photos, transactions, catalog) for the demo, tests and benchmarks."""

from __future__ import annotations

import csv
import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from agebatch.config import RunConfig
from agebatch.schema import ReceiptStatus

# sku prefix, category, age_restricted, price, buyers' typical ages (mean, spread)
CATEGORIES = [
    ("BAK", "bakery", False, 1.20, (45, 20)),
    ("DAI", "dairy", False, 0.95, (40, 20)),
    ("PRO", "produce", False, 1.60, (50, 18)),
    ("SNK", "snacks", False, 1.10, (24, 10)),
    ("NRG", "energy_drinks", False, 1.50, (22, 6)),
    ("BAB", "baby", False, 7.50, (31, 5)),
    ("HOU", "household", False, 3.20, (45, 15)),
    ("BEE", "beer", True, 4.50, (30, 10)),
    ("WIN", "wine", True, 8.00, (50, 14)),
    ("SPI", "spirits", True, 16.00, (38, 14)),
]
SKUS_PER_CATEGORY = 4
STRAY_FILES = ("Thumbs.db", "notes.txt")


@dataclass(frozen=True)
class SampleDay:
    """Where a generated day lies, and the truth behind it (true ages, expected statuses)."""

    day: dt.date
    photos: Path  # PHOTOS root; the day is photos/<day>/
    transactions: Path  # folder holding <day>.parquet
    catalog: Path
    truth: pd.DataFrame  # receipt_id, store_id, register_id, paid_at, photo, true_age, status

    def config(self, out: Path, **settings: object) -> RunConfig:
        """The run configuration that reads this day and publishes to out."""
        paths = {"photos": self.photos, "transactions": self.transactions, "catalog": self.catalog}
        return RunConfig.build({**paths, "out": out, **settings})


def make_catalog() -> pd.DataFrame:
    """The sample catalog: sku, category, age_restricted (and price, for generating lines)."""
    rows = [
        (f"{prefix}{i:03d}", category, restricted, round(price * (1 + 0.25 * i), 2))
        for prefix, category, restricted, price, _ in CATEGORIES
        for i in range(SKUS_PER_CATEGORY)
    ]
    return pd.DataFrame(rows, columns=["sku", "category", "age_restricted", "price"])


def make_sample_day(
    root: Path,
    day: dt.date,
    *,
    stores: int = 3,
    registers: int = 2,
    receipts: int = 300,
    seed: int = 0,
    faces: Path | None = None,
    writer: FaceWriter | None = None,
    no_photo_share: float = 0.05,
    unreadable: int = 3,
) -> SampleDay:
    """Write a day of checkout photos, its transactions and a catalog under root.

    Photos are drawn by `writer` (default: a generated cartoon face; tests pass their own), or
    are real faces from `faces` (labels.csv with file_name,real_age + final_files/), matched by
    age.
    """
    writer = writer or DrawnFaces()
    rng = np.random.default_rng(seed)
    photos_root, tx_dir = root / "photos", root / "transactions"
    day_dir = photos_root / day.isoformat()
    day_dir.mkdir(parents=True, exist_ok=True)
    tx_dir.mkdir(parents=True, exist_ok=True)
    catalog = make_catalog()
    catalog_path = root / "catalog.csv"
    catalog[["sku", "category", "age_restricted"]].to_csv(catalog_path, index=False)
    labelled = _labelled_faces(faces) if faces is not None else None

    lines, truth = [], []
    registers_list = [
        (f"S{s + 1:02d}", f"R{r + 1}") for s in range(stores) for r in range(registers)
    ]
    clock = {key: dt.datetime.combine(day, dt.time(8, 0)) for key in registers_list}
    for n in range(receipts):
        store_id, register_id = registers_list[int(rng.integers(len(registers_list)))]
        paid_at = clock[(store_id, register_id)] + dt.timedelta(seconds=int(rng.integers(180, 600)))
        clock[(store_id, register_id)] = paid_at
        receipt_id = f"{day:%Y%m%d}-{store_id}-{n:05d}"
        cashier_id = f"C{store_id[1:]}{register_id[1:]}{'a' if paid_at.hour < 14 else 'b'}"
        age = _shopper_age(rng)
        photo, status = None, ReceiptStatus.NO_PHOTO.value
        if rng.random() >= no_photo_share:
            # Shoppers are photographed 2-50 s before paying; receipts at a register are at least
            # 180 s apart, so a receipt never falls in its neighbour's 120 s window.
            captured_at = paid_at - dt.timedelta(seconds=int(rng.integers(2, 50)))
            photo = f"{store_id}/{register_id}/{captured_at:%Y%m%dT%H%M%S}{writer.suffix}"
            (day_dir / photo).parent.mkdir(parents=True, exist_ok=True)
            if labelled is not None:
                source, age = _nearest_face(labelled, age, rng)
                shutil.copyfile(source, day_dir / photo)
            else:
                writer(day_dir / photo, age, rng)
            status = ReceiptStatus.MATCHED.value
        truth.append((receipt_id, store_id, register_id, paid_at, photo, age, status))
        for sku, qty, amount in _basket(rng, catalog, age):
            lines.append((receipt_id, store_id, register_id, cashier_id, paid_at, sku, qty, amount))

    truth_df = pd.DataFrame(
        truth,
        columns=["receipt_id", "store_id", "register_id", "paid_at", "photo", "true_age", "status"],
    )
    for index in _pick(rng, truth_df.index[truth_df["photo"].notna()], unreadable):
        (day_dir / truth_df.at[index, "photo"]).write_bytes(b"this is not an image")
        truth_df.at[index, "status"] = ReceiptStatus.UNREADABLE.value
    for name in STRAY_FILES:
        (day_dir / name).write_text("not a photo")
    columns = ["receipt_id", "store_id", "register_id", "cashier_id", "paid_at", "sku"]
    lines_df = pd.DataFrame(lines, columns=[*columns, "quantity", "amount"])
    lines_df.to_parquet(tx_dir / f"{day.isoformat()}.parquet", index=False)
    return SampleDay(day, photos_root, tx_dir, catalog_path, truth_df)


def _shopper_age(rng: np.random.Generator) -> float:
    """Shoppers' ages: mostly adults around 30-50, some teenagers, some elderly."""
    band = rng.choice(4, p=[0.08, 0.22, 0.55, 0.15])
    low, high = [(14, 18), (18, 25), (25, 65), (65, 88)][band]
    return float(rng.integers(low, high))


def _basket(
    rng: np.random.Generator, catalog: pd.DataFrame, age: float
) -> list[tuple[str, int, float]]:
    """A receipt's line items; what is bought depends on the shopper's age."""
    weights = np.array([np.exp(-(((age - m) / s) ** 2) / 2) + 0.05 for *_, (m, s) in CATEGORIES])
    items = []
    for _ in range(int(rng.integers(1, 7))):
        category = int(rng.choice(len(CATEGORIES), p=weights / weights.sum()))
        row = catalog.iloc[category * SKUS_PER_CATEGORY + int(rng.integers(SKUS_PER_CATEGORY))]
        qty = int(rng.integers(1, 4))
        sign = -1 if rng.random() < 0.02 else 1  # a few returns
        items.append((row["sku"], sign * qty, round(sign * qty * float(row["price"]), 2)))
    return items


class FaceWriter(Protocol):
    """Writes a photo of a shopper of a given age (tests bring writers the model reads exactly)."""

    suffix: str  # the photo's file suffix, e.g. ".jpg"

    def __call__(self, path: Path, age: float, rng: np.random.Generator) -> None:
        """Write the photo to path."""


@dataclass(frozen=True)
class DrawnFaces:
    """A generated cartoon face (no real person), greyer and more wrinkled with age."""

    suffix: str = ".jpg"

    def __call__(self, path: Path, age: float, rng: np.random.Generator) -> None:
        """Draw the face and save it as the photo."""
        _draw_face(path, age, rng)


def _draw_face(path: Path, age: float, rng: np.random.Generator) -> None:
    drawn_face(age, rng).save(path, quality=90)


def drawn_face(age: float, rng: np.random.Generator) -> Image.Image:
    """A 200x200 cartoon face of no real person, greyer and more wrinkled with age."""
    size = 200
    image = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(40, 200, 3)))
    draw = ImageDraw.Draw(image)
    skin = tuple(int(v) for v in rng.integers([150, 100, 80], [240, 190, 160]))
    hair = (int(255 * min(1.0, max(0.0, (age - 35) / 45))),) * 3  # greyer with age
    draw.ellipse((40, 20, 160, 90), fill=hair)
    draw.ellipse((50, 35, 150, 175), fill=skin)
    for x in (78, 122):
        draw.ellipse((x - 8, 85, x + 8, 95), fill=(255, 255, 255))
        draw.ellipse((x - 3, 87, x + 3, 93), fill=(40, 30, 20))
    wrinkles = int(age // 20)
    for i in range(wrinkles):
        draw.line((75, 60 + 5 * i, 125, 60 + 5 * i), fill=(120, 90, 70))
    draw.arc((80, 125, 120, 150), 20, 160, fill=(150, 40, 40), width=3)
    return image


def _labelled_faces(faces: Path) -> pd.DataFrame:
    """labels.csv of a labelled face folder, with full paths."""
    with open(faces / "labels.csv", newline="") as handle:
        rows = [
            (faces / "final_files" / r["file_name"], float(r["real_age"]))
            for r in csv.DictReader(handle)
        ]
    return pd.DataFrame(rows, columns=["path", "age"])


def _nearest_face(
    labelled: pd.DataFrame, age: float, rng: np.random.Generator
) -> tuple[Path, float]:
    """A random real face whose label is within 2 years of age (or the closest)."""
    close = labelled[(labelled["age"] - age).abs() <= 2]
    if close.empty:
        close = labelled.iloc[[int((labelled["age"] - age).abs().argmin())]]
    row = close.iloc[int(rng.integers(len(close)))]
    return Path(row["path"]), float(row["age"])


def _pick(rng: np.random.Generator, index: pd.Index, n: int) -> list[int]:
    """Up to n distinct random labels from index."""
    return [int(i) for i in rng.choice(index, size=min(n, len(index)), replace=False)]
