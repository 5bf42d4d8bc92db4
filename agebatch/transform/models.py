"""The night's tables, declared: each SQL model is the file sql/<name>.sql, the tables it reads
(the day's inputs or other models), the $parameters it takes, and whether it is published
under its name. The runner (agebatch.transform.runner) orders them by what they read; adding a
published table is one SQL file and one entry here (docs/development.md shows one)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Model:
    """One SQL model: sql/<name>.sql creates the table <name>."""

    name: str
    reads: tuple[str, ...]  # tables it reads: inputs the stage registers, or other models
    params: tuple[str, ...] = ()  # the $parameters it binds, every one of them
    published: bool = False  # published under its name (else it only feeds other models)


# What the transform stage registers in DuckDB before the models run (agebatch.transform.join).
INPUTS = (
    "lines",  # the day's till lines
    "catalog",  # sku, category, age_restricted
    "captures",  # the day's photos with their predicted ages
    "clock_offsets",  # store_id, register_id, offset_s: a camera's clock against its till's
    "age_groups",  # label, low, high, low_years, high_years
    "policy",  # per-store legal_age and challenge_age
    "margins",  # the card's error per age band
    "curve",  # the card's operating curve
    "age_checks",  # receipt_id, age_check from the till
    "compliance_history",  # earlier days of cashier_compliance (agebatch.transform.history)
    "affinity_history",  # earlier days of age_group_item_receipts (agebatch.transform.history)
    "quarantine",  # the receipts the reader quarantined (agebatch.inputs.transactions)
    "camera_verdicts",  # each camera's verdict under auto (agebatch.transform.cameras)
    "cameras_history",  # earlier days of cameras (agebatch.transform.history)
)

MODELS = (
    # Receipts and photos on one clock per register, then paired: one photo, one shopper.
    Model("register_clocks", ("lines", "captures", "clock_offsets")),
    Model("receipt_times", ("lines", "register_clocks")),
    Model("capture_times", ("captures", "register_clocks")),
    Model("receipt_captures", ("receipt_times", "capture_times"), ("before_s", "after_s")),
    Model(
        "receipt_ages",
        ("receipt_times", "receipt_captures", "age_groups"),
        ("day", "model_version"),
        published=True,
    ),
    # The aggregates, every cell; then the one small-cell rule; then the aggregates published.
    Model("purchase_cells", ("lines", "catalog", "receipt_ages"), ("day",)),
    Model("receipt_groups", ("lines", "receipt_ages"), ("day",)),
    Model("share_groups", ("receipt_ages", "age_groups"), ("day",)),
    Model("small_cells", ("lines", "catalog", "receipt_ages", "age_groups"), ("k",)),
    Model(
        "age_group_purchases",
        ("purchase_cells", "small_cells", "age_groups"),
        ("day",),
        published=True,
    ),
    Model(
        "age_group_receipts",
        ("receipt_groups", "small_cells", "age_groups"),
        ("day",),
        published=True,
    ),
    Model("age_group_shares", ("share_groups", "small_cells"), ("day",), published=True),
    # The day's sales without an age, exact (no cell withheld): the margins of the tables above.
    Model("store_sales", ("lines", "catalog", "receipt_ages"), ("day",), published=True),
    # The catalog's product names, so pages and analysts show names beside codes.
    Model("products", ("catalog",), ("day",), published=True),
    # Alcohol compliance: the restricted sales to review, per cashier over 7 and 28 days.
    Model(
        "restricted_sales",
        ("lines", "catalog", "receipt_ages", "policy", "margins", "age_checks", "curve"),
        ("legal_age", "challenge_age", "margin", "flag_threshold", "checks_recorded"),
    ),
    Model("alcohol_checks", ("restricted_sales",), published=True),
    Model(
        "cashier_compliance",
        ("restricted_sales", "compliance_history"),
        ("day", "short_days", "long_days", "days_7d", "days_28d", "checks_recorded"),
        published=True,
    ),
    Model(
        "till_clocks",
        ("register_clocks", "receipt_times", "capture_times", "receipt_captures"),
        ("day", "before_s", "after_s", "search_s", "bin_s"),
        published=True,
    ),
    # The receipts a bad line quarantined: listed, in no other table.
    Model("quarantined_receipts", ("quarantine",), ("day",), published=True),
    # Each camera: what its photos were read as (auto's verdict), beside its previous day.
    Model(
        "cameras",
        ("captures", "camera_verdicts", "cameras_history"),
        ("day", "photo_kind"),
        published=True,
    ),
    # What each age group buys, the day's counts and the window's sums (lifts added in Python).
    Model(
        "age_group_item_receipts",
        ("lines", "catalog", "receipt_ages", "small_cells"),
        ("day", "k"),
        published=True,
    ),
    Model(
        "age_group_affinity",
        ("age_group_item_receipts", "affinity_history"),
        ("day", "affinity_days", "days_covered"),
        published=True,
    ),
)
