"""A day's till transactions (one row per line item) and the product catalog, typed and checked.

A line that breaks a rule quarantines its receipt (left out of every table, listed in
quarantined_receipts); only a file that cannot be read at all is refused (InputError), and a day
whose quarantined share of a store passes QUARANTINE_SHARE is refused unless accepted
(QuarantineRefused, exit 3). See docs/inputs.md for the line kinds and the receipt key.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from agebatch.duck import connect, sql
from agebatch.errors import CoverageRefused, InputError
from agebatch.inputs.captures import Captures
from agebatch.inputs.mapping import CONTRACT, KEYS, TransactionsFormat, raw_columns
from agebatch.inputs.tables import (
    RAW_LINE_CHARS,
    SOURCE_ROW,
    BrokenLine,
    read_lines_raw,
    read_table,
    where,
)
from agebatch.schema import AgeCheck

# Column -> DuckDB type of each input table; every column is required, none may be null.
TRANSACTION_COLUMNS = {
    "receipt_id": "varchar",
    "store_id": "varchar",
    "register_id": "varchar",
    "cashier_id": "varchar",
    "paid_at": "timestamp",
    "sku": "varchar",
    "quantity": "decimal(12, 3)",
    "amount": "decimal(18, 2)",
}
# Optional: the till's age check on the receipt (id_seen, id_refused, not_asked; empty: not
# recorded). Without the column the day records no age checks at all.
AGE_CHECK = "age_check"
# Optional: who keyed or approved the line, where the till writes it beside the cashier.
OPERATOR = "operator_id"
RECORDED_CHECKS = (AgeCheck.ID_SEEN, AgeCheck.ID_REFUSED, AgeCheck.NOT_ASKED)
CATALOG_COLUMNS = {"sku": "varchar", "category": "varchar", "age_restricted": "boolean"}
# Receipt ids repeating across stores (registers) for more than this share of them mean the
# till numbers receipts per store (register); fewer are receipts a bad line put at two places.
# At least KEY_LEAST of them: a small file's few odd lines are quarantined, not taken for a key
# (a format file's receipt_key pins the key where a chain's day is that small).
KEY_SHARE = 0.01
KEY_LEAST = 10
# An adjustment line (discount, coupon, price override, info line): quantity 0, or an amount of
# the other sign. It counts in revenue, never in units, and never makes a sale restricted.
ADJUSTMENT = "(quantity = 0 or sign(quantity) * sign(amount) < 0)"
# The quarantine gate: a store is over when at least QUARANTINE_MIN of its receipts are
# quarantined and they are more than QUARANTINE_SHARE of its receipts or of its revenue (the
# sum of its lines' absolute amounts). One corrupt line is 1 of a store's ~2,000 receipts
# (0.05%); past 1% the store's published figures would move by more than a rounding, and a
# till or export writing broken lines shows there first. Below 3 receipts a small store's odd
# line never stops the chain.
QUARANTINE_SHARE = 0.01
QUARANTINE_MIN = 3
KEY_NAMES = dict(zip(("chain", "store", "register"), KEYS, strict=True))
# The rules that quarantine a receipt (quarantined_receipts.rule), in words.
RULES = {
    "receipt_id": "has no receipt_id",
    "store_id": "has no store_id",
    "register_id": "has no register_id",
    "cashier_id": "has no cashier_id",
    "sku": "has no sku",
    "paid_at": "has a paid_at that is empty or not a time",
    "quantity": "has a quantity that is empty or not a number",
    "quantity_not_finite": "has a quantity that is not a finite number",
    "quantity_too_large": "has a quantity of 1,000,000,000 units or more",
    "quantity_scale": "has a quantity finer than 0.001 (the published scale)",
    "amount": "has an amount that is empty, not a number or past DECIMAL(18, 2)",
    "line_day": "has a line dated neither on the day nor the day before",
    "store": "has lines at two stores under the receipt key",
    "register": "has lines at two registers under the receipt key",
    "receipt_day": "is paid (at its latest line) on another day",
    "fields_do_not_parse": "has a line whose fields do not parse",
    "age_check": (f"has an age_check that is not one of {', '.join(RECORDED_CHECKS)} or empty"),
    "age_check_outcomes": (
        "has two different age-check outcomes on its lines (a receipt records one; other lines "
        "may leave it empty)"
    ),
}
# A broken line whose receipt cannot be named is its own receipt under this prefix (and the
# row in quarantined_receipts names no receipt): nameless lines are listed one by one.
NAMELESS = "\x00line "


# The rules of a column whose value is empty or does not parse, and the type it should have.
COLUMN_TYPES = {
    **{column: "text" for column in ("receipt_id", "store_id", "register_id", "cashier_id", "sku")},
    "paid_at": "timestamp",
    "quantity": "number",
    "amount": TRANSACTION_COLUMNS["amount"],
}


class QuarantineRefused(CoverageRefused):
    """Too many of a store's receipts were quarantined to publish the day (exit 3)."""


@dataclass(frozen=True)
class Transactions:
    """The day's kept lines, the receipts quarantined, and which columns made a receipt."""

    lines: pa.Table  # the kept lines (see read_lines)
    quarantined: pa.Table  # quarantined_receipts without its day column
    key: tuple[str, ...]  # the columns that make a receipt, e.g. ("store_id", "receipt_id")
    over: list[str]  # stores over the quarantine limit, in words

    def gate(self, accept: bool) -> str:
        """passed, or accepted (over the limit, published with accept); else QuarantineRefused."""
        if not self.over:
            return "passed"
        if accept:
            return "accepted"
        raise QuarantineRefused(
            f"Quarantined too many receipts to publish the day: {'; '.join(self.over)} "
            f"(limit {QUARANTINE_SHARE:.0%} of a store's receipts or revenue, at least "
            f"{QUARANTINE_MIN} receipts); fix the file (receipt numbers that restart per store "
            "or register: set receipt_key in a --transactions-format file), or publish anyway "
            "with --accept-quarantine."
        )


def transactions_file(folder: Path, day: dt.date) -> Path:
    """The day's transactions file: <folder>/<day>.parquet or <folder>/<day>.csv (both: refused,
    since which of them the till meant is not for agebatch to guess)."""
    if folder.is_file():
        return folder
    found = [folder / f"{day.isoformat()}{s}" for s in (".parquet", ".csv")]
    found = [path for path in found if path.is_file()]
    if len(found) == 2:
        raise InputError(
            f"Two transactions files for {day}: {found[0]} and {found[1]}; keep the one the "
            "till exported and move the other away."
        )
    if found:
        return found[0]
    raise InputError(
        f"No transactions for {day}: expected {folder / day.isoformat()}.parquet or .csv."
    )


def read_transactions(
    folder: Path, day: dt.date, timezone: str, fmt: TransactionsFormat = CONTRACT
) -> pa.Table:
    """The day's kept lines (read_lines), whatever was quarantined."""
    return read_lines(folder, day, timezone, fmt).lines


def read_lines(
    folder: Path, day: dt.date, timezone: str, fmt: TransactionsFormat = CONTRACT
) -> Transactions:
    """The day's line items, typed and checked, the receipts of bad lines quarantined.

    Kept lines: receipt_id (the receipt key's value: the till's id, prefixed with store_id/
    and register_id/ where numbers restart per store or register), store_id, register_id,
    cashier_id (the receipt's: the operator of most of its lines, ties to its first line's),
    paid_at (the store's wall clock), sku, quantity (the units the line counts: 0 on an
    adjustment line), amount, age_check (when the file has it), paid_at_utc (where the time
    carried an offset or zone; see sql/lines.sql), line_kind (sale, return, adjustment; a
    dictionary column) and operator_id (who keyed the line where that is not the receipt's
    cashier: the file's operator_id, else the line's cashier_id; null: the cashier).
    """
    path = transactions_file(folder, day)
    with connect() as con:
        read = "lines_read"
        present, broken_lines = read_lines_raw(
            con, read, path, "transactions", fmt.required(), fmt.delimiter, fmt.encoding
        )
        broken = {line.row: line for line in broken_lines}
        exprs = raw_columns(fmt, present)
        columns = ", ".join(f"{expr} as {name}" for name, expr in exprs.items())
        con.execute(
            f"create view lines_raw as select {columns}, rowid + 1 as {SOURCE_ROW} from {read}"
        )
        _refuse_written_twice(con, path, fmt)
        key = fmt.receipt_key or _receipt_key(con)
        mode = next(name for name, columns in KEY_NAMES.items() if columns == key)
        con.execute(
            f"create table lines as {sql('lines')}",
            {"timezone": timezone, "day": day, "key": mode},
        )
        _mark_lines(con, broken)
        con.execute(f"create table line_receipts as {sql('line_receipts')}", {"day": day})
        faults = con.execute(sql("line_faults")).fetch_arrow_table()
        over = _over_limit(con) if faults.num_rows else []
        quarantined = _quarantined(con, path, day, faults, list(present), fmt.delimiter, broken)
        if faults.num_rows:
            _something_left(con, path, faults)
        con.execute(f"create table receipt_cashiers as {sql('receipt_cashiers')}")
        con.execute(
            "delete from lines where receipt in "
            "(select receipt from line_receipts where rule is not null)"
        )
        con.execute(f"drop view lines_raw; drop table {read}")  # the file as read: done with
        con.execute(
            f"update lines set cashier_id = receipt_cashiers.cashier_id, {OPERATOR} = "
            f"coalesce(lines.{OPERATOR}, lines.cashier_id) from receipt_cashiers "
            "where lines.receipt = receipt_cashiers.receipt"
        )
        checks = AGE_CHECK in present or fmt.source(AGE_CHECK) in present
        kept = ", ".join(
            [
                "receipt as receipt_id",
                "store_id",
                "register_id",
                "cashier_id",
                "paid_at",
                "sku",
                f"(case when {ADJUSTMENT} then 0 else quantity end)"
                f"::{TRANSACTION_COLUMNS['quantity']} as quantity",
                "amount",
                *([AGE_CHECK] if checks else []),
                "paid_at_utc",
                f"(case when {ADJUSTMENT} then 'adjustment' when quantity > 0 then 'sale' "
                "else 'return' end)::line_kind as line_kind",
                f"nullif({OPERATOR}, cashier_id) as {OPERATOR}",
            ]
        )
        con.execute("create type line_kind as enum ('sale', 'return', 'adjustment')")
        lines = con.sql(f"select {kept} from lines").to_arrow_table()
    return Transactions(lines, quarantined, key, over)


def _refuse_written_twice(
    con: duckdb.DuckDBPyConnection, path: Path, fmt: TransactionsFormat
) -> None:
    """Refuse a file whose header comes again and whose lines after it all repeat lines before
    it: one export written twice (every sale would count twice). Exports of several tills
    joined, each with its header, differ after each header and are read as one file."""
    named = ["receipt_id", "store_id", "sku"]
    same = " and ".join(f"{column} = ?" for column in named)
    again = con.execute(
        f"select min({SOURCE_ROW}) from lines_raw where {same}", [fmt.source(c) for c in named]
    ).fetchone()
    if again is None or again[0] is None:
        return
    row = int(again[0])
    after, new = con.execute(
        f"select (select count(*) from lines_raw where {SOURCE_ROW} > $row), count(*) from ("
        f"select * exclude ({SOURCE_ROW}) from lines_raw where {SOURCE_ROW} > $row except all "
        f"select * exclude ({SOURCE_ROW}) from lines_raw where {SOURCE_ROW} < $row)",
        {"row": row},
    ).fetchone()
    if after and not new:
        raise InputError(
            f"Transactions file {path} repeats its header on {where(path, row)} and its "
            f"{after:,} lines after it repeat lines before it: the export was written twice "
            "(every sale would count twice); keep one copy."
        )


def keyed_captures(captures: Captures, key: tuple[str, ...]) -> Captures:
    """The captures with a manifest's receipt_id read under the day's receipt key (prefixed with
    the photo's store_id/ or store_id/register_id/, as the lines' ids are)."""
    table = captures.table
    if key == KEY_NAMES["chain"] or "receipt_id" not in table.columns:
        return captures
    given = table["receipt_id"].notna()
    parts = [table[column].astype("string") for column in key]
    keyed = parts[0].str.cat(parts[1:], sep="/")
    table = table.assign(receipt_id=table["receipt_id"].where(~given, keyed))
    return dataclasses.replace(captures, table=table)


def _mark_lines(con: duckdb.DuckDBPyConnection, broken: dict[int, BrokenLine]) -> None:
    """Set the faults lines.sql cannot see: a line whose fields do not parse (a blank line is
    dropped), an unknown age_check, two different age-check outcomes on one receipt."""
    blank = [row for row, line in broken.items() if line.problem == "is blank"]
    if blank:
        con.execute(
            f"delete from lines where {SOURCE_ROW} in (select unnest($rows))", {"rows": blank}
        )
    rows = [row for row, line in broken.items() if line.problem != "is blank"]
    if rows:
        con.execute(
            f"update lines set fault = 'fields_do_not_parse', receipt = case when receipt = '' "
            f"then $nameless || {SOURCE_ROW} else receipt end "
            f"where {SOURCE_ROW} in (select unnest($rows))",
            {"rows": rows, "nameless": NAMELESS},
        )
    con.execute(
        f"update lines set fault = '{AGE_CHECK}' where fault is null and {AGE_CHECK} is not null "
        f"and {AGE_CHECK} not in (select unnest($checks))",
        {"checks": list(RECORDED_CHECKS)},
    )
    con.execute(
        f"update lines set fault = 'age_check_outcomes' where fault is null and "
        f"{AGE_CHECK} is not null and receipt in (select receipt from lines "
        f"where {AGE_CHECK} in (select unnest($checks)) group by receipt "
        f"having count(distinct {AGE_CHECK}) > 1)",
        {"checks": list(RECORDED_CHECKS)},
    )


def _something_left(con: duckdb.DuckDBPyConnection, path: Path, faults: pa.Table) -> None:
    """Refuse (InputError) a file in which every receipt broke a rule: likely a column of
    another type or format throughout, a file that cannot be read rather than a few bad lines."""
    first = faults.slice(0, 1).to_pylist()[0]
    rule, row = first["rule"], first[SOURCE_ROW]
    left, bad = con.execute(
        "select count(*) filter (where receipt not in "
        "(select receipt from line_receipts where rule is not null)), "
        "count(*) filter (where fault = $rule) from lines",
        {"rule": rule},
    ).fetchone()
    if left:
        return
    if rule in COLUMN_TYPES:
        (value,) = con.execute(
            f'select "{rule}" from lines_raw where {SOURCE_ROW} = $row', {"row": row}
        ).fetchone()
        shown = "empty" if value is None else repr(value)
        raise InputError(
            f"Transactions file {path}: column {rule} has {bad:,} value(s) that are empty or not "
            f"of type {COLUMN_TYPES[rule]} (first: {shown} on {where(path, row)}), and no "
            "receipt is left to publish."
        )
    raise InputError(
        f"Transactions file {path}: every receipt broke a rule, none is left to publish "
        f"(first: {_fault_sentence(path, dt.date.min, first)})"
    )


def _receipt_key(con: duckdb.DuckDBPyConnection) -> tuple[str, ...]:
    """The columns that make a receipt, from how the day's receipt ids repeat (KEY_SHARE)."""
    ids, stores, store_ids, registers = con.execute(sql("receipt_key")).fetchone()
    if registers >= KEY_LEAST and registers > KEY_SHARE * store_ids:
        return KEY_NAMES["register"]
    if stores >= KEY_LEAST and stores > KEY_SHARE * ids:
        return KEY_NAMES["store"]
    return KEY_NAMES["chain"]


def _over_limit(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The stores whose quarantined receipts pass the gate's limit, in words."""
    rows = con.execute(
        sql("quarantine_shares"), {"share": QUARANTINE_SHARE, "least": QUARANTINE_MIN}
    ).fetchall()
    return [
        f"store {store!r}: {bad:,} of {total:,} receipts ({share:.1%}), "
        f"{revenue_share:.1%} of its revenue"
        for store, bad, total, share, revenue_share in rows
    ]


def _quarantined(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    day: dt.date,
    faults: pa.Table,
    present: list[str],
    delimiter: str,
    broken: dict[int, BrokenLine],
) -> pa.Table:
    """The quarantined receipts as published (quarantined_receipts less day): the line shown,
    the rule, a sentence and the raw line (its fields joined by the file's delimiter)."""
    rows = faults.to_pylist()
    raw: dict[int, str] = {}
    if rows:
        fields = ", ".join(f"coalesce(\"{c}\"::varchar, '')" for c in present)
        wanted = [row[SOURCE_ROW] - 1 for row in rows]
        raw = {
            rowid + 1: text
            for rowid, text in con.execute(
                f"select rowid, concat_ws($sep, {fields}) from lines_read "
                "where rowid in (select unnest($rows))",
                {"sep": delimiter, "rows": wanted},
            ).fetchall()
        }
    for row in rows:
        if row[SOURCE_ROW] in broken:
            raw[row[SOURCE_ROW]] = broken[row[SOURCE_ROW]].raw
            row["problem"] = broken[row[SOURCE_ROW]].problem
        if row["receipt"].startswith(NAMELESS):
            row["receipt"] = row["receipt_id"] = ""
    return pa.Table.from_pylist(
        [
            {
                "store_id": row["store_id"],
                "receipt_id": row["receipt"],
                "file": path.name,
                "line": row[SOURCE_ROW] + (1 if path.suffix.lower() == ".csv" else 0),
                "rule": row["rule"],
                "detail": _fault_sentence(path, day, row),
                "raw_line": raw.get(row[SOURCE_ROW], "")[:RAW_LINE_CHARS],
            }
            for row in rows
        ],
        schema=QUARANTINE_SCHEMA,
    )


QUARANTINE_SCHEMA = pa.schema(
    [
        ("store_id", pa.string()),
        ("receipt_id", pa.string()),
        ("file", pa.string()),
        ("line", pa.int64()),
        ("rule", pa.string()),
        ("detail", pa.string()),
        ("raw_line", pa.string()),
    ]
)


def receipt_checks(lines: pa.Table) -> pa.Table | None:
    """One recorded age check per receipt (receipt_id, age_check), receipts with none left out;
    None when the transactions have no age_check column (checks not recorded that day)."""
    if AGE_CHECK not in lines.column_names:
        return None
    recorded = lines.select(["receipt_id", AGE_CHECK]).filter(pc.is_valid(lines[AGE_CHECK]))
    checks = recorded.group_by("receipt_id").aggregate([(AGE_CHECK, "distinct")])
    return pa.table(
        {
            "receipt_id": checks["receipt_id"],
            AGE_CHECK: pc.list_element(checks[f"{AGE_CHECK}_distinct"], 0),
            "outcomes": pc.list_value_length(checks[f"{AGE_CHECK}_distinct"]),
        }
    )


def _fault_sentence(path: Path, day: dt.date, line: dict[str, Any]) -> str:
    """One sentence naming a quarantined receipt's shown line and the rule it broke."""
    said = f"{where(path, line[SOURCE_ROW])}: receipt {line['receipt_id']!r}"
    rule = line["rule"]
    if rule in ("store", "register"):
        first = where(path, line["first_row"])
        return (
            f"{said} is at {rule} {line[f'line_{rule}_id']!r}, its first line ({first}) "
            f"elsewhere; a receipt is rung up at one {rule} under the receipt key."
        )
    if rule == "receipt_day":
        return f"{said} is paid at {line['receipt_paid_at']}, not on {day}."
    if rule == "fields_do_not_parse":
        problem = line.get("problem", "does not parse")
        named = f"receipt {line['receipt_id']!r}" if line["receipt_id"] else "no receipt it names"
        return (
            f"{where(path, line[SOURCE_ROW])} {problem}: its fields do not parse "
            f"({named}); the line is shown as written."
        )
    if rule == "line_day":
        paid = line["line_paid_at"]
        return f"{said} has a line paid at {paid}, neither on {day} nor the day before."
    return f"{said} {RULES.get(rule, rule)}."


def read_catalog(path: Path) -> pa.Table:
    """The product catalog (sku, category, age_restricted, and name: a product's name where the
    file has the optional column), typed and checked."""
    table = read_table(path, CATALOG_COLUMNS, "catalog", optional={"name": "varchar"})
    # A code padded to a fixed width ('BEE000 ') is the code: the till's lines are trimmed too.
    skus = pc.utf8_trim_whitespace(table.column("sku"))
    table = table.set_column(table.schema.get_field_index("sku"), "sku", skus)
    counts = table.group_by("sku").aggregate([("sku", "count")])
    repeated = counts.filter(pc.field("sku_count") > 1)
    if repeated.num_rows:
        first = repeated.column("sku")[0].as_py()
        raise InputError(f"Catalog file {path} lists the sku {first!r} more than once.")
    return table


def unknown_skus(lines: pa.Table, catalog: pa.Table) -> str | None:
    """A sentence on the sale and return lines whose sku the catalog does not list (they count
    as 'uncategorised', never as alcohol), naming a catalog sku that differs only in case; None
    when every such line's sku is listed. Adjustment lines (coupons) are not counted."""
    kept = lines.filter(pc.field("line_kind") != "adjustment")
    listed = catalog.column("sku")
    missing = kept.filter(pc.invert(pc.is_in(kept.column("sku"), value_set=listed)))
    if not missing.num_rows:
        return None
    skus = sorted(set(missing.column("sku").to_pylist()))
    by_case = {sku.casefold(): sku for sku in listed.to_pylist() if sku is not None}
    named = [
        f"{sku!r} (the catalog has {by_case[sku.casefold()]!r})"
        if sku.casefold() in by_case
        else repr(sku)
        for sku in skus[:3]
    ]
    return (
        f"{missing.num_rows:,} till line(s) of {len(skus):,} sku(s) not in the catalog count as "
        f"'uncategorised' and never as alcohol: {', '.join(named)}"
        + (", …" if len(skus) > 3 else "")
        + "; add them to the catalog, or fix their codes."
    )
