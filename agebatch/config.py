"""The one run configuration: every setting of a run, each default written once, here.

`PredictConfig` holds what turns photos into ages (`agebatch predict` and `evaluate` use it);
`RunConfig` adds what a nightly run of a day needs. Both are built once at an entry point —
from CLI flags (agebatch/cli/options.py turns each field into a flag), from the flow's
`config` parameter (a form in the Prefect UI), or from AGEBATCH_<FIELD> environment variables
(the deployment) — and passed down as plain values.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from agebatch.errors import InputError

Region = tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of a frame
WHOLE_FRAME: Region = (0.0, 0.0, 1.0, 1.0)
ENV_PREFIX = "AGEBATCH_"


THREAD_WORKERS_MAX = 4  # more decode workers than this decode in processes by default
# The fixed windows over published history, each written once (the night reads history through
# agebatch.transform.history; affinity_days and coverage_days below are settings of a run):
# cashier_compliance's *_7d and *_28d columns, and the report's trend of age-group shares.
COMPLIANCE_SHORT_DAYS = 7
COMPLIANCE_LONG_DAYS = 28
TREND_DAYS = 28
K_FLOOR = 5  # the least k: a count of fewer receipts than this can name a single shopper


class Acceleration(StrEnum):
    """Whether the model runs XLA-compiled in mixed precision on the device (see predict.device)."""

    AUTO = "auto"
    ON = "on"
    OFF = "off"


class AffinityCorrection(StrEnum):
    """How age_group_affinity allows for the model's confusion between neighbouring groups."""

    CONFUSION = "confusion"  # buyers' and shoppers' group counts corrected with the card's
    NONE = "none"  # the predicted groups as they are


class PhotoKind(StrEnum):
    """What the cameras save: aligned face crops, whole frames, or told apart automatically."""

    AUTO = "auto"
    FRAMES = "frames"
    CROPS = "crops"


# What `auto` finds a camera saves, besides frames (cameras.Verdict.saves, the cameras table)
ALIGNED_CROPS, LOOSE_CROPS = "aligned crops", "loose crops"


def parse_age_bounds(text: str | Any) -> tuple[int, ...]:
    """Parse '18,25,35' (or a sequence) into the lower bounds of the age groups after the first."""
    try:
        parts = text.split(",") if isinstance(text, str) else list(text)
        bounds = tuple(int(part) for part in parts if str(part).strip())
    except (TypeError, ValueError):
        raise InputError(f"Age groups {text!r} must be whole years separated by commas.") from None
    if not bounds or list(bounds) != sorted(set(bounds)) or bounds[0] <= 0:
        raise InputError(f"Age groups {text!r} must be increasing positive ages, e.g. 18,25,35.")
    return bounds


def parse_region(text: str | Any) -> Region:
    """Parse 'x0,y0,x1,y1' (fractions of the frame's width and height) into a face region."""
    try:
        parts = text.split(",") if isinstance(text, str) else list(text)
        x0, y0, x1, y1 = (float(part) for part in parts)
    except (TypeError, ValueError):
        raise InputError(
            f"Face region {text!r} must be four fractions x0,y0,x1,y1, e.g. 0.2,0,0.8,1."
        ) from None
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        raise InputError(
            f"Face region {text!r} must have 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 "
            "(fractions of the frame's width and height)."
        )
    return (x0, y0, x1, y1)


def parse_timezone(text: str) -> str:
    """Check an IANA time zone name such as Europe/London."""
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"Time zone {text!r} is not an IANA name such as Europe/London.") from None
    return text


def parse_day(text: str | dt.date) -> dt.date:
    """Parse a YYYY-MM-DD day, with a clear message when it is not one."""
    if isinstance(text, dt.date):
        return text
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InputError(f"Day {text!r} is not a date in the form YYYY-MM-DD.") from None


def _missing_sentence(names: list[str]) -> str:
    """All the missing settings in one sentence, with the flags and variables that give them."""

    def listed(words: list[str]) -> str:
        return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]

    flags = [f"--{name.replace('_', '-')}" for name in names]
    variables = [f"{ENV_PREFIX}{name.upper()}" for name in names]
    if len(names) == 1:
        return f"Setting {names[0]} is missing: give {flags[0]} or set {variables[0]}."
    return (
        f"Settings {listed(names)} are missing: give {listed(flags)}, or set {listed(variables)}."
    )


def _checked(parse: Any) -> BeforeValidator:
    """A pydantic validator from one of the parse_* functions (their InputError -> ValueError)."""

    def validate(value: Any) -> Any:
        try:
            return parse(value)
        except InputError as error:
            raise ValueError(str(error)) from None

    return BeforeValidator(validate)


def _none_if_empty(value: Any) -> Any:
    """An empty string (an unset environment variable or form field) means 'not given'."""
    return None if value == "" else value


AgeBounds = Annotated[tuple[int, ...], _checked(parse_age_bounds)]
FaceRegion = Annotated[Region, _checked(parse_region)]
TimeZone = Annotated[str, _checked(parse_timezone)]
OptionalPath = Annotated[Path | None, BeforeValidator(_none_if_empty)]
OptionalBool = Annotated[bool | None, BeforeValidator(_none_if_empty)]
OptionalShare = Annotated[
    Annotated[float, Field(ge=0, le=1)] | None, BeforeValidator(_none_if_empty)
]
OptionalPositive = Annotated[Annotated[float, Field(gt=0)] | None, BeforeValidator(_none_if_empty)]
OptionalCount = Annotated[Annotated[int, Field(ge=1)] | None, BeforeValidator(_none_if_empty)]
OptionalText = Annotated[str | None, BeforeValidator(_none_if_empty)]
OptionalInt = Annotated[int | None, BeforeValidator(_none_if_empty)]


class Settings(BaseModel):
    """A settings object: frozen, unknown names refused, built in one sentence or not at all."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def build(cls, values: Mapping[str, Any]) -> Self:
        """Validate values into a config, or raise InputError naming the setting and the fix."""
        try:
            return cls.model_validate(dict(values))
        except ValidationError as error:
            missing = [
                ".".join(str(part) for part in e["loc"])
                for e in error.errors()
                if e["type"] == "missing"
            ]
            if missing:
                raise InputError(_missing_sentence(missing)) from None
            first = error.errors()[0]
            name = ".".join(str(part) for part in first["loc"]) or "config"
            message = first["msg"].removeprefix("Value error, ")
            raise InputError(f"Setting {name}: {message.rstrip('.')}.") from None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """The AGEBATCH_<FIELD> variables that name a field of this config, as raw values."""
        environ = os.environ if environ is None else environ
        return {
            name: environ[ENV_PREFIX + name.upper()]
            for name in cls.model_fields
            if ENV_PREFIX + name.upper() in environ
        }


class PredictConfig(Settings):
    """How photos become ages: the model, batching, decoding and face finding."""

    model: OptionalPath = Field(
        None, description="a .keras age model with its card beside it (default: the bundled one)"
    )
    batch_size: int = Field(
        256,
        ge=1,
        description="photos per model call (256: the least CPU per photo of 32-256 measured on "
        "a 2-core CPU, see docs/throughput.md; the size GPUs want)",
    )
    workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        description="photos decoded in parallel (default: the number of CPU cores)",
    )
    decode_processes: OptionalBool = Field(
        None,
        description="decode in processes instead of threads (default: processes when there are "
        f"more than {THREAD_WORKERS_MAX} decode workers: threads wait on each other for Python's "
        "GIL)",
    )
    accelerate: Acceleration = Field(
        Acceleration.AUTO,
        description="run the model compiled with XLA, in mixed precision, fed uint8 batches "
        "copied to the device: auto (on a GPU), on (also on a CPU, to test it), off",
    )
    max_pixels: int = Field(
        25_000_000,
        ge=1,
        description="a photo with more pixels than this (width x height, read from its header "
        "before decoding) is refused: bounds each decode's memory, well under Pillow's own "
        "limit of 89,478,485",
    )
    decode_timeout_s: float = Field(
        30.0,
        gt=0,
        description="a photo still being read (decode and face search) after this many seconds "
        "is refused and the run moves on",
    )
    photo_kind: PhotoKind = Field(
        PhotoKind.AUTO,
        description="what the photos are: aligned face crops, whole camera frames (the "
        "shopper's face is found), or auto: told apart camera by camera",
    )
    auto_sample: int = Field(
        16,
        ge=1,
        description="with photo kind auto: how many photos of each camera (its first, by name) "
        "decide whether the camera saves crops or frames",
    )
    face_region: FaceRegion = Field(
        WHOLE_FRAME,
        description="in frames, the shopper is the largest face centred in this part of the "
        "frame (fractions x0,y0,x1,y1 of width and height)",
    )

    def decodes_in_processes(self) -> bool:
        """Whether photos are decoded in processes: as set, else with many workers."""
        if self.decode_processes is None:
            return self.workers > THREAD_WORKERS_MAX
        return self.decode_processes and self.workers > 1


class RunConfig(PredictConfig):
    """Everything a nightly run needs besides the day; defaults are the nightly job's."""

    photos: Path = Field(description="the PHOTOS root, holding one folder per day (<day>/)")
    transactions: Path = Field(
        description="the folder of the day's transactions, <day>.parquet or <day>.csv"
    )
    transactions_format: OptionalPath = Field(
        None,
        description="a TOML file mapping a chain's own export onto the transactions contract "
        "(column names, delimiter, decimal comma, date format, unit prices; docs/inputs.md)",
    )
    accept_quarantine: bool = Field(
        False,
        description="publish a day even when a store's quarantined receipts pass the limit "
        "(recorded in runs)",
    )
    catalog: Path = Field(description="the product catalog, .parquet or .csv")
    out: Path = Field(description="the output root of the published Parquet datasets")
    analytics_db: OptionalPath = Field(
        None,
        description="the DuckDB file with one view per dataset that each run refreshes for "
        "analysts' tools (default: analytics.duckdb in the output root)",
    )
    reports: OptionalPath = Field(
        None,
        description="where each day's HTML report goes, in a folder per day (<day>/index.html "
        "for the chain, store-<id>.html per store) (default: reports in the restricted root if "
        "there is one, else in the output root)",
    )
    timezone: TimeZone = Field(
        "Europe/London", description="the chain's time zone (its nightly 'yesterday', schedule)"
    )
    currency: str = Field(
        "GBP",
        pattern=r"^[A-Z]{3}$",
        description="the currency of the transactions' amounts (an ISO 4217 code), written "
        "beside every amount in the report",
    )
    window_before_s: float = Field(
        120.0, ge=0, description="a photo matches a receipt paid up to this many seconds later"
    )
    window_after_s: float = Field(
        5.0, ge=0, description="… or paid up to this many seconds before the photo"
    )
    clock_offsets: OptionalPath = Field(
        None,
        description="camera clock offsets: CSV or Parquet with store_id,register_id,offset_s "
        "(seconds a camera runs ahead of its till; an empty register_id covers the store)",
    )
    age_groups: AgeBounds = Field(
        (18, 25, 35, 45, 55, 65), description="lower bounds of the age groups after the first"
    )
    legal_age: float = Field(18.0, gt=0, description="the minimum age to buy alcohol")
    challenge_age: float = Field(
        25.0, gt=0, description="shoppers who look younger than this are asked for ID"
    )
    margin: float = Field(
        0.0,
        ge=0,
        description="widen both ages by this many times the model's error for the age band "
        "(from the model card)",
    )
    policy: OptionalPath = Field(
        None, description="per-store ages: CSV or Parquet with store_id,legal_age,challenge_age"
    )
    max_teen_miss: OptionalShare = Field(
        None,
        description="flag predicted ages below the lowest threshold whose measured share of "
        "13-17-year-olds read at or above it is at most this (e.g. 0.10; from the model card's "
        "operating curve), in every store, instead of the challenge age",
    )
    face_regions: OptionalPath = Field(
        None,
        description="per-camera face regions: CSV or Parquet with "
        "store_id,register_id,x0,y0,x1,y1 (an empty register_id covers the store)",
    )

    affinity_days: int = Field(
        28,
        ge=1,
        description="age_group_affinity sums the published days of this many days, the run's "
        "day included",
    )
    min_receipts: int = Field(
        20,
        description="age_group_affinity ranks an item for a group only when at least this many "
        f"of the group's receipts bought it in the window (at least k and {K_FLOOR})",
    )
    affinity_confidence: float = Field(
        0.95, gt=0, lt=1, description="confidence level of age_group_affinity's lift intervals"
    )
    affinity_correction: AffinityCorrection = Field(
        AffinityCorrection.CONFUSION,
        description="allow for the model's confusion of neighbouring age groups in "
        "age_group_affinity (confusion: with the model card's; none: predicted groups as they are)",
    )
    restricted_out: OptionalPath = Field(
        None,
        description="a separate output root for the tables that name receipts or cashiers "
        "(receipt_ages, alcohol_checks, cashier_compliance), so that out holds aggregates "
        "only (default: they are published under out with the rest)",
    )
    min_cell_receipts: int = Field(
        K_FLOOR,
        description="k: cells of the age-group tables with fewer receipts (and those that would "
        f"give them away) are published withheld, figures null (at least {K_FLOOR})",
    )
    coverage_margin: float = Field(
        0.2,
        ge=0,
        le=1,
        description="refuse to publish a day when a store's share of unreadable or faceless "
        "photos, or of receipts without a photo, is more than this above its trailing median "
        "(0.2 = 20 percentage points)",
    )
    duckdb_threads: OptionalInt = Field(
        None,
        ge=1,
        description="threads DuckDB builds the day's tables with (default: DuckDB's own, one "
        "per core)",
    )
    coverage_days: int = Field(
        28, ge=1, description="earlier days of a store the trailing median is taken over"
    )
    coverage_min_count: int = Field(
        20,
        ge=1,
        description="a store's share is judged only when it has at least this many photos "
        "(or receipts) that day",
    )
    accept_low_coverage: bool = Field(
        False,
        description="publish a day even when the coverage gate refuses it (recorded in runs)",
    )
    accept_worse_day: bool = Field(
        False,
        description="publish a day again even when its receipts, photos or matched share "
        "collapsed against the published version it replaces (recorded in runs)",
    )
    retention_days: OptionalInt = Field(
        None,
        ge=1,
        description="after a successful run, delete the photos of every other day published "
        "at least this many days ago (default: keep photos)",
    )

    dask_workers: OptionalCount = Field(
        None,
        description="predict the day in shards on a local Dask cluster of this many worker "
        "processes (docs/dask.md); unset: one process, no shards",
    )
    dask_address: OptionalText = Field(
        None,
        description="predict the day in shards on the running Dask scheduler at this address, "
        "e.g. tcp://10.0.0.5:8786 (docs/dask.md)",
    )
    shard_size: int = Field(
        5000,
        ge=1,
        description="with Dask: at most this many photos per shard; a shard holds one store's "
        "register (or part of it)",
    )
    gpu_limit: str = Field(
        "agebatch-gpu",
        description="the Prefect global concurrency limit a flow run holds one slot of while "
        "its model runs on a GPU (create it with: prefect gcl create NAME --limit 1); empty: "
        "none",
    )

    @model_validator(mode="after")
    def _ages_in_order(self) -> Self:
        if self.legal_age > self.challenge_age:
            raise ValueError("the legal age must be at most the challenge age")
        if self.max_teen_miss is not None and self.margin > 0:
            raise ValueError(
                "max_teen_miss chooses the flag threshold from measured error rates, which a "
                "margin would shift: give one of max_teen_miss and margin"
            )
        k = self.min_cell_receipts
        if k < K_FLOOR:
            raise ValueError(
                f"min_cell_receipts (k) is {k}, under {K_FLOOR}: a cell of fewer receipts can "
                "name a single shopper's purchases"
            )
        if self.min_receipts < k:
            raise ValueError(
                f"min_receipts is {self.min_receipts}, under k = {k} (min_cell_receipts): an "
                "offer counted on fewer receipts can name a single shopper's purchases"
            )
        if self.restricted_out is not None:
            out, private = self.out.resolve(), self.restricted_out.resolve()
            if private == out or out in private.parents:
                raise ValueError(
                    f"restricted_out {self.restricted_out} is inside out {self.out}, where "
                    "analysts read: give a folder outside out, or leave restricted_out unset"
                )
        if self.dask_workers is not None and self.dask_address is not None:
            raise ValueError(
                "dask_workers starts a local cluster and dask_address names a running one: "
                "give one of them"
            )
        return self

    @property
    def sharded(self) -> bool:
        """Whether the predict stage runs in shards on a Dask cluster."""
        return self.dask_workers is not None or self.dask_address is not None

    def restricted_root(self) -> Path:
        """Where the tables that name receipts or cashiers are published."""
        return self.restricted_out or self.out

    def day_folder(self, day: dt.date) -> Path:
        """The folder holding one day's photos."""
        return self.photos / day.isoformat()

    def reports_folder(self, day: dt.date) -> Path:
        """The folder of one day's HTML report pages."""
        # The pages list receipts and cashiers: with a restricted root they go there too.
        return (self.reports or self.restricted_root() / "reports") / day.isoformat()

    def yesterday(self) -> dt.date:
        """The day before today in the chain's time zone: the day a nightly run processes."""
        return yesterday(self.timezone)


def yesterday(timezone: str) -> dt.date:
    """The day before today in a time zone."""
    return dt.datetime.now(ZoneInfo(timezone)).date() - dt.timedelta(days=1)


def age_group_labels(bounds: tuple[int, ...]) -> list[tuple[str, float, float]]:
    """Label and [low, high) range of each age group: '<18', '18-24', …, '65+'."""
    groups = [(f"<{bounds[0]}", float("-inf"), float(bounds[0]))]
    for low, high in itertools.pairwise(bounds):
        groups.append((f"{low}-{high - 1}", float(low), float(high)))
    groups.append((f"{bounds[-1]}+", float(bounds[-1]), float("inf")))
    return groups


def default_age_bounds() -> tuple[int, ...]:
    """The default age groups' lower bounds (for tools that have no RunConfig)."""
    return RunConfig.model_fields["age_groups"].default


class Arch(StrEnum):
    """What `agebatch train` trains: the bundled net fine-tuned, or the ResNet50 recipe."""

    DEFAULT = "default"
    RESNET50 = "resnet50"


class Balance(StrEnum):
    """Sample weights against the age imbalance, by 5-year bin."""

    NONE = "none"
    SQRT = "sqrt"  # 1/sqrt(bin count)
    INVERSE = "inverse"  # 1/count


class Loss(StrEnum):
    """The training loss: the error of the predicted age, or that plus a label distribution."""

    MAE = "mae"
    MAE_DIST = "mae+dist"


class FlipTTA(StrEnum):
    """Whether predictions average with the mirror image."""

    AUTO = "auto"  # kept when it lowers the validation MAE
    ON = "on"
    OFF = "off"


class TrainConfig(Settings):
    """Everything that decides what a training run computes (saved in the card and work dir);
    `agebatch train` makes a flag of each field, as `agebatch run` does of RunConfig's."""

    arch: Arch = Field(
        Arch.DEFAULT,
        description="what to train: 'default', the bundled net fine-tuned (no download, the "
        "fast path on a CPU), or 'resnet50', the original ResNet50 recipe",
    )
    weights: str = Field(
        "none",
        description="resnet50 start: imagenet (downloaded once, only when asked), none, or a "
        "no-top weights file",
    )
    image_size: int = Field(
        224, ge=32, description="resnet50 input side in pixels (the default net's is its card's)"
    )
    epochs: int = Field(16, ge=1, description="at most this many epochs")
    batch_size: int = Field(64, ge=1, description="faces per step")
    learning_rate: OptionalPositive = Field(
        None, description="Adam's (default: 1e-4 fine-tuning, 1e-3 resnet50)"
    )
    val_share: float = Field(
        0.2, gt=0, lt=1, description="share of the faces kept aside for validation"
    )
    seed: int = Field(0, description="seeds the split, the order and the augmentation")
    limit: OptionalCount = Field(None, description="train on a seeded subset of N faces")
    balance: Balance = Field(
        Balance.SQRT, description="sample weights against the age imbalance, by 5-year bin"
    )
    patience: int = Field(
        5, ge=1, description="stop after this many epochs without a better validation MAE"
    )
    rotation_deg: float = Field(15.0, ge=0, description="augment with random rotation (degrees)")
    brightness: float = Field(0.2, ge=0, description="augment with random brightness (share)")
    jitter: float = Field(
        0.0,
        ge=0,
        description="augment with random zoom and shift of up to this share of the face",
    )
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay; 0 is plain Adam")
    lr_decay: float = Field(
        0.75, gt=0, le=1, description="multiply the learning rate by this after every epoch"
    )
    flip_tta: FlipTTA = Field(
        FlipTTA.AUTO,
        description="average with the mirror image at prediction time; auto keeps it when it "
        "lowers the validation MAE",
    )
    loss: Loss | None = Field(
        None,
        description="mae: error of the predicted age; mae+dist: plus a label-distribution term "
        "on the default net's age classes (default: mae+dist for default, mae for resnet50)",
    )
    max_age: int = Field(
        100,
        ge=80,
        le=120,
        description="default net: add whole-year age classes past its last (80) up to this age",
    )

    @model_validator(mode="after")
    def _fits_the_arch(self) -> Self:
        if self.loss_name == Loss.MAE_DIST and self.arch != Arch.DEFAULT:
            raise ValueError("the loss mae+dist needs the default net's age distribution output")
        if self.arch == Arch.DEFAULT and self.weights != "none":
            raise ValueError("weights apply to arch resnet50 only")
        return self

    @property
    def loss_name(self) -> Loss:
        """The loss: mae+dist for the default net (it has age classes), mae for resnet50."""
        if self.loss is not None:
            return self.loss
        return Loss.MAE_DIST if self.arch == Arch.DEFAULT else Loss.MAE

    @property
    def adam_rate(self) -> float:
        """The learning rate Adam starts with."""
        if self.learning_rate is not None:
            return self.learning_rate
        return 1e-3 if self.arch == Arch.RESNET50 else 1e-4
