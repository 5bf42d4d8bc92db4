"""Generate a sample day (photos, transactions, catalog) for the demo, tests and benchmarks."""

from __future__ import annotations

import csv
import datetime as dt
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from agebatch.config import RunConfig
from agebatch.schema import AgeCheck, ReceiptStatus

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
# The sample catalog's product names (its optional name column), SKUS_PER_CATEGORY a category.
PRODUCT_NAMES = {
    "bakery": ("White loaf", "Croissants 4-pack", "Seeded rolls 6", "Sourdough"),
    "dairy": ("Semi-skimmed milk 2L", "Cheddar 400g", "Greek yoghurt", "Butter 250g"),
    "produce": ("Bananas", "Apples 6-pack", "Salad bag", "Tomatoes 500g"),
    "snacks": ("Crisps 6-pack", "Chocolate bar", "Salted nuts", "Popcorn"),
    "energy_drinks": ("Energy drink 250ml", "Energy drink 500ml", "Sugar-free energy", "Multipack"),
    "baby": ("Nappies size 3", "Baby wipes", "Formula milk", "Baby food pouches"),
    "household": ("Washing-up liquid", "Kitchen roll", "Laundry pods", "Bin bags"),
    "beer": ("Lager 4x440ml", "Pale ale 500ml", "Stout 4-pack", "Craft IPA"),
    "wine": ("House red", "Pinot grigio", "Rosé", "Prosecco"),
    "spirits": ("Vodka 70cl", "Gin 70cl", "Whisky 70cl", "Rum 70cl"),
}
STRAY_FILES = ("Thumbs.db", "notes.txt")
# What the till records when a restricted item is scanned, by the shopper's true age: most
# young shoppers are asked, some are not, a few are refused; older ones mostly are not asked.
# Empty (None): the till recorded nothing.
CHECK_MIX = {
    "young": {"id_seen": 0.72, "not_asked": 0.14, "id_refused": 0.1, None: 0.04},
    "older": {"id_seen": 0.08, "not_asked": 0.9, None: 0.02},
}
YOUNG = 25  # Challenge 25: under this true age a shopper should be asked
REFUSED_STILL_SOLD = 0.3  # share of refusals whose restricted items are not taken off


@dataclass(frozen=True)
class Preference:
    """A planted preference: shoppers aged low to under high pick `item` (a sku or a category)
    `factor` times as often each time they pick an item as shoppers of their age otherwise do."""

    low: float
    high: float
    item: str
    factor: float

    def applies(self, age: float) -> bool:
        """Whether a shopper of this (true) age has the preference."""
        return self.low <= age < self.high


# What the demo plants, so that a new user sees offers: items the groups would not otherwise
# favour, picked 4 times as often (docs/offers.md measures how often they are found).
DEMO_PREFERENCES = (
    Preference(18, 25, "DAI002", 4.0),  # 18-24: one dairy product
    Preference(35, 45, "HOU001", 4.0),  # 35-44: one household product
    Preference(65, 200, "BAK002", 4.0),  # 65+: one bakery product
)


@dataclass(frozen=True)
class SampleDay:
    """Where a generated day lies, and the truth behind it (true ages, expected statuses)."""

    day: dt.date
    photos: Path  # PHOTOS root; the day is photos/<day>/
    transactions: Path  # folder holding <day>.parquet
    catalog: Path
    truth: pd.DataFrame  # receipt_id, store_id, register_id, paid_at, photo, true_age, status,
    # age_check (what the till recorded; None: nothing, or the day records no checks)

    def config(self, out: Path, **settings: object) -> RunConfig:
        """The run configuration that reads this day and publishes to out."""
        paths = {"photos": self.photos, "transactions": self.transactions, "catalog": self.catalog}
        return RunConfig.build({**paths, "out": out, **settings})


def make_catalog() -> pd.DataFrame:
    """The sample catalog: sku, category, age_restricted, name (and price, for generating
    lines)."""
    rows = [
        (
            f"{prefix}{i:03d}",
            category,
            restricted,
            PRODUCT_NAMES[category][i],
            round(price * (1 + 0.25 * i), 2),
        )
        for prefix, category, restricted, price, _ in CATEGORIES
        for i in range(SKUS_PER_CATEGORY)
    ]
    return pd.DataFrame(rows, columns=["sku", "category", "age_restricted", "name", "price"])


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
    age_checks: bool = True,
    preferences: tuple[Preference, ...] = (),
    till_lines: bool = False,
    numbering: str = "chain",
) -> SampleDay:
    """Write a day of checkout photos, its transactions and a catalog under root.

    Photos are drawn by `writer` (default: a generated cartoon face; tests pass their own), or
    are real faces from `faces` (labels.csv with file_name,real_age + final_files/), matched by
    age. With age_checks the transactions carry the till's age_check on receipts with
    restricted items (CHECK_MIX), and most refused sales take the restricted items off again.
    `preferences` plants what some ages buy more of (by true age); without them a seed
    draws exactly the day it always drew. With till_lines, receipts also get the lines a real
    till writes (TILL_LINES: coupons, line discounts, info lines, a supervisor's override of a
    restricted line); numbering "store" or "register" restarts receipt numbers there (truth's
    receipt_id is then the published one, e.g. S01/0001). The defaults write the same day.
    """
    writer = writer or DrawnFaces()
    rng = np.random.default_rng(seed)
    photos_root, tx_dir = root / "photos", root / "transactions"
    day_dir = photos_root / day.isoformat()
    day_dir.mkdir(parents=True, exist_ok=True)
    tx_dir.mkdir(parents=True, exist_ok=True)
    catalog = make_catalog()
    catalog_path = root / "catalog.csv"
    catalog[["sku", "category", "age_restricted", "name"]].to_csv(catalog_path, index=False)
    labelled = _labelled_faces(faces) if faces is not None else None
    shelf = _Shelf.of(catalog)

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
        for sku, qty, amount in _basket(rng, shelf, age, preferences):
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
    truth_df["age_check"] = None
    if age_checks:
        # Its own random stream, so that the rest of the day is the same with or without.
        lines_df = _add_age_checks(lines_df, catalog, truth_df, np.random.default_rng([seed, 15]))
    if till_lines:
        lines_df = _add_till_lines(lines_df, catalog, np.random.default_rng([seed, 25]))
    if numbering != "chain":
        lines_df, truth_df = _renumber(lines_df, truth_df, numbering)
    lines_df.to_parquet(tx_dir / f"{day.isoformat()}.parquet", index=False)
    return SampleDay(day, photos_root, tx_dir, catalog_path, truth_df)


# The lines a real till adds, each on this share of receipts: a coupon (a code missing from the
# catalog, quantity 1, amount -0.50), a line discount on the receipt's first item (quantity 1,
# amount -0.10), an info line (quantity 0, amount 0: bag declined), and a supervisor keying the
# restricted line of a trainee's receipt (the line's cashier_id is the supervisor's).
TILL_LINES = {"coupon": 0.1, "discount": 0.1, "info": 0.15, "override": 0.3}
COUPON_SKU = "CPN-050"


def _add_till_lines(
    lines: pd.DataFrame, catalog: pd.DataFrame, rng: np.random.Generator
) -> pd.DataFrame:
    """Lines with coupons, line discounts, info lines and supervisor overrides added."""
    lines = lines.copy()
    restricted = set(catalog.loc[catalog["age_restricted"], "sku"])
    added = []
    for _, rows in lines.groupby("receipt_id", sort=False):
        first = rows.iloc[0]
        if rng.random() < TILL_LINES["coupon"]:
            added.append({**first.to_dict(), "sku": COUPON_SKU, "quantity": 1.0, "amount": -0.5})
        if rng.random() < TILL_LINES["discount"]:
            added.append({**first.to_dict(), "quantity": 1.0, "amount": -0.1})
        if rng.random() < TILL_LINES["info"]:
            added.append({**first.to_dict(), "sku": "BAG", "quantity": 0.0, "amount": 0.0})
        sold = rows.index[rows["sku"].isin(restricted)]
        if len(sold) and len(rows) > 2 and rng.random() < TILL_LINES["override"]:
            lines.loc[sold[0], "cashier_id"] = f"SUP-{first['store_id']}"
    if added:
        lines = pd.concat([lines, pd.DataFrame(added)], ignore_index=True)
    return lines


def _renumber(
    lines: pd.DataFrame, truth: pd.DataFrame, numbering: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Receipt numbers restarted per store or per register (0001, 0002, …); truth's receipt_id
    becomes the published one (store_id/number or store_id/register_id/number)."""
    scope = ["store_id"] if numbering == "store" else ["store_id", "register_id"]
    numbers = truth.groupby(scope).cumcount().add(1).map("{:04d}".format)
    published = truth[scope].agg("/".join, axis=1) + "/" + numbers
    till = dict(zip(truth["receipt_id"], numbers, strict=True))
    lines = lines.assign(receipt_id=lines["receipt_id"].map(till))
    truth = truth.assign(receipt_id=published)
    return lines, truth


def _add_age_checks(
    lines: pd.DataFrame, catalog: pd.DataFrame, truth: pd.DataFrame, rng: np.random.Generator
) -> pd.DataFrame:
    """The till's age_check on every line of receipts with restricted items (truth gets it
    too); refused receipts mostly get their restricted lines voided by negative lines."""
    restricted = lines["sku"].isin(catalog.loc[catalog["age_restricted"], "sku"])
    units = lines[restricted].groupby("receipt_id")["quantity"].sum()
    young = truth.set_index("receipt_id")["true_age"] < YOUNG
    outcomes = {}
    for receipt in units.index[units > 0]:
        mix = CHECK_MIX["young" if young[receipt] else "older"]
        options = list(mix)
        outcomes[receipt] = options[int(rng.choice(len(options), p=list(mix.values())))]
    voids = []
    for receipt, outcome in outcomes.items():
        if outcome == AgeCheck.ID_REFUSED and rng.random() >= REFUSED_STILL_SOLD:
            taken_off = lines[restricted & (lines["receipt_id"] == receipt)].copy()
            taken_off[["quantity", "amount"]] *= -1
            voids.append(taken_off)
    lines = pd.concat([lines, *voids], ignore_index=True)
    lines["age_check"] = lines["receipt_id"].map(outcomes).astype("string")
    truth["age_check"] = truth["receipt_id"].map(outcomes).astype("object")
    truth.loc[truth["age_check"].isna(), "age_check"] = None
    return lines


def confused_ages(
    ages: Sequence[float], counts: Sequence[Sequence[int]], rng: np.random.Generator
) -> np.ndarray:
    """Ages as a model would read them: for each true age, a predicted whole year drawn from
    the model's [true_year, predicted_year, count] confusion (a card's age_confusion; the
    nearest true year that has counts), plus a uniform fraction of a year."""
    table = np.asarray(counts, dtype=float).reshape(-1, 3)
    years = np.unique(table[:, 0])
    rows = {year: table[table[:, 0] == year] for year in years}
    read = np.empty(len(ages))
    for i, age in enumerate(ages):
        year = years[int(np.abs(years - np.floor(age)).argmin())]
        row = rows[year]
        read[i] = rng.choice(row[:, 1], p=row[:, 2] / row[:, 2].sum()) + rng.random()
    return read


def _shopper_age(rng: np.random.Generator) -> float:
    """Shoppers' ages: mostly adults around 30-50, some teenagers, some elderly."""
    band = rng.choice(4, p=[0.08, 0.22, 0.55, 0.15])
    low, high = [(14, 18), (18, 25), (25, 65), (65, 88)][band]
    return float(rng.integers(low, high))


@dataclass(frozen=True)
class _Shelf:
    """The catalog as plain lists for drawing baskets (a pandas row per line is slow)."""

    skus: list[str]
    categories: list[str]
    prices: list[float]

    @classmethod
    def of(cls, catalog: pd.DataFrame) -> _Shelf:
        """The shelf of a catalog from make_catalog."""
        return cls(
            catalog["sku"].tolist(),
            catalog["category"].tolist(),
            catalog["price"].astype(float).tolist(),
        )

    def chosen(self, item: str) -> np.ndarray:
        """Which skus a planted item names (a sku, or every sku of a category)."""
        return np.array(
            [
                item in (sku, category)
                for sku, category in zip(self.skus, self.categories, strict=True)
            ]
        )


def _basket(
    rng: np.random.Generator,
    shelf: _Shelf,
    age: float,
    preferences: tuple[Preference, ...] = (),
) -> list[tuple[str, int, float]]:
    """A receipt's line items; what is bought depends on the shopper's age (and preferences)."""
    weights = np.array([np.exp(-(((age - m) / s) ** 2) / 2) + 0.05 for *_, (m, s) in CATEGORIES])
    skus, prices = shelf.skus, shelf.prices
    planted = [p for p in preferences if p.applies(age)]
    sku_weights = np.repeat(weights / SKUS_PER_CATEGORY, SKUS_PER_CATEGORY)
    for preference in planted:
        chosen = shelf.chosen(preference.item)
        sku_weights = np.where(chosen, sku_weights * preference.factor, sku_weights)
    items = []
    for _ in range(int(rng.integers(1, 7))):
        if planted:
            index = int(rng.choice(len(skus), p=sku_weights / sku_weights.sum()))
        else:  # the original two draws, so that a day without preferences stays the same
            category = int(rng.choice(len(CATEGORIES), p=weights / weights.sum()))
            index = category * SKUS_PER_CATEGORY + int(rng.integers(SKUS_PER_CATEGORY))
        qty = int(rng.integers(1, 4))
        sign = -1 if rng.random() < 0.02 else 1  # a few returns
        items.append((skus[index], sign * qty, round(sign * qty * prices[index], 2)))
    return items


@dataclass(frozen=True)
class NoPhotos:
    """Writes no photo and draws nothing: for measurements that need only the lines and the
    truth (the statuses in the truth are then what the photos would have given)."""

    suffix: str = ".jpg"

    def __call__(self, path: Path, age: float, rng: np.random.Generator) -> None:
        """Write nothing."""


class FaceWriter(Protocol):
    """Writes a photo of a shopper of a given age (tests bring writers the model reads exactly)."""

    suffix: str  # the photo's file suffix, e.g. ".jpg"

    def __call__(self, path: Path, age: float, rng: np.random.Generator) -> None:
        """Write the photo to path."""


@dataclass(frozen=True)
class DrawnFaces:
    """A generated cartoon face (no real person), greyer and more wrinkled with age: framed as
    an aligned face crop (drawn_face), or the demo's older cartoon (cartoon_face) when
    `aligned` is false."""

    suffix: str = ".jpg"
    aligned: bool = True

    def __call__(self, path: Path, age: float, rng: np.random.Generator) -> None:
        """Draw the face and save it as the photo."""
        draw = drawn_face if self.aligned else cartoon_face
        draw(age, rng).save(path, quality=90)


def _canvas(
    age: float, rng: np.random.Generator
) -> tuple[Image.Image, ImageDraw.ImageDraw, tuple[int, ...], tuple[int, ...]]:
    """A 200x200 photo of a random background, its pen, a random skin colour and the hair's
    grey for the age (the same draws of rng, in the same order, for either drawing)."""
    image = Image.new("RGB", (200, 200), tuple(int(v) for v in rng.integers(40, 200, 3)))
    skin = tuple(int(v) for v in rng.integers([150, 100, 80], [240, 190, 160]))
    hair = (int(255 * min(1.0, max(0.0, (age - 35) / 45))),) * 3  # greyer with age
    return image, ImageDraw.Draw(image), skin, hair


def cartoon_face(age: float, rng: np.random.Generator) -> Image.Image:
    """The demo's 200x200 cartoon face of no real person, greyer and more wrinkled with age.

    Not framed as an aligned crop (dlib's landmarks measure it as misaligned, about 3.3), so the
    demo reads its cameras as crops. It stays the demo's face because the bundled model ages it
    across every age group (drawn_face it ages 0-45, younger the greyer it is), so the demo's
    report shows older groups and the cells it withholds.
    """
    image, draw, skin, hair = _canvas(age, rng)
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


# The drawn face is framed as a UTKFace aligned crop, so that the pipeline reads it as one: dlib's
# 5 landmarks, fitted to it, fall where faces.ALIGNED_CROP_LANDMARKS puts an aligned crop's (x 200
# px: eye corners x 44/75 and 121/152 at y 60-62, nose foot 98, 117). The features are drawn a
# pixel or two off those points where the fitter reads them shifted (means over 200 faces). The
# misalignment (faces.alignment) of 1,800 faces (seeds 0-599, 5000-5599, 20000-20599, ages
# 1-99): by the crop vote median 0.15-0.16, largest 0.48; fitted in the assumed box median
# 0.14-0.15, largest 0.70 (tests/test_sample.py checks 300).
DRAWN_EYES = ((44.0, 73.0), (153.0, 123.0))  # (outer, inner) corner x of each eye
DRAWN_EYE_Y = 58.5  # the outer corners' y; the inner ones sit DRAWN_EYE_DROP lower
DRAWN_EYE_DROP = 1.7
DRAWN_NOSE = (98.5, 109.0)  # the nostrils' centre; the fitter reads the nose's foot a bit lower
DRAWN_HEAD = (22, 0, 178, 196)  # the face's ellipse, outlined (it stands out on any background)
DRAWN_HAIR = (8, -60, 192, 40)  # above the brows: grey hair beside the eyes misleads the fitter


def drawn_face(age: float, rng: np.random.Generator) -> Image.Image:
    """A 200x200 cartoon face of no real person, framed as an aligned face crop (its eyes and
    nose where an aligned crop's landmarks sit), greyer and more wrinkled with age."""
    image, draw, skin, hair = _canvas(age, rng)
    dark = tuple(int(c * 0.55) for c in skin)
    draw.ellipse(DRAWN_HAIR, fill=hair)
    draw.ellipse(DRAWN_HEAD, fill=skin, outline=dark, width=2)
    for outer, inner in DRAWN_EYES:
        out = 1 if outer > inner else -1  # towards the eye's outer corner
        draw.line((outer + 2 * out, 45, inner - 6 * out, 45), fill=dark, width=4)  # brow
        _draw_eye(draw, outer, inner, dark)
    nose_x, nose_y = DRAWN_NOSE
    draw.arc((nose_x - 15, nose_y - 9, nose_x + 15, nose_y + 9), 20, 160, fill=dark, width=3)
    for side in (-7, 7):  # nostrils
        nostril = (nose_x + side - 4, nose_y - 1, nose_x + side + 4, nose_y + 4)
        draw.ellipse(nostril, fill=(60, 40, 30))
    for i in range(int(age // 20)):  # forehead lines
        draw.line((60, 22 + 5 * i, 140, 22 + 5 * i), fill=(120, 90, 70))
    draw.arc((70, 132, 128, 162), 20, 160, fill=(150, 40, 40), width=4)
    return image


def _draw_eye(draw: ImageDraw.ImageDraw, outer: float, inner: float, lid: tuple) -> None:
    """An almond-shaped eye whose pointed corners are at (outer, DRAWN_EYE_Y) and (inner,
    DRAWN_EYE_Y + DRAWN_EYE_DROP), its upper lid drawn, a dark iris in the middle."""
    turn = np.linspace(0, np.pi, 12)
    xs = outer + (inner - outer) * (1 - np.cos(turn)) / 2
    ys = DRAWN_EYE_Y + DRAWN_EYE_DROP * (1 - np.cos(turn)) / 2
    upper = [(float(x), float(y - 8 * np.sin(t))) for x, y, t in zip(xs, ys, turn, strict=True)]
    lower = [(float(x), float(y + 5 * np.sin(t))) for x, y, t in zip(xs, ys, turn, strict=True)]
    draw.polygon(upper + lower[::-1], fill=(255, 255, 255), outline=lid)
    draw.line(upper, fill=lid, width=2)
    middle = (outer + inner) / 2
    draw.ellipse((middle - 6, DRAWN_EYE_Y - 6, middle + 6, DRAWN_EYE_Y + 6), fill=(40, 30, 20))


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
