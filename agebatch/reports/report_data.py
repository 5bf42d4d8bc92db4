"""What the HTML report shows, read from the published tables of a day and the days before it.

The day's tables are read from their folders (OUT/<table>/day=<day>/), the trend through the
one history reader (agebatch.transform.history); a table a day was published without (an
older agebatch) reads as None and the page says so. With a store, every frame holds that
store's rows only: the chain's rows and the run's chain-wide counts are left out, so nothing
of another store reaches the page.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from agebatch.config import LOOSE_CROPS, TREND_DAYS, PhotoKind
from agebatch.errors import InputError
from agebatch.publish import partition
from agebatch.reports.offers import group_order
from agebatch.schema import RESTRICTED, UNKNOWN_GROUP, Level, ReceiptStatus
from agebatch.transform.history import published_days, read_history

SHARES = "age_group_shares"
MERGED_BEFORE = "suppressed"  # the merged small groups' row of days published before #26
CHAIN = "chain"  # the scope of the chain's rows, in the page's own words


@dataclass(frozen=True)
class ReportData:
    """The published figures one page shows: the day's, and the trend's over earlier days."""

    day: dt.date
    store: str | None  # the one store of a manager's page; None: the chain and every store
    stores: list[str]  # the stores shown
    groups: list[str]  # age-group labels, youngest first
    shares: pd.DataFrame  # age_group_shares of the day (chain rows only on the chain page)
    receipts: pd.DataFrame | None  # age_group_receipts of the day; None: not published
    sales: pd.DataFrame | None  # store_sales of the day (exact, no age); None: not published
    purchases: pd.DataFrame  # age_group_purchases of the day
    statuses: pd.DataFrame  # receipt_ages of the day: store_id, status
    checks: pd.DataFrame  # alcohol_checks of the day
    cashiers: pd.DataFrame  # cashier_compliance of the day
    run: dict[str, object]  # the day's latest run: model and flag threshold (no counts)
    affinity: pd.DataFrame | None  # age_group_affinity of the day; None: not published
    trend: pd.DataFrame  # age_group_shares of the page's scope over trend_days
    trend_days: list[dt.date]  # the published days of the trend, the day last
    currency: str = ""  # the amounts' currency (RunConfig.currency); "": amounts alone
    names: dict[str, str] = field(default_factory=dict)  # sku -> name (products), where named
    cameras: pd.DataFrame | None = None  # cameras of the day; None: not published

    @property
    def scopes(self) -> list[str]:
        """The scopes the page shows figures for: the chain (not on a store's page), stores."""
        return self.stores if self.store else [CHAIN, *self.stores]

    @property
    def checks_recorded(self) -> bool:
        """Whether the day's tills recorded age checks (missed checks are counted)."""
        return bool(self.run.get("age_checks_recorded"))


# The run's columns the page uses: what the model and the policy were, never the day's counts
# (a run's counts are the chain's).
RUN_COLUMNS = (
    "run_id",
    "started_at",
    "agebatch_version",
    "model_version",
    "model_card",
    "age_checks_recorded",
    "flag_threshold",
    "expected_teen_miss",
    "expected_adult_flag",
)


def read_day(out: Path, table: str, day: dt.date) -> pd.DataFrame | None:
    """One published table's day as a frame, or None when the day has no such table."""
    folder = partition(out, table, day)
    if not folder.is_dir():
        return None
    return pq.read_table(folder).to_pandas()


def _stores_only(frame: pd.DataFrame | None, stores: list[str]) -> pd.DataFrame | None:
    """The rows of the given stores (a chain row, store_id null, is no store's)."""
    if frame is None:
        return None
    return frame[frame["store_id"].isin(stores)].reset_index(drop=True)


def group_key(label: str) -> tuple[int, float]:
    """Where an age-group label sorts: the age groups youngest first, then the merged small
    groups of days published before cells were withheld ('suppressed'), then receipts without
    an age ('unknown')."""
    if label == MERGED_BEFORE:
        return (1, 0.0)
    if label == UNKNOWN_GROUP:
        return (2, 0.0)
    return (0, group_order(label))


def read_report(
    out: Path,
    day: dt.date | None = None,
    days: int = TREND_DAYS,
    store: str | None = None,
    restricted: Path | None = None,
) -> ReportData:
    """The figures of a page for day (default: the latest published) and the days-long trend
    that ends on it; for one store when store is given. The tables naming receipts and
    cashiers are read from restricted (--restricted-out) when given, else from out."""
    return for_store(read_chain(out, day, days, restricted), store)


def read_chain(
    out: Path, day: dt.date | None = None, days: int = TREND_DAYS, restricted: Path | None = None
) -> ReportData:
    """The chain page's figures (every store's and the chain's) of day (default: the latest
    published) and the trend of the days published up to it, at most `days` of them."""
    restricted = restricted or out
    if days < 1:
        raise InputError(f"--days {days} must be at least 1.")
    published = published_days(out, SHARES)
    if not published:
        raise InputError(f"No {SHARES} under {out}: publish a day with agebatch run first.")
    day = day or published[-1]
    if day not in published:
        raise InputError(
            f"{day} is not published under {out}; published days: {published[0]} to "
            f"{published[-1]}."
        )
    shares = read_day(out, SHARES, day)
    purchases = _required(out, "age_group_purchases", day)
    statuses = _required(restricted, "receipt_ages", day)[["store_id", "status"]]
    runs = _required(out, "runs", day).sort_values("started_at")
    trend_days = [d for d in published if d <= day][-days:]
    groups = sorted(
        (set(shares["age_group"]) | set(purchases["age_group"])) - {UNKNOWN_GROUP}, key=group_key
    )
    return ReportData(
        day=day,
        store=None,
        # Every store with receipts, those whose receipts all lack an age (no shares) too.
        stores=sorted(statuses["store_id"].dropna().unique()),
        groups=groups,
        shares=shares,
        receipts=read_day(out, "age_group_receipts", day),
        sales=read_day(out, "store_sales", day),
        purchases=purchases,
        statuses=statuses,
        checks=_required(restricted, "alcohol_checks", day),
        cashiers=_required(restricted, "cashier_compliance", day),
        run={k: _plain(v) for k, v in runs.iloc[-1].to_dict().items() if k in RUN_COLUMNS},
        affinity=read_day(out, "age_group_affinity", day),
        trend=_trend(out, trend_days),
        trend_days=trend_days,
        names=_names(read_day(out, "products", day)),
        cameras=read_day(out, "cameras", day),
    )


def for_store(data: ReportData, store: str | None) -> ReportData:
    """The figures of one store's page (its rows only), or the chain page's when store is
    None; the trend is the page's scope's: the store's rows, or the chain's."""
    if store is None:
        chain = data.trend[data.trend["level"] == Level.CHAIN.value]
        return replace(data, trend=chain.reset_index(drop=True))
    if store not in data.stores:
        raise InputError(
            f"Store {store!r} has no figures on {data.day}; stores: {', '.join(data.stores)}."
        )
    only = [store]
    return replace(
        data,
        store=store,
        stores=only,
        shares=_stores_only(data.shares, only),
        receipts=_stores_only(data.receipts, only),
        sales=_stores_only(data.sales, only),
        purchases=_stores_only(data.purchases, only),
        statuses=_stores_only(data.statuses, only),
        checks=_stores_only(data.checks, only),
        cashiers=_stores_only(data.cashiers, only),
        affinity=_stores_only(data.affinity, only),
        trend=_stores_only(data.trend, only),
        cameras=_stores_only(data.cameras, only),
    )


def _required(out: Path, table: str, day: dt.date) -> pd.DataFrame:
    """A table every published day has; one missing is a damaged output folder."""
    frame = read_day(out, table, day)
    if frame is None:
        hint = (
            "if the day was published with --restricted-out, pass the same --restricted-out; "
            if table in RESTRICTED
            else ""
        )
        raise InputError(
            f"{partition(out, table, day)} is missing: {hint}otherwise publish {day} again."
        )
    return frame


def _plain(value: object) -> object:
    """A pandas scalar as a plain Python value (NaN and NA as None)."""
    if value is None or (not isinstance(value, str | bool) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _trend(out: Path, days: list[dt.date]) -> pd.DataFrame:
    """The shares of every scope over the days (consecutive published days, read through the
    one history reader): level, store_id, age_group, receipts, share, corrected_share, day."""
    columns = ["level", "store_id", "age_group", "receipts", "share", "corrected_share"]
    rows = read_history([out], SHARES, days[0], days[-1], columns).to_pandas()
    return rows[[*columns, "day"]]


def calendar(first: dt.date, last: dt.date) -> list[dt.date]:
    """Every day from first to last: the trend's axis, so a day not published shows as a gap."""
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def _withheld(frame: pd.DataFrame) -> pd.Series:
    """Each row's withheld flag (false in tables published before cells were withheld)."""
    if "withheld" not in frame:
        return pd.Series(False, index=frame.index)
    return frame["withheld"].fillna(False).astype(bool)


def share_table(data: ReportData, scope: str) -> pd.DataFrame:
    """One scope's age-group shares of the day, a row per group: receipts, share and
    corrected_share of matched receipts, revenue and its share among receipts with an age, and
    withheld (the group's figures are not published: receipts, share and revenue NaN, never 0).
    Revenue columns are NaN when the day has no age_group_receipts; the chain's revenue of a
    group is withheld when a store withholds it."""
    shares = data.shares
    rows = (
        shares[shares["level"] == Level.CHAIN.value]
        if scope == CHAIN
        else shares[(shares["level"] == Level.STORE.value) & (shares["store_id"] == scope)]
    )
    rows = rows.assign(withheld=_withheld(rows))
    table = rows.set_index("age_group").reindex(data.groups)
    withheld = table["withheld"].fillna(False).astype(bool)
    result = pd.DataFrame(
        {
            "receipts": table["receipts"].astype(float).where(~withheld),
            "share": table["share"].astype(float).where(~withheld),
            "corrected_share": table.get("corrected_share", pd.Series(dtype=float)).astype(float),
            "withheld": withheld,
        },
        index=pd.Index(data.groups, name="age_group"),
    )
    # a group with no row (no shopper with an age at the scope): 0, exactly
    result.loc[table["level"].isna() & ~withheld, ["receipts", "share"]] = 0.0
    if data.receipts is None:
        return result.assign(revenue=float("nan"), revenue_share=float("nan"))
    money = data.receipts if scope == CHAIN else data.receipts[data.receipts["store_id"] == scope]
    money = money.assign(withheld=_withheld(money), revenue=money["revenue"].astype(float))
    known = money[money["age_group"] != UNKNOWN_GROUP]
    grouped = known.groupby("age_group")
    revenue = grouped["revenue"].sum(min_count=1).where(~grouped["withheld"].any())
    revenue = revenue.reindex(data.groups).where(~withheld)
    # the revenue of every receipt with an age, exact: the day's sales less 'unknown'
    total = known["revenue"].sum()
    if money["withheld"].any():
        total = _with_age(data, scope, money)
    share = revenue / total if total else revenue * float("nan")
    return result.assign(revenue=revenue, revenue_share=share)


def _with_age(data: ReportData, scope: str, money: pd.DataFrame) -> float:
    """The revenue of a scope's receipts with an age from store_sales (exact) less 'unknown';
    NaN when the day has no store_sales."""
    if data.sales is None:
        return float("nan")
    level = Level.CHAIN.value if scope == CHAIN else Level.STORE.value
    sales = data.sales[(data.sales["level"] == level) & (data.sales["category"] == "all")]
    if scope != CHAIN:
        sales = sales[sales["store_id"] == scope]
    unknown = money.loc[money["age_group"] == UNKNOWN_GROUP, "revenue"].sum()
    return float(sales["revenue"].astype(float).sum()) - float(unknown)


def correction_note(data: ReportData, scope: str) -> str:
    """How a scope's corrected shares were made, as the published table says."""
    if "correction" not in data.shares:
        return "none (published before shares were corrected)"
    shares = data.shares
    rows = (
        shares[shares["level"] == Level.CHAIN.value]
        if scope == CHAIN
        else shares[(shares["level"] == Level.STORE.value) & (shares["store_id"] == scope)]
    )
    return "; ".join(sorted(set(rows["correction"].dropna()))) or "none"


def category_mix(data: ReportData, scope: str) -> pd.DataFrame:
    """Revenue per age group (rows, 'unknown' last) and category (columns) of a scope's day;
    a category whose returns outweigh its sales counts as nothing bought; a withheld cell (or,
    for the chain, a cell withheld at some store) is NaN, never 0."""
    purchases = data.purchases
    if scope != CHAIN:
        purchases = purchases[purchases["store_id"] == scope]
    purchases = purchases.assign(
        revenue=purchases["revenue"].astype(float), withheld=_withheld(purchases)
    )
    grouped = purchases.groupby(["age_group", "category"])
    revenue = grouped["revenue"].sum(min_count=1).where(~grouped["withheld"].any())
    revenue = revenue.unstack("category")
    present = purchases.groupby(["age_group", "category"]).size().unstack("category").notna()
    revenue = revenue.where(~present | revenue.notna()).where(present, 0.0)
    order = sorted(revenue.index, key=group_key)
    return revenue.reindex(order).clip(lower=0.0)


def coverage(data: ReportData) -> pd.DataFrame:
    """Receipts per store and status (matched, no_photo, unreadable, no_face, refused) of the
    day."""
    counts = data.statuses.groupby(["store_id", "status"]).size().unstack(fill_value=0)
    columns = [status.value for status in ReceiptStatus]
    return counts.reindex(index=data.stores, columns=columns, fill_value=0).astype(int)


def camera_notes(data: ReportData) -> list[str]:
    """The cameras not read as aligned crops, and those whose reading changed since their
    previous day, in words (none under a photo kind that was set, or before the table)."""
    cameras = data.cameras
    if cameras is None or cameras.empty:
        return []
    name = cameras["store_id"] + "/" + cameras["register_id"]
    notes = []
    for saves, words in (
        (LOOSE_CROPS, f"{LOOSE_CROPS} (each face aligned by its landmarks)"),
        (PhotoKind.FRAMES.value, "frames (each shopper's face found)"),
    ):
        named = sorted(name[cameras["saves"] == saves])
        if named:
            notes.append(f"Cameras read as {words}: {', '.join(named)}.")
    changed = cameras[cameras["changed"].fillna(False).astype(bool)]
    if not changed.empty:
        moves = [
            f"{row.store_id}/{row.register_id} ({row.saves_before} on {row.day_before} → "
            f"{row.saves})"
            for row in changed.sort_values(["store_id", "register_id"]).itertuples()
        ]
        notes.append(
            f"Cameras read otherwise than on their previous day (re-mounted?): {'; '.join(moves)}."
        )
    return notes


def _names(products: pd.DataFrame | None) -> dict[str, str]:
    """Each named sku's name (products); none on a day published without the table."""
    if products is None:
        return {}
    return dict(zip(products["sku"], products["name"], strict=True))
