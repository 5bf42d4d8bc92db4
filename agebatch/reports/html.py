"""The morning report: one self-contained HTML page of a published day and its trend.

This module prepares plain data (words, formatted figures, tables as rows of text) and the
Jinja2 template `templates/report.html.j2` lays it out, with autoescape on: every text from the
data is escaped there. Charts are inline SVG markup from agebatch.reports.svg. The page has no
script, loads nothing (its Content-Security-Policy forbids it) and holds no pixel of a photo.
Each chart is followed by a table of its figures, for people who want the numbers and for the
tests that read them back. See docs/report.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

import jinja2
import pandas as pd
from markupsafe import Markup

from agebatch.config import TREND_DAYS, RunConfig
from agebatch.predict.card import ModelCard
from agebatch.reports.offers import DASH, TIMES, top_offers, window_note
from agebatch.reports.report_data import (
    CHAIN,
    ReportData,
    calendar,
    camera_notes,
    category_mix,
    correction_note,
    coverage,
    for_store,
    group_key,
    read_chain,
    read_report,
    share_table,
)
from agebatch.reports.svg import bar_chart, line_chart, percent, stacked_chart
from agebatch.schema import UNKNOWN_GROUP, AgeCheck, Level, Reason, ReceiptStatus

log = logging.getLogger(__name__)

# Nothing leaves the page: no script, no request; inline styles and data: images only.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
OFFERS_SHOWN = 3  # offers per group and kind of item
REPORT_DAYS = TREND_DAYS  # days of the trend, unless asked for others (agebatch.config)
# Rows of the review list on one page at most, shared among its stores (at least one each):
# about 400 bytes a row, so the list stays well under 1 MB however large the day. The whole list
# is the alcohol_checks table; a page says so under a list it cut.
REVIEW_ROWS = 500

CHECK_WORDS = {
    AgeCheck.ID_SEEN: "ID seen",
    AgeCheck.ID_REFUSED: "ID refused",
    AgeCheck.NOT_ASKED: "not asked",
    AgeCheck.NOT_RECORDED: "nothing recorded",
}
STATUS_WORDS = {
    ReceiptStatus.MATCHED: "matched (an age)",
    ReceiptStatus.NO_PHOTO: "no photo",
    ReceiptStatus.UNREADABLE: "photo unreadable",
    ReceiptStatus.NO_FACE: "no face in the photo",
    ReceiptStatus.LOW_QUALITY: "a face below the quality floor",
    ReceiptStatus.REFUSED: "photo refused",
}


@dataclass(frozen=True)
class Figure:
    """One headline figure: what it is and its value for people."""

    label: str
    value: str


@dataclass(frozen=True)
class Table:
    """A table of figures as text: data-table names it (and data-scope its scope) for readers
    and tests; text_columns are columns of words, left-aligned and wrapped."""

    name: str
    header: list[str]
    rows: list[list[str]]
    scope: str | None = None
    text_columns: tuple[int, ...] = ()
    note: str | None = None  # written under the table (what it leaves out)
    link: tuple[str, str] | None = None  # (href, words): the report's page that shows more


@dataclass
class Block:
    """A part of a section (a scope, a store): its title, notes, chart, tables, notes."""

    title: str | None = None
    before: list[str] = field(default_factory=list)
    chart: Markup | None = None
    tables: list[Table] = field(default_factory=list)
    after: list[str] = field(default_factory=list)


@dataclass
class Section:
    """A section of the page: its anchor, heading, verdict, notes, blocks, closing notes."""

    id: str
    heading: str
    notes: list[str] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    closing: list[str] = field(default_factory=list)
    verdict: str | None = None


NAV = (
    ("shares", "shares"),
    ("trend", "trend"),
    ("mix", "category mix"),
    ("coverage", "coverage"),
    ("compliance", "alcohol"),
    ("offers", "offers"),
)


def reason_words(row: dict | pd.Series) -> str:
    """Why a sale is on the review list, in plain words."""
    reason = row["reason"]
    if reason == Reason.UNDER_LEGAL_AGE:
        return f"looked under the legal age ({row['legal_age']:g})"
    if reason == Reason.UNDER_CHALLENGE_AGE:
        return f"looked under {row['flag_threshold']:g}, the age to ask for ID at"
    if reason == Reason.NO_PHOTO:
        return "no photo of the shopper"
    if reason == Reason.UNREADABLE:
        return "the photo could not be read"
    if reason == Reason.NO_FACE:
        return "no face found in the photo"
    if reason == Reason.LOW_QUALITY:
        return "the face in the photo was below the model's quality floor (too dark, turned)"
    if reason == Reason.REFUSED:
        return "the photo was refused (outside the day folder, not a file, or over a budget)"
    if reason == Reason.SOLD_AFTER_REFUSAL:
        return "sold although the till recorded a refused ID"
    return str(reason)


def _scope_name(scope: str) -> str:
    """A scope in words: the chain, or 'store S01'."""
    return "the chain" if scope == CHAIN else f"store {scope}"


def _table(
    header: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    name: str,
    scope: str | None = None,
    text_columns: Sequence[int] = (),
) -> Table:
    """A table of figures, each cell as text."""
    return Table(
        name,
        [str(h) for h in header],
        [[str(cell) for cell in row] for row in rows],
        scope,
        tuple(text_columns),
    )


# Currencies written with their sign before the amount; any other code follows it (12.50 CHF).
SIGNS = {"GBP": "£", "EUR": "€", "USD": "$"}
CURRENCY = RunConfig.model_fields["currency"].default  # the run's, unless asked for another


def _money(value: object, currency: str) -> str:
    """An amount to the cent with its currency (£12.50, 12.50 CHF), or a dash."""
    if value is None or pd.isna(value):
        return "\u2013"
    amount = f"{float(value):,.2f}"
    sign = SIGNS.get(currency)
    if not currency:
        return amount
    if sign is None:
        return f"{amount} {currency}"
    return f"-{sign}{amount[1:]}" if amount.startswith("-") else f"{sign}{amount}"


def _count(value: object) -> str:
    """A whole count, or a dash when there is none."""
    return "\u2013" if value is None or pd.isna(value) else f"{int(value):,}"


def _rate(value: object) -> str:
    """A rate as a percentage, or a dash."""
    return percent(None if value is None or pd.isna(value) else float(value))


def headline(data: ReportData) -> list[Figure]:
    """The page's headline figures: receipts, those with an age, review list, missed checks."""
    receipts = len(data.statuses)
    matched = int((data.statuses["status"] == ReceiptStatus.MATCHED).sum())
    figures = [
        Figure("receipts", f"{receipts:,}"),
        Figure("with an age", f"{matched:,} ({percent(matched / receipts if receipts else 0)})"),
        Figure("alcohol sales to review", f"{len(data.checks):,}"),
    ]
    if data.checks_recorded:
        missed = int(data.checks["missed_check"].fillna(False).sum())
        figures.append(Figure("missed ID checks", f"{missed:,}"))
    else:
        figures.append(Figure("missed ID checks", "not recorded"))
    shares = share_table(data, data.scopes[0])
    best = shares["share"].idxmax() if shares["receipts"].sum() else None
    if best is not None:
        figures.append(Figure("largest age group", f"{best} ({percent(shares.at[best, 'share'])})"))
    return figures


def _model_error(card: ModelCard | None, version: object) -> str:
    """The model's measured error in words, or why it is not shown."""
    if card is None or card.version != version:
        return (
            f"The model card of {version} was not given, so its measured error is not shown "
            "(agebatch report --model MODEL.keras)."
        )
    error = card.error
    if error.mae is None:
        return f"The model card of {version} states no measured error."
    where = error.model_extra.get("measured_on") if error.model_extra else None
    bands = ", ".join(
        f"{band.replace('-', DASH)}: {mae:.1f}" for band, mae in error.mae_by_band.items()
    )
    measured = f", measured on {where}" if where else ""
    return (
        f"Ages are the model's estimates: {version} is off by {error.mae:.1f} years on average "
        f"(by age band, in years: {bands}){measured}."
    )


WITHHELD = "withheld"  # how a withheld figure reads on the page: never 0, never a dash
WITHHELD_NOTE = (
    "“withheld”: too few shoppers to show without singling someone out (fewer than "
    "the run's minimum, 5 unless set otherwise), or a figure that would give such a one away; "
    "it is not zero and is drawn as nothing."
)


def _or_withheld(text: str, withheld: bool) -> str:
    """A figure's text, or the withheld mark."""
    return WITHHELD if withheld else text


def _shares_section(data: ReportData, card: ModelCard | None) -> Section:
    """Age-group share of receipts (raw and corrected) and of revenue, per scope."""
    section = Section(
        "shares",
        "Who shops: age-group shares",
        notes=[
            "Share of the receipts with an age (a photo the model read), raw and corrected for "
            "the model's mix-ups of neighbouring groups (how, under each table), and share of "
            "those receipts' revenue (not corrected). " + WITHHELD_NOTE,
            _model_error(card, data.run.get("model_version")),
        ],
    )
    for scope in data.scopes:
        table = share_table(data, scope)
        block = Block(_capital(_scope_name(scope)))
        section.blocks.append(block)
        if not table["receipts"].sum() and not table["withheld"].any():
            block.before.append(f"No receipt of {_scope_name(scope)} had an age on {data.day}.")
            continue
        series = [("receipts", _optional(table["share"]))]
        if table["corrected_share"].notna().any():
            series.append(("receipts, corrected", _optional(table["corrected_share"])))
        if data.receipts is not None:
            series.append(("revenue", _optional(table["revenue_share"])))
        label = f"Age-group shares, {_scope_name(scope)}, {data.day}"
        block.chart = bar_chart(f"shares:{scope}", label, data.groups, series, WITHHELD)
        rows = [
            (
                group,
                _or_withheld(_count(row["receipts"]), row["withheld"]),
                _or_withheld(_rate(row["share"]), row["withheld"]),
                _rate(row["corrected_share"]),
                _or_withheld(_money(row["revenue"], data.currency), pd.isna(row["revenue"])),
                _or_withheld(_rate(row["revenue_share"]), pd.isna(row["revenue"])),
            )
            for group, row in table.iterrows()
        ]
        header = ["age group", "receipts", "share", "corrected share", "revenue", "revenue share"]
        block.tables.append(_table(header, rows, name="shares", scope=scope))
        if table["corrected_share"].isna().all():
            block.after.append(
                "No corrected shares here: "
                + (
                    "a group is withheld, and correcting would tell its size."
                    if table["withheld"].any()
                    else f"{correction_note(data, scope)}."
                )
            )
        else:
            block.after.append(
                "Corrected shares undo the model's measured mix-ups between neighbouring age "
                f"groups (for analysts, the method: {correction_note(data, scope)})."
            )
    if data.receipts is None:
        section.closing.append(
            f"{data.day} has no age_group_receipts (published by an older agebatch):"
            " no revenue shares."
        )
    return section


def _optional(values: Iterable[object]) -> list[float | None]:
    """Values with NaN and NA as None."""
    return [None if v is None or pd.isna(v) else float(v) for v in values]


def _trend_section(data: ReportData) -> Section:
    """Each group's share of receipts over the trend's days."""
    scope = data.store or CHAIN
    axis = calendar(data.trend_days[0], data.day)
    days = [d.isoformat() for d in axis]
    trend = data.trend.assign(day=pd.to_datetime(data.trend["day"]).dt.date)
    wide = trend.pivot(index="day", columns="age_group", values="share").astype(float)
    wide = wide.reindex(index=axis)
    groups = sorted(wide.columns, key=group_key)
    series = [(group, _optional(wide[group])) for group in groups]
    first = data.trend_days[0]
    section = Section(
        "trend",
        "The trend: each group's share over the days",
        notes=[
            f"Share of receipts with an age, {_scope_name(scope)}, on the "
            f"{len(data.trend_days)} published day{'s' if len(data.trend_days) != 1 else ''} "
            f"from {first} to {data.day} (raw, uncorrected). A line breaks on a day not "
            "published or on which the group was withheld (too few shoppers to show)."
        ],
    )
    if not groups:
        section.notes.append(f"No receipt of {_scope_name(scope)} had an age on these days.")
        return section
    published = set(data.trend_days)
    rows = [
        (day, *(_rate(wide.at[d, g]) if pd.notna(wide.at[d, g]) else WITHHELD for g in groups))
        if d in published
        else (day, *(["not published"] * len(groups)))
        for day, d in zip(days, axis, strict=True)
    ]
    label = f"Age-group shares over the days, {_scope_name(scope)}"
    section.blocks.append(
        Block(
            chart=line_chart(f"trend:{scope}", label, days, series),
            tables=[_table(["day", *groups], rows, name="trend", scope=scope)],
        )
    )
    return section


def _mix_section(data: ReportData) -> Section:
    """Each age group's revenue by category."""
    scope = data.store or CHAIN
    mix = category_mix(data, scope)
    categories = sorted(mix.columns)
    shares = share_table(data, scope)
    totals = [
        mix.loc[group].sum() if group == UNKNOWN_GROUP else shares.at[group, "revenue"]
        for group in mix.index
    ]
    totals = [None if pd.isna(t) else float(t) for t in totals]
    rows, table_rows = [], []
    for group, total in zip(mix.index, totals, strict=True):
        values = [
            None if pd.isna(mix.at[group, c]) else float(mix.at[group, c]) for c in categories
        ]
        rows.append((group, values, _or_withheld(_money(total, data.currency), total is None)))
        table_rows.append(
            (
                group,
                *(
                    WITHHELD
                    if total is None or value is None
                    else percent(max(value, 0.0) / total if total > 0 else None)
                    for value in values
                ),
            )
        )
    label = f"Category mix of each age group's revenue, {_scope_name(scope)}, {data.day}"
    return Section(
        "mix",
        "What each age group buys: category mix",
        notes=[
            f"Share of each age group's revenue per category, {_scope_name(scope)}, {data.day} "
            f"('{UNKNOWN_GROUP}': receipts without an age). The total is written after each bar; "
            "a bar stops short by its withheld part. " + WITHHELD_NOTE
        ],
        blocks=[
            Block(
                chart=stacked_chart(f"mix:{scope}", label, categories, rows, totals),
                tables=[_table(["age group", *categories], table_rows, name="mix", scope=scope)],
            )
        ],
    )


def _coverage_section(data: ReportData) -> Section:
    """Receipts per store: matched, no photo, unreadable, no face, refused."""
    counts = coverage(data)
    statuses = list(counts.columns)
    words = [STATUS_WORDS[ReceiptStatus(s)] for s in statuses]
    rows = [
        (store, [float(v) for v in counts.loc[store]], f"{int(counts.loc[store].sum()):,} receipts")
        for store in counts.index
    ]
    table_rows = [
        (store, *(_count(counts.at[store, s]) for s in statuses), _count(counts.loc[store].sum()))
        for store in counts.index
    ]
    return Section(
        "coverage",
        "Coverage: which receipts got an age",
        notes=[
            "Receipts per store by what the photo gave: an age (matched), no photo at the till "
            "in the match window, a photo that could not be read, no face found in it, or a "
            "photo refused (outside the day folder, not a file, over the pixel or time budget).",
            *camera_notes(data),
        ],
        blocks=[
            Block(
                chart=stacked_chart("coverage", f"Coverage per store, {data.day}", words, rows),
                tables=[_table(["store", *statuses, "receipts"], table_rows, name="coverage")],
            )
        ],
    )


def _compliance_section(data: ReportData) -> Section:
    """Per store, the alcohol sales to review and the cashiers' 7- and 28-day rates."""
    threshold = data.run.get("flag_threshold")
    teen_miss = data.run.get("expected_teen_miss")
    adult_flag = data.run.get("expected_adult_flag")
    if teen_miss is not None:
        measured = (
            f"The model's measured miss rate for 13{DASH}17-year-olds at this flag threshold "
            f"({threshold:g} years) is {percent(teen_miss)}: about that share of teenagers look "
            f"older to it and are not on the list; {percent(adult_flag)} of adults 25+ look "
            "younger and are."
        )
    else:
        shown = f"{threshold:g} years" if threshold is not None else "the flag threshold"
        measured = (
            f"The model card gives no measured miss rate for 13{DASH}17-year-olds at {shown} "
            "(no operating curve measured there), so what the list misses is not known."
        )
    section = Section(
        "compliance",
        "Alcohol sales to review",
        verdict=(
            "This is a list to review, not a verdict: the ages are the model's estimates "
            "from a photo, and a young-looking face is a reason to look at the till roll or "
            "the camera, not a finding against anyone. " + measured
        ),
    )
    if not data.checks_recorded:
        section.notes.append(
            f"The tills recorded no age checks on {data.day}: missed checks are not counted."
        )
    shown = max(1, REVIEW_ROWS // max(1, len(data.stores)))  # rows per store on this page
    for store in data.stores:
        block = Block(f"Store {store}")
        section.blocks.append(block)
        checks = data.checks[data.checks["store_id"] == store].sort_values("paid_at")
        cut, link = None, None
        if len(checks) > shown:
            cut = (
                f"The first {shown:,} of the {len(checks):,} sales to review at {store} on "
                f"{data.day}, by time. Every one is in the alcohol_checks table: select * from "
                f"alcohol_checks where day = '{data.day}' and store_id = '{store}'."
            )
            if data.store is None:  # a store's own page lists up to REVIEW_ROWS
                link = (_store_file(store), f"The page of store {store} lists more of them")
            checks = checks.head(shown)
        if checks.empty:
            block.before.append(f"No alcohol sale to review at {store} on {data.day}.")
        else:
            rows = [
                (
                    pd.Timestamp(row["paid_at"]).strftime("%H:%M:%S"),
                    row["register_id"],
                    row["cashier_id"],
                    _items(row, data.names),
                    _money(row["restricted_amount"], data.currency),
                    "\u2013" if pd.isna(row["predicted_age"]) else f"{row['predicted_age']:.1f}",
                    reason_words(row),
                    CHECK_WORDS.get(row["age_check"], "\u2013")
                    if isinstance(row["age_check"], str)
                    else "\u2013",
                )
                for _, row in checks.iterrows()
            ]
            header = [
                "time",
                "register",
                "cashier",
                "items",
                "amount",
                "predicted age",
                "reason",
                "ID check (till)",
            ]
            table = _table(header, rows, name="review", scope=store, text_columns=(3, 6))
            block.tables.append(replace(table, note=cut, link=link))
        _cashier_table(data, store, block)
    return section


def _named(sku: str, names: dict[str, str]) -> str:
    """A product as a person reads it: its name and code (Lager 6x440ml, BEE003), else its code."""
    name = names.get(sku)
    return f"{name}, {sku}" if name else sku


def _items(row: pd.Series, names: dict[str, str]) -> str:
    """The restricted items of a sale: products (named where the catalog names them), units."""
    skus = "; ".join(_named(str(s), names) for s in row["restricted_skus"])
    units = float(row["restricted_units"])
    return f"{skus} ({units:g} unit{'s' if units != 1 else ''})"


def _cashier_table(data: ReportData, store: str, block: Block) -> None:
    """Add to a store's block its cashiers with restricted sales: the day's, 7- and 28-day
    rates."""
    cashiers = data.cashiers[data.cashiers["store_id"] == store]
    if cashiers.empty:
        block.after.append(f"No cashier at {store} sold alcohol on {data.day}.")
        return
    rate = "missed_rate_28d" if data.checks_recorded else "flagged_rate_28d"
    cashiers = cashiers.sort_values([rate, "cashier_id"], ascending=[False, True])
    header = [
        "cashier",
        "restricted",
        "flagged",
        "no usable photo",
        "flagged rate",
        "flagged 7 days",
        "flagged 28 days",
    ]
    if data.checks_recorded:
        header += ["missed checks", "missed rate", "missed 7 days", "missed 28 days"]
    rows = []
    for _, row in cashiers.iterrows():
        cells = [
            row["cashier_id"],
            _count(row["restricted_receipts"]),
            _count(row["flagged_receipts"]),
            _count(row["unchecked_receipts"]),
            _rate(row["flagged_rate"]),
            _rate(row["flagged_rate_7d"]),
            _rate(row["flagged_rate_28d"]),
        ]
        if data.checks_recorded:
            cells += [
                _count(row["missed_receipts"]),
                _rate(row["missed_rate"]),
                _rate(row["missed_rate_7d"]),
                _rate(row["missed_rate_28d"]),
            ]
        rows.append(cells)
    first = cashiers.iloc[0]
    block.tables.append(_table(header, rows, name="cashiers", scope=store))
    block.after.append(
        f"Flagged rate: sales to shoppers who looked under the flag threshold, of the "
        f"cashier's alcohol sales; missed rate: of those flagged, no ID check recorded. The "
        f"7- and 28-day windows cover {int(first['days_7d'])} and {int(first['days_28d'])} "
        "published days."
    )


def _offers_section(data: ReportData) -> Section:
    """Each group's first offers per scope, from age_group_affinity."""
    section = Section("offers", "What to offer each age group")
    if data.affinity is None:
        section.notes.append(
            f"{data.day} has no age_group_affinity (published by an older agebatch): no "
            "offers to show."
        )
        return section
    section.notes.append(
        "Items each age group buys more often than the shoppers as a whole: how many times as "
        "often, and the range that figure surely lies in (an item is listed only when the whole "
        f"range is above 1 time); the first {OFFERS_SHOWN} per group and kind of item. Ages are "
        "the model's estimates, and buying more often does not say why. "
        f"{window_note(data.affinity)}."
    )
    shown = top_offers(data.affinity, OFFERS_SHOWN)
    for scope in data.scopes:
        if scope == CHAIN:
            rows = shown[shown["level"] == Level.CHAIN.value]
        else:
            rows = shown[(shown["level"] == Level.STORE.value) & (shown["store_id"] == scope)]
        block = Block(_capital(_scope_name(scope)))
        section.blocks.append(block)
        if rows.empty:
            block.before.append(f"No offers for {_scope_name(scope)} in this window.")
            continue
        table_rows = [
            (
                row["age_group"],
                "category" if row["item_kind"] == "category" else "product",
                int(row["offer_rank"]),
                _item(row, data.names),
                f"{row['lift']:.2f}{TIMES}",
                likely_range(row["lift_low"], row["lift_high"]),
                _count(row["receipts"]),
            )
            for _, row in rows.iterrows()
        ]
        header = ["age group", "kind", "rank", "item", "times as often", "surely", "receipts"]
        block.tables.append(
            _table(header, table_rows, name="offers", scope=scope, text_columns=(3,))
        )
        without = [g for g in data.groups if g not in set(rows["age_group"])]
        if without:
            block.after.append("No offers for " + ", ".join(without) + ".")
    return section


def likely_range(low: float, high: float) -> str:
    """An offer's range in words, its low end rounded down so that a range wholly above 1
    never reads as starting at 1.00 ("just over 1" when it would)."""
    floor = math.floor(round(float(low) * 100, 6)) / 100
    start = "just over 1" if float(low) > 1 and floor <= 1 else f"{floor:.2f}"
    return f"{start} to {math.ceil(round(float(high) * 100, 6)) / 100:.2f}{TIMES}"


def _category_name(category: str) -> str:
    return str(category).replace("_", " ")


def _item(row: pd.Series, names: dict[str, str]) -> str:
    """A category, or a product (named where the catalog names it) with its category."""
    if row["item_kind"] == "category":
        return _category_name(row["category"])
    return f"{_named(str(row['item']), names)} ({_category_name(row['category'])})"


@cache
def _templates() -> jinja2.Environment:
    """The report's templates (package data beside this module), autoescaped."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("agebatch.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(data: ReportData, card: ModelCard | None = None) -> str:
    """The page of a day: headline, shares, trend, category mix, coverage, alcohol, offers."""
    scope = f"store {data.store}" if data.store else "the chain"
    run = data.run
    aged_by = f", card {run['model_card']}" if run.get("model_card") else ""  # none: older run
    made = (
        f"Published by agebatch {run.get('agebatch_version')} (run {run.get('run_id')}, model "
        f"{run.get('model_version')}{aged_by}); page made "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC."
    )
    return (
        _templates()
        .get_template("report.html.j2")
        .render(
            csp=CSP,
            title=f"agebatch report: {scope}, {data.day}",
            made=made,
            nav=NAV,
            figures=headline(data),
            sections=[
                _shares_section(data, card),
                _trend_section(data),
                _mix_section(data),
                _coverage_section(data),
                _compliance_section(data),
                _offers_section(data),
            ],
        )
    )


def write_report(
    out: Path,
    path: Path,
    day: dt.date | None = None,
    days: int = REPORT_DAYS,
    store: str | None = None,
    card: ModelCard | None = None,
    restricted: Path | None = None,
    currency: str = CURRENCY,
) -> tuple[Path, ReportData]:
    """Write the page of a day (the chain's, or one store's) to path; return it and its data
    (restricted: the root of the tables naming receipts and cashiers, if not out)."""
    data = replace(read_report(out, day, days, store, restricted), currency=currency)
    return _write(path, render(data, card)), data


def _write(path: Path, page: str) -> Path:
    """Write a page whole: a reader never sees half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(page, encoding="utf-8")
    temporary.replace(path)
    return path


@dataclass(frozen=True)
class ReportPages:
    """The pages a run wrote: the chain's and one per store, and the chain's headline."""

    folder: Path
    chain: Path
    stores: dict[str, Path]
    headline: list[Figure]


def write_pages(
    out: Path,
    day: dt.date,
    folder: Path,
    days: int = REPORT_DAYS,
    card: ModelCard | None = None,
    restricted: Path | None = None,
    currency: str = CURRENCY,
) -> ReportPages:
    """Write the chain's page (index.html) and one page per store (store-<id>.html)."""
    every = replace(read_chain(out, day, days, restricted), currency=currency)  # read once
    chain = _write(folder / "index.html", render(for_store(every, None), card))
    stores = {
        store: _write(folder / _store_file(store), render(for_store(every, store), card))
        for store in every.stores
    }
    for stale in set(folder.glob("store-*.html")) - set(stores.values()):
        stale.unlink()  # a store of an earlier run of the day that this run no longer has
    data = for_store(every, None)
    log.info("Wrote the report of %s to %s (the chain and %d stores)", day, folder, len(stores))
    return ReportPages(folder, chain, stores, headline(data))


def _store_file(store: str) -> str:
    """A store page's file name: `store-<id>.html` for an id of letters, digits, - and _ up to
    100 characters; any other id as `store-~<hex>.html` ('~' is in no plain id, so the two kinds
    never meet), or `store-~~<sha256>.html` when its hex would be a long file name."""
    safe = store.replace("-", "").replace("_", "")
    if safe.isascii() and safe.isalnum() and len(store) <= 100:
        return f"store-{store}.html"
    hexed = store.encode().hex()
    if len(hexed) <= 200:
        return f"store-~{hexed}.html"
    return f"store-~~{hashlib.sha256(store.encode()).hexdigest()}.html"


def report_markdown(pages: ReportPages, day: dt.date) -> str:
    """The run's report artifact: headline figures and where the pages are."""
    lines = [f"# agebatch report, {day}", ""]
    lines += [f"- **{_md(f.label)}**: {_md(f.value)}" for f in pages.headline]
    lines += ["", f"Chain: {_md(pages.chain)}", "", "Stores:"]
    lines += [f"- {_md(store)}: {_md(path)}" for store, path in pages.stores.items()]
    lines += ["", "Open a page in a browser; it loads nothing from the network."]
    return "\n".join(lines) + "\n"


def _md(value: object) -> str:
    """Text for markdown: its markup characters escaped, so a store id is only text."""
    return "".join("\\" + c if c in MARKDOWN_SPECIAL else c for c in str(value))


MARKDOWN_SPECIAL = set("\\`*_{}[]()<>#+-.!|&")


def _capital(text: str) -> str:
    """Text with its first letter a capital (and the rest as it was)."""
    return text[:1].upper() + text[1:]
