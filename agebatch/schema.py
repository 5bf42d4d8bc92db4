"""The published tables: every column's Arrow type, meaning and allowed values, written once.

The SQL in sql/ produces the tables; `conform` checks each against its schema before it is
published (names, order, nulls, allowed values) and gives the Parquet file its exact types and
each field its description. Tests and the data dictionary read the same definitions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa
import pyarrow.compute as pc


class PhotoStatus(StrEnum):
    """What the predict stage made of one photo."""

    OK = "ok"  # an age was predicted
    UNREADABLE = "unreadable"  # not an image, truncated or corrupt
    NO_FACE = "no_face"  # a whole frame in which no shopper's face was found
    # not opened or not decoded: outside the day folder, not a regular file, over the pixel
    # budget, a colour mode not converted, or over the time budget (docs/hostile-inputs.md)
    REFUSED = "refused"


class ReceiptStatus(StrEnum):
    """How a receipt got (or did not get) its shopper's age."""

    MATCHED = "matched"  # a readable photo with a face: predicted_age is set
    NO_PHOTO = "no_photo"  # no capture at the till in the match window
    UNREADABLE = "unreadable"  # its photo could not be decoded
    NO_FACE = "no_face"  # its photo showed no shopper's face
    REFUSED = "refused"  # its photo was refused (not opened or not decoded, see PhotoStatus)


# Receipts whose sale nobody can check from a photo.
UNCHECKED = (
    ReceiptStatus.NO_PHOTO,
    ReceiptStatus.UNREADABLE,
    ReceiptStatus.NO_FACE,
    ReceiptStatus.REFUSED,
)


class Reason(StrEnum):
    """Why a restricted sale is on the review list."""

    UNDER_LEGAL_AGE = "under_legal_age"
    UNDER_CHALLENGE_AGE = "under_challenge_age"
    NO_PHOTO = "no_photo"
    UNREADABLE = "unreadable"
    NO_FACE = "no_face"
    REFUSED = "refused"


class Clock(StrEnum):
    """The clock a register's receipts and photos are matched on."""

    UTC = "utc"  # every receipt and photo of the register carried a UTC offset
    LOCAL = "local"  # the store's wall clock


class Level(StrEnum):
    """The scope of an age_group_shares row."""

    STORE = "store"
    CHAIN = "chain"


UNKNOWN_GROUP = "unknown"  # age_group of purchases on receipts without an age


@dataclass(frozen=True)
class Column:
    """One published column: name, Arrow type, meaning, whether it may be null, allowed values."""

    name: str
    type: pa.DataType
    description: str
    nullable: bool = False
    allowed: tuple[str, ...] | None = None

    def field(self) -> pa.Field:
        """The Arrow field, with the description in its metadata (kept in the Parquet file)."""
        return pa.field(
            self.name, self.type, self.nullable, metadata={"description": self.description}
        )


def _values(enum: type[StrEnum]) -> tuple[str, ...]:
    return tuple(member.value for member in enum)


DAY = Column("day", pa.date32(), "the day of the receipts (the partition: the folder day=…)")
MODEL_VERSION = Column("model_version", pa.string(), "version of the age model (its card)")
STORE = Column("store_id", pa.string(), "store")
REGISTER = Column("register_id", pa.string(), "till (register) in the store")
CASHIER = Column("cashier_id", pa.string(), "cashier who rang the receipt up")
RECEIPT = Column("receipt_id", pa.string(), "receipt")
PAID_AT = Column(
    "paid_at", pa.timestamp("us"), "when the receipt was paid, the store's local wall clock"
)
AGE = Column("predicted_age", pa.float64(), "the model's age of the shopper, years", True)
AGE_GROUP = Column("age_group", pa.string(), "age group of predicted_age, e.g. 18-24", True)


def _count(name: str, description: str) -> Column:
    return Column(name, pa.int64(), description)


def _rate(name: str, description: str) -> Column:
    return Column(name, pa.float64(), description, nullable=True)


TABLES: dict[str, tuple[Column, ...]] = {
    "receipt_ages": (
        DAY,
        RECEIPT,
        STORE,
        REGISTER,
        CASHIER,
        PAID_AT,
        Column("photo", pa.string(), "the matched photo, relative to the day folder", True),
        AGE,
        AGE_GROUP,
        Column(
            "status",
            pa.string(),
            "matched, or why there is no age",
            allowed=_values(ReceiptStatus),
        ),
        MODEL_VERSION,
    ),
    "age_group_purchases": (
        DAY,
        STORE,
        Column(
            "age_group",
            pa.string(),
            f"age group of the shoppers; '{UNKNOWN_GROUP}' for receipts without an age",
        ),
        Column("category", pa.string(), "catalog category ('uncategorised': sku not in it)"),
        _count("receipts", "receipts with items of the category (not additive across categories)"),
        Column("units", pa.float64(), "units sold, net of returns"),
        Column("revenue", pa.float64(), "line totals, net of returns"),
    ),
    "age_group_shares": (
        DAY,
        Column("level", pa.string(), "store or chain", allowed=_values(Level)),
        Column("store_id", pa.string(), "store (null at chain level)", nullable=True),
        Column("age_group", pa.string(), "age group"),
        _count("receipts", "matched receipts whose shopper's age fell in the group"),
        Column("share", pa.float64(), "receipts / all matched receipts of the scope"),
        _rate("corrected_share", "share corrected for the model's known confusion"),
        Column("correction", pa.string(), "how corrected_share was computed"),
    ),
    "alcohol_checks": (
        DAY,
        STORE,
        REGISTER,
        CASHIER,
        RECEIPT,
        PAID_AT,
        AGE,
        Column("restricted_skus", pa.list_(pa.string()), "age-restricted skus sold"),
        Column("restricted_units", pa.float64(), "age-restricted units, net of returns"),
        Column("restricted_amount", pa.float64(), "amount of the age-restricted lines"),
        Column("reason", pa.string(), "why the sale is to review", allowed=_values(Reason)),
        Column("legal_age", pa.float64(), "the store's legal age"),
        Column("challenge_age", pa.float64(), "the store's challenge age"),
        Column("margin_years", pa.float64(), "years added to both ages for the model's error"),
        MODEL_VERSION,
    ),
    "cashier_compliance": (
        DAY,
        STORE,
        CASHIER,
        _count("restricted_receipts", "receipts with age-restricted sales"),
        _count("flagged_receipts", "of them, shopper looked under the challenge age"),
        _count(
            "unchecked_receipts",
            "of them, no usable photo (no_photo, unreadable, no_face, refused)",
        ),
        _rate("flagged_rate", "flagged_receipts / restricted_receipts"),
        _count("restricted_receipts_7d", "restricted receipts over the last 7 days"),
        _count("flagged_receipts_7d", "flagged receipts over the last 7 days"),
        _rate("flagged_rate_7d", "flagged / restricted over the last 7 days"),
        Column("days_7d", pa.int32(), "published days the 7-day window really covers"),
        _count("restricted_receipts_28d", "restricted receipts over the last 28 days"),
        _count("flagged_receipts_28d", "flagged receipts over the last 28 days"),
        _rate("flagged_rate_28d", "flagged / restricted over the last 28 days"),
        Column("days_28d", pa.int32(), "published days the 28-day window really covers"),
    ),
    "till_clocks": (
        DAY,
        STORE,
        REGISTER,
        Column("clock", pa.string(), "the clock matched on", allowed=_values(Clock)),
        Column("offset_s", pa.float64(), "camera clock offset applied (seconds ahead of the till)"),
        _count("receipts", "receipts paid at the register"),
        _count("captures", "photos taken there (a burst in one second counts once)"),
        _count("matched", "receipts that got a photo, by time or by manifest"),
        _count("lagged", "photos whose lag to a payment was measured"),
        _rate("median_lag_s", "median of paid_at - captured_at, seconds (positive: before paying)"),
        _rate("p90_lag_s", "90th percentile of paid_at - captured_at, seconds"),
        Column("threshold_s", pa.float64(), "half the match window: drift beyond it is flagged"),
        Column("drift_suspected", pa.bool_(), "|median_lag_s| > threshold_s: check the camera"),
    ),
    "runs": (
        DAY,
        Column("run_id", pa.string(), "one run of the day (a re-run adds a row)"),
        Column("started_at", pa.timestamp("us"), "when the run started, local time"),
        Column("agebatch_version", pa.string(), "agebatch version"),
        MODEL_VERSION,
        Column("device", pa.string(), "CPU or GPU"),
        _count("photos_found", "photos of the day"),
        _count("photos_decoded", "readable photos, faceless ones included"),
        _count("photos_unreadable", "photos that could not be decoded"),
        _count(
            "photos_refused",
            "photos not opened or not decoded: outside the day folder, not a regular file, over "
            "the pixel or time budget, or a colour mode not converted (reasons in the log)",
        ),
        _count("photos_no_face", "frames in which no shopper's face was found"),
        _count("files_ignored", "files in the day folder that are not photos of the layout"),
        _count("receipts", "receipts of the day"),
        *(
            _count(f"receipts_{status}", f"receipts with status {status}")
            for status in ReceiptStatus
        ),
        _count("alcohol_checks", "rows of alcohol_checks"),
        Column(
            "clocks_off",
            pa.list_(pa.string()),
            "registers whose camera clock looks off (till_clocks.drift_suspected), store/register",
        ),
        Column("find_s", pa.float64(), "seconds finding photos and reading inputs"),
        Column("predict_s", pa.float64(), "seconds predicting ages"),
        Column("join_s", pa.float64(), "seconds matching and summing in DuckDB"),
        Column("publish_s", pa.float64(), "seconds writing and publishing"),
        Column("photos_per_s", pa.float64(), "photos per second through the predict stage"),
    ),
}
PARTITION = DAY.name  # every table is partitioned by day; the value lives in the folder name


def schema(table: str) -> pa.Schema:
    """The Arrow schema of a published table (its day column included)."""
    return pa.schema([column.field() for column in TABLES[table]])


class SchemaError(Exception):
    """A table does not match its published schema: a bug in agebatch, never a user error."""


def conform(table: str, data: pa.Table, age_groups: Mapping[str, object] | None = None) -> pa.Table:
    """The table cast to its schema, after checking names, order, nulls and allowed values.

    age_groups: the run's age-group labels, which age_group columns must hold (besides null and,
    in age_group_purchases, 'unknown').
    """
    target = schema(table)
    if data.column_names != target.names:
        raise SchemaError(f"{table} has columns {data.column_names}, expected {target.names}")
    for column in TABLES[table]:
        nulls = data.column(column.name).null_count
        if not column.nullable and nulls:
            raise SchemaError(f"{table}.{column.name} has {nulls} null value(s)")
    try:
        data = data.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise SchemaError(f"{table} does not cast to its schema: {error}") from None
    for column in TABLES[table]:
        values = data.column(column.name)
        allowed = column.allowed
        if column.name == "age_group" and age_groups is not None:
            allowed = (
                (*age_groups, UNKNOWN_GROUP) if table == "age_group_purchases" else (*age_groups,)
            )
        if allowed is not None:
            found = set(pc.unique(values.drop_null()).to_pylist())
            if found - set(allowed):
                raise SchemaError(
                    f"{table}.{column.name} holds {sorted(found - set(allowed))}, "
                    f"allowed: {list(allowed)}"
                )
    return data
