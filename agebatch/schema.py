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

from agebatch.config import ALIGNED_CROPS, LOOSE_CROPS, PhotoKind


class PhotoStatus(StrEnum):
    """What the predict stage made of one photo."""

    OK = "ok"  # an age was predicted
    UNREADABLE = "unreadable"  # not an image, truncated or corrupt
    NO_FACE = "no_face"  # a whole frame in which no shopper's face was found
    # not opened or not decoded: outside the day folder, not a regular file, over the pixel
    # budget, a colour mode not converted, or over the time budget (docs/hostile-inputs.md)
    REFUSED = "refused"
    # a face was found but reads below the model card's quality floor: no age (quality_part
    # names the failing part)
    LOW_QUALITY = "low_quality"


class ReceiptStatus(StrEnum):
    """How a receipt got (or did not get) its shopper's age."""

    MATCHED = "matched"  # a readable photo with a face: predicted_age is set
    NO_PHOTO = "no_photo"  # no capture at the till in the match window
    UNREADABLE = "unreadable"  # its photo could not be decoded
    NO_FACE = "no_face"  # its photo showed no shopper's face
    REFUSED = "refused"  # its photo was refused (not opened or not decoded, see PhotoStatus)
    LOW_QUALITY = "low_quality"  # its face reads below the model card's quality floor


class Reason(StrEnum):
    """Why a restricted sale is on the review list."""

    UNDER_LEGAL_AGE = "under_legal_age"
    UNDER_CHALLENGE_AGE = "under_challenge_age"  # under the flag threshold (see flag_threshold)
    NO_PHOTO = "no_photo"
    UNREADABLE = "unreadable"
    NO_FACE = "no_face"
    REFUSED = "refused"  # its photo was refused
    LOW_QUALITY = "low_quality"  # its face reads below the card's quality floor: unchecked
    SOLD_AFTER_REFUSAL = "sold_after_refusal"  # the till recorded id_refused, yet it sold


class AgeCheck(StrEnum):
    """What the till recorded when it prompted for an age check on a receipt."""

    ID_SEEN = "id_seen"  # the cashier saw ID and the shopper was old enough
    ID_REFUSED = "id_refused"  # the sale was refused (no or under-age ID)
    NOT_ASKED = "not_asked"  # the cashier confirmed the prompt without asking
    NOT_RECORDED = "not_recorded"  # the receipt's age_check was empty


# Recorded outcomes that mean nobody checked the shopper's ID.
NO_CHECK = (AgeCheck.NOT_ASKED, AgeCheck.NOT_RECORDED)


class Clock(StrEnum):
    """The clock a register's receipts and photos are matched on."""

    UTC = "utc"  # every receipt and photo of the register carried a UTC offset
    LOCAL = "local"  # the store's wall clock


class Level(StrEnum):
    """The scope of an age_group_shares row."""

    STORE = "store"
    CHAIN = "chain"


class ItemKind(StrEnum):
    """What an item of age_group_item_receipts / age_group_affinity is."""

    ALL = "all"  # every matched receipt of the group (the total shares are taken of)
    CATEGORY = "category"  # a catalog category
    SKU = "sku"  # a product


UNKNOWN_GROUP = "unknown"  # age_group of purchases on receipts without an age
WITH_UNKNOWN = ("age_group_purchases", "age_group_receipts")  # tables that sum every receipt

# Exact types: money to the cent, quantities to the gram (weighed goods), never binary floats.
MONEY = pa.decimal128(18, 2)
QUANTITY = pa.decimal128(12, 3)


class CoverageMeasure(StrEnum):
    """A share the coverage gate watches per store (agebatch/transform/coverage.py)."""

    PHOTOS_UNREADABLE = "photos_unreadable"  # of the store's photos
    PHOTOS_NO_FACE = "photos_no_face"  # of the store's photos
    PHOTOS_REFUSED = "photos_refused"  # of the store's photos (links out, pipes, budgets)
    PHOTOS_LOW_QUALITY = "photos_low_quality"  # of the store's photos (under the card's floor)
    RECEIPTS_NO_PHOTO = "receipts_no_photo"  # of the store's receipts


class Verdict(StrEnum):
    """What the coverage gate made of one store's share."""

    OK = "ok"  # at most its limit
    OVER_LIMIT = "over_limit"  # above the trailing median by more than the margin
    TOO_FEW = "too_few"  # too few photos or receipts that day to judge


class Gate(StrEnum):
    """The coverage gate's decision on a published day."""

    PASSED = "passed"  # no store's share over its limit
    ACCEPTED = "accepted"  # some were, published anyway (--accept-low-coverage)


# Tables whose cells of fewer than k receipts are withheld (sql/small_cells.sql): the cell's
# row is published with its figures null and this column true, never as 0.
WITHHELD_COLUMN = "withheld"
WITH_WITHHELD = (
    "age_group_purchases",
    "age_group_receipts",
    "age_group_shares",
    "age_group_item_receipts",
)
# cameras.saves: what a camera's photos were read as. Under --photo-kind auto its verdict
# (agebatch.predict.cameras.Verdict.saves; undecided: no photo of its sample could be read, or
# no verdict reached the table); under a kind that was set, that kind.
SAVES_VERDICTS = (ALIGNED_CROPS, LOOSE_CROPS, PhotoKind.FRAMES.value)
SAVES = (*SAVES_VERDICTS, "undecided", "crops (set)", "frames (set)")
CAMERA_HISTORY_DAYS = 28  # cameras.saves_before: the camera's latest row this many days back

# Tables whose rows name a receipt or a cashier: published under --restricted-out when given.
RESTRICTED = ("receipt_ages", "alcohol_checks", "cashier_compliance", "quarantined_receipts")
# quarantined_receipts.rule: the rule a line of the receipt broke (agebatch.inputs.transactions)
QUARANTINE_RULES = (
    "receipt_id",
    "store_id",
    "register_id",
    "cashier_id",
    "sku",
    "paid_at",
    "quantity",
    "quantity_not_finite",
    "quantity_too_large",
    "quantity_scale",
    "amount",
    "line_day",
    "store",
    "register",
    "receipt_day",
    "fields_do_not_parse",
    "age_check",
    "age_check_outcomes",
)


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
    "paid_at",
    pa.timestamp("us"),
    "when the receipt was paid: the store's local wall clock (a UTC offset the till wrote is "
    "converted to it)",
)
AGE = Column("predicted_age", pa.float64(), "the model's age of the shopper, years", True)
AGE_GROUP = Column("age_group", pa.string(), "age group of predicted_age, e.g. 18-24", True)
AGE_GROUP_LOW = Column(
    "age_group_low",
    pa.int32(),
    "youngest age of the group, whole years (0 for the first group): order age groups by it",
    nullable=True,
)
AGE_GROUP_HIGH = Column(
    "age_group_high",
    pa.int32(),
    "first age past the group (a group holds low <= age < high); null for the last, open group",
    nullable=True,
)


def _count(name: str, description: str) -> Column:
    return Column(name, pa.int64(), description)


def _rate(name: str, description: str) -> Column:
    return Column(name, pa.float64(), description, nullable=True)


def _nullable_count(name: str, description: str) -> Column:
    return Column(name, pa.int64(), description, nullable=True)


def _withheld(what: str) -> Column:
    return Column(
        WITHHELD_COLUMN,
        pa.bool_(),
        f"{what} counts fewer than k receipts, or would give such a count away: its figures are "
        "null (withheld, never 0); see docs/safeguards.md",
    )


STORE_SALES = (
    DAY,
    Column("level", pa.string(), "store or chain", allowed=("store", "chain")),
    Column("store_id", pa.string(), "store (null at chain level)", nullable=True),
    Column(
        "category",
        pa.string(),
        "catalog category ('uncategorised': sku not in it); 'all': the scope's whole day",
    ),
    Column(
        "age_restricted",
        pa.bool_(),
        "the skus are age-restricted in the catalog (null in the 'all' row)",
        nullable=True,
    ),
    _count("receipts", "receipts with a line of the category (in 'all': every receipt)"),
    Column("units", QUANTITY, "units (or kg of weighed goods) sold, net of returns"),
    Column("revenue", MONEY, "line totals, net of returns: exact, nothing withheld"),
)


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
        AGE_GROUP_LOW,
        AGE_GROUP_HIGH,
        Column(
            "status",
            pa.string(),
            "matched, or why there is no age",
            allowed=_values(ReceiptStatus),
        ),
        Column(
            "quality_score",
            pa.float64(),
            "the photo's face quality: its worst measured part as a multiple of the model card's "
            "floor (below 1: low_quality, no age; null: no face cut, or no floors)",
            True,
        ),
        Column(
            "quality_part",
            pa.string(),
            "the part that scored lowest (face_px, sharpness, exposure, contrast, landmark_fit, "
            "yaw, roll, detector): the failing part when status is low_quality",
            True,
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
        AGE_GROUP_LOW,
        AGE_GROUP_HIGH,
        Column(
            "category",
            pa.string(),
            "catalog category ('uncategorised': sku not in it; 'adjustment': an adjustment line "
            "of a code not in it, e.g. a coupon)",
        ),
        Column(
            "age_restricted",
            pa.bool_(),
            "the lines' skus are age-restricted (alcohol) in the catalog; false for uncategorised",
        ),
        _nullable_count(
            "category_receipts",
            "receipts with lines of this category: a receipt counts once in every category it "
            "bought, so never sum it across categories (use age_group_receipts.receipts); "
            "null: withheld",
        ),
        Column(
            "units",
            QUANTITY,
            "units (or kg of weighed goods) sold, net of returns; null: withheld",
            True,
        ),
        Column("revenue", MONEY, "line totals, net of returns; null: withheld", True),
        _withheld("the cell"),
    ),
    "age_group_receipts": (
        DAY,
        STORE,
        Column(
            "age_group",
            pa.string(),
            f"age group of the shoppers, every one (empty ones too); '{UNKNOWN_GROUP}' for "
            "receipts without an age (never withheld)",
        ),
        AGE_GROUP_LOW,
        AGE_GROUP_HIGH,
        _nullable_count(
            "receipts",
            "receipts of the group; with the withheld groups' they add up to the store's "
            "receipts (store_sales); null: withheld",
        ),
        Column(
            "revenue",
            MONEY,
            "the group's receipts' total, net of returns (exact); null: withheld",
            True,
        ),
        _withheld("the group"),
    ),
    "age_group_shares": (
        DAY,
        Column("level", pa.string(), "store or chain", allowed=_values(Level)),
        Column("store_id", pa.string(), "store (null at chain level)", nullable=True),
        Column(
            "age_group",
            pa.string(),
            "age group, every one (empty ones too)",
        ),
        AGE_GROUP_LOW,
        AGE_GROUP_HIGH,
        _nullable_count(
            "receipts",
            "matched receipts whose shopper's age fell in the group (sum within one level: "
            "chain rows repeat the stores' receipts); null: withheld",
        ),
        _rate("share", "receipts / all matched receipts of the scope; null: withheld"),
        _withheld("the group (at chain level: withheld at some store)"),
        _rate(
            "corrected_share",
            "share corrected for the model's known confusion; null where a group of the scope "
            "is withheld",
        ),
        Column("correction", pa.string(), "how corrected_share was computed"),
    ),
    "store_sales": STORE_SALES,
    "products": (
        DAY,
        Column("sku", pa.string(), "product code, as in the catalog and the till lines"),
        Column("name", pa.string(), "the product's name (the catalog's optional name column)"),
        Column("category", pa.string(), "catalog category"),
        Column("age_restricted", pa.bool_(), "age-restricted product (e.g. alcohol)"),
    ),
    "age_group_item_receipts": (
        DAY,
        STORE,
        Column("age_group", pa.string(), "age group of the shoppers (matched receipts only)"),
        Column(
            "item_kind",
            pa.string(),
            "category, sku, or all (item 'all': every matched receipt of the group)",
            allowed=_values(ItemKind),
        ),
        Column("item", pa.string(), "the category or sku ('all' for item_kind all)"),
        Column("category", pa.string(), "the item's catalog category ('all' for item_kind all)"),
        _nullable_count(
            "receipts", "the group's receipts that bought the item (net units > 0); null: withheld"
        ),
        _withheld("the count"),
    ),
    "age_group_affinity": (
        DAY,
        Column("level", pa.string(), "store or chain", allowed=_values(Level)),
        Column("store_id", pa.string(), "store (null at chain level)", nullable=True),
        Column("age_group", pa.string(), "age group of the shoppers (predicted)"),
        Column(
            "item_kind",
            pa.string(),
            "category or sku",
            allowed=(ItemKind.CATEGORY.value, ItemKind.SKU.value),
        ),
        Column("item", pa.string(), "the category or sku"),
        Column("category", pa.string(), "the item's catalog category"),
        _nullable_count(
            "receipts",
            "the group's receipts that bought the item over the window; null: withheld on a day",
        ),
        _nullable_count(
            "group_receipts", "the group's matched receipts over the window; null: withheld"
        ),
        _nullable_count(
            "buyer_receipts",
            "matched receipts of every group that bought the item; null: one of them withheld",
        ),
        _nullable_count(
            "all_receipts", "matched receipts of the scope over the window; null: one withheld"
        ),
        _rate("buyer_share", "the group's share of the item's buyers; null: withheld"),
        _rate("shopper_share", "the group's share of all the scope's shoppers; null: withheld"),
        _rate(
            "lift",
            "buyer_share / shopper_share: how many times as likely as the scope's shoppers as a "
            "whole a shopper of the group is to buy the item",
        ),
        _rate("lift_low", "lower end of the lift's interval (Wilson score, see method)"),
        _rate("lift_high", "upper end of the lift's interval"),
        Column(
            "offer_rank",
            pa.int32(),
            "rank among the group's offers of this item_kind in the scope, 1 first (lift_low "
            "> 1 and receipts >= the minimum); null: not an offer",
            nullable=True,
        ),
        Column(
            "days_covered", pa.int32(), "published days the window really covers, this one included"
        ),
        Column("window_days", pa.int32(), "days the window spans (affinity_days)"),
        Column("method", pa.string(), "interval, minimum receipts and correction used"),
    ),
    "alcohol_checks": (
        DAY,
        STORE,
        REGISTER,
        CASHIER,
        Column(
            "approved_by",
            pa.string(),
            "operator(s) other than the cashier who keyed or approved a restricted line (a "
            "supervisor's override), comma-separated; null: the cashier alone",
            nullable=True,
        ),
        RECEIPT,
        PAID_AT,
        AGE,
        Column("restricted_skus", pa.list_(pa.string()), "age-restricted skus sold"),
        Column("restricted_units", QUANTITY, "age-restricted units, net of returns"),
        Column("restricted_amount", MONEY, "amount of the age-restricted lines"),
        Column("reason", pa.string(), "why the sale is to review", allowed=_values(Reason)),
        Column("legal_age", pa.float64(), "the store's legal age"),
        Column("challenge_age", pa.float64(), "the store's challenge age"),
        Column("margin_years", pa.float64(), "years added to both ages for the model's error"),
        Column(
            "age_check",
            pa.string(),
            "the till's recorded age check; null: the day's transactions record none",
            nullable=True,
            allowed=_values(AgeCheck),
        ),
        Column(
            "missed_check",
            pa.bool_(),
            "looked under the flag threshold and no check was recorded (not_asked, "
            "not_recorded); null: checks not recorded",
            nullable=True,
        ),
        Column(
            "flag_threshold",
            pa.float64(),
            "predicted ages below this are flagged: challenge_age + margin_years, or the "
            "threshold --max-teen-miss chose",
        ),
        _rate(
            "expected_teen_miss",
            "share of 13-17-year-olds the model card's curve reads at "
            "or above flag_threshold; null: not on the card's curve",
        ),
        _rate(
            "expected_adult_flag",
            "share of adults 25+ the card's curve reads below "
            "flag_threshold; null: not on the card's curve",
        ),
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
        _nullable_count(
            "missed_receipts",
            "of the flagged, no age check recorded (not_asked, not_recorded); null: the day's "
            "transactions record no checks",
        ),
        _rate("missed_rate", "missed_receipts / flagged_receipts"),
        _nullable_count(
            "sold_after_refusal_receipts",
            "restricted items sold although the till recorded id_refused; null: no checks",
        ),
        _count(
            "approved_receipts",
            "of the restricted receipts, those with a restricted line keyed or approved by "
            "another operator (alcohol_checks.approved_by: a supervisor's override)",
        ),
        _count("restricted_receipts_7d", "restricted receipts over the last 7 days"),
        _count("flagged_receipts_7d", "flagged receipts over the last 7 days"),
        _rate("flagged_rate_7d", "flagged / restricted over the last 7 days"),
        _count("unchecked_receipts_7d", "unchecked receipts (no usable photo), last 7 days"),
        _nullable_count(
            "missed_receipts_7d", "missed receipts over the days of the last 7 that record checks"
        ),
        _rate("missed_rate_7d", "missed / flagged over the days of the last 7 that record checks"),
        Column("days_7d", pa.int32(), "published days the 7-day window really covers"),
        _count("restricted_receipts_28d", "restricted receipts over the last 28 days"),
        _count("flagged_receipts_28d", "flagged receipts over the last 28 days"),
        _rate("flagged_rate_28d", "flagged / restricted over the last 28 days"),
        _count("unchecked_receipts_28d", "unchecked receipts (no usable photo), last 28 days"),
        _nullable_count(
            "missed_receipts_28d", "missed receipts over the days of the last 28 that record checks"
        ),
        _rate(
            "missed_rate_28d", "missed / flagged over the days of the last 28 that record checks"
        ),
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
    "store_coverage": (
        DAY,
        STORE,
        Column(
            "measure",
            pa.string(),
            "the share watched: photos_unreadable, photos_no_face, photos_refused, "
            "photos_low_quality (of the store's "
            "photos), receipts_no_photo (of its receipts)",
            allowed=_values(CoverageMeasure),
        ),
        _count("affected", "photos (receipts) of the store with that status"),
        _count("total", "the store's photos (receipts) that day"),
        _rate("share", "affected / total (null when total is 0)"),
        Column("baseline", pa.float64(), "median share over the store's earlier published days"),
        Column("history_days", pa.int32(), "earlier published days the median is over (0: none)"),
        Column(
            "limit_share", pa.float64(), "baseline + coverage_margin: a higher share is refused"
        ),
        Column("verdict", pa.string(), "ok, over_limit or too_few", allowed=_values(Verdict)),
    ),
    "cameras": (
        DAY,
        STORE,
        Column("register_id", pa.string(), "till (register) in the store: its camera"),
        Column(
            "photo_kind",
            pa.string(),
            "the run's --photo-kind: auto (decided camera by camera), crops or frames (set)",
            allowed=(PhotoKind.AUTO.value, PhotoKind.CROPS.value, PhotoKind.FRAMES.value),
        ),
        Column(
            "saves",
            pa.string(),
            "what the camera's photos were read as: under auto its sample's verdict (aligned "
            "crops: as-is; loose crops: each face aligned by its landmarks; frames: photo by "
            "photo), undecided if none of the photos its sample looked at could be read (read "
            "photo by photo); else the kind set, '(set)'",
            allowed=SAVES,
        ),
        _nullable_count(
            "crop_votes", "photos of the sample that look like face crops; null: not sampled"
        ),
        _nullable_count("frame_votes", "photos of the sample that look like frames"),
        _nullable_count(
            "misaligned_crops",
            "crop votes whose landmarks do not confirm the card's alignment (more than 1 in 8: "
            "loose crops)",
        ),
        _rate(
            "misalignment",
            "median misalignment of the sample's crops (above 1: not aligned; "
            "docs/face-finding.md); null: none measured",
        ),
        _count("photos", "the camera's photos that day"),
        _count("aged", "of them, given an age (status ok)"),
        _count("low_quality", "of them, a face under the card's quality floor"),
        _count("no_face", "of them, no shopper's face found"),
        _count("unreadable", "of them, not decodable"),
        _count("refused", "of them, not opened or not decoded (hostile or over a budget)"),
        Column(
            "saves_before",
            pa.string(),
            f"the camera's latest earlier verdict of auto (up to {CAMERA_HISTORY_DAYS} days back; "
            "days run under a set kind, or undecided, passed over); null: none",
            nullable=True,
            allowed=SAVES_VERDICTS,
        ),
        _rate("misalignment_before", "misalignment on that day"),
        Column("day_before", pa.date32(), "the day of that verdict; null: none", nullable=True),
        Column(
            "changed",
            pa.bool_(),
            "saves differs from saves_before (a camera re-mounted or switched); null unless "
            "saves is a verdict of auto and there is one before",
            nullable=True,
        ),
    ),
    "quarantined_receipts": (
        DAY,
        Column("store_id", pa.string(), "store of the receipt's first line", nullable=True),
        Column(
            "receipt_id",
            pa.string(),
            "receipt, as receipt_ages would publish it (the receipt key's value)",
        ),
        Column("file", pa.string(), "the transactions file's name"),
        Column("line", pa.int64(), "the line shown: a CSV's line (header: line 1), a Parquet row"),
        Column(
            "rule",
            pa.string(),
            "the rule the line broke (docs/inputs.md, Quarantine)",
            allowed=QUARANTINE_RULES,
        ),
        Column("detail", pa.string(), "the rule and the line, in one sentence"),
        Column("raw_line", pa.string(), "the line as read, its fields joined by the delimiter"),
    ),
    "runs": (
        DAY,
        Column("run_id", pa.string(), "one run of the day (a re-run adds a row)"),
        Column("started_at", pa.timestamp("us", tz="UTC"), "when the run started (UTC)"),
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
        _count(
            "receipts_quarantined",
            "receipts left out because a line broke a rule (rows of quarantined_receipts)",
        ),
        Column(
            "quarantine_gate",
            pa.string(),
            "passed, or accepted: published with --accept-quarantine although a store's "
            "quarantined share passed the limit",
            allowed=_values(Gate),
        ),
        Column(
            "receipt_key",
            pa.list_(pa.string()),
            "the columns that made a receipt: receipt_id (unique per chain), store_id and "
            "receipt_id, or store_id, register_id and receipt_id",
        ),
        Column(
            "age_checks_recorded", pa.bool_(), "whether the transactions had an age_check column"
        ),
        _nullable_count(
            "missed_checks", "rows of alcohol_checks with missed_check; null: none recorded"
        ),
        _rate("max_teen_miss", "the --max-teen-miss asked for; null: not given"),
        _rate(
            "flag_threshold",
            "the flag threshold of stores without their own policy; null: it varies (--margin)",
        ),
        _rate("expected_teen_miss", "the card curve's teen miss at flag_threshold"),
        _rate("expected_adult_flag", "the card curve's adult flag share at flag_threshold"),
        Column(
            "clocks_off",
            pa.list_(pa.string()),
            "registers whose camera clock looks off (till_clocks.drift_suspected), store/register",
        ),
        Column(
            "coverage_gate",
            pa.string(),
            "passed, or accepted: published with --accept-low-coverage although refused",
            allowed=_values(Gate),
        ),
        Column(
            "coverage_over",
            pa.list_(pa.string()),
            "store shares over their limit (store_coverage), 'store measure share > limit'",
        ),
        Column(
            "photos_deleted_days",
            pa.list_(pa.string()),
            "days whose photos this run deleted (--retention-days), YYYY-MM-DD",
        ),
        Column(
            "published_at",
            pa.timestamp("us", tz="UTC"),
            "when the record was written, the moment before the day's commit (UTC)",
        ),
        Column("find_s", pa.float64(), "seconds finding photos and reading inputs"),
        Column("predict_s", pa.float64(), "seconds predicting ages"),
        Column("join_s", pa.float64(), "seconds matching and summing in DuckDB"),
        Column("publish_s", pa.float64(), "seconds writing and publishing"),
        Column("photos_per_s", pa.float64(), "photos per second through the predict stage"),
        _nullable_count(
            "shards_total", "shards of the day on the Dask cluster; null: one process, no shards"
        ),
        _nullable_count(
            "shards_reused",
            "shards whose staged ages an earlier attempt of the day left (not predicted again)",
        ),
        _nullable_count(
            "shards_retried", "shards started more than once in this run (a worker lost mid-shard)"
        ),
        Column(
            "model_card",
            pa.string(),
            "the first 12 hex digits of the sha256 of the model card's contents: which card "
            "aged the day (model_version stays when a card's measured corrections are written "
            "again; this changes); null: a run recorded before the column existed",
            nullable=True,
        ),
    ),
}
PARTITION = DAY.name  # every table is partitioned by day; the value lives in the folder name


@dataclass(frozen=True)
class About:
    """What one row of a published table is, and the columns that tell rows apart."""

    grain: str
    key: tuple[str, ...]


ABOUT: dict[str, About] = {
    "receipt_ages": About("receipt", ("day", "receipt_id")),
    "age_group_purchases": About(
        "store, age group, category and age_restricted",
        ("day", "store_id", "age_group", "category", "age_restricted"),
    ),
    "age_group_receipts": About("store and age group", ("day", "store_id", "age_group")),
    "age_group_shares": About(
        "level (store, chain), store and age group", ("day", "level", "store_id", "age_group")
    ),
    "products": About("sku of the day's catalog that has a name", ("day", "sku")),
    "store_sales": About(
        "level (store, chain), store, category and age_restricted ('all': the whole day)",
        ("day", "level", "store_id", "category", "age_restricted"),
    ),
    "alcohol_checks": About("age-restricted sale to review", ("day", "receipt_id")),
    "cashier_compliance": About(
        "store and cashier with age-restricted sales that day", ("day", "store_id", "cashier_id")
    ),
    "age_group_item_receipts": About(
        "store, age group and item (category or sku)",
        ("day", "store_id", "age_group", "item_kind", "item"),
    ),
    "age_group_affinity": About(
        "level (store, chain), store, age group and item over the window",
        ("day", "level", "store_id", "age_group", "item_kind", "item"),
    ),
    "till_clocks": About("store and register", ("day", "store_id", "register_id")),
    "store_coverage": About(
        "store and coverage measure (the gate's figures)", ("day", "store_id", "measure")
    ),
    "cameras": About(
        "camera (store and register) with photos that day", ("day", "store_id", "register_id")
    ),
    "quarantined_receipts": About("receipt a bad line quarantined", ("day", "receipt_id")),
    "runs": About("run of the day (a re-run adds a row)", ("day", "run_id")),
}


def schema(table: str) -> pa.Schema:
    """The Arrow schema of a published table (its day column included)."""
    return pa.schema([column.field() for column in TABLES[table]])


class SchemaError(Exception):
    """A table does not match its published schema: a bug in agebatch, never a user error."""


def conform(table: str, data: pa.Table, age_groups: Mapping[str, object] | None = None) -> pa.Table:
    """The table cast to its schema, after checking names, order, nulls and allowed values.

    age_groups: the run's age-group labels, which age_group columns must hold (besides null,
    and 'unknown' in WITH_UNKNOWN).
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
            extra = (UNKNOWN_GROUP,) if table in WITH_UNKNOWN else ()
            allowed = (*age_groups, *extra)
        if allowed is not None:
            found = set(pc.unique(values.drop_null()).to_pylist())
            if found - set(allowed):
                raise SchemaError(
                    f"{table}.{column.name} holds {sorted(found - set(allowed))}, "
                    f"allowed: {list(allowed)}"
                )
    return data
