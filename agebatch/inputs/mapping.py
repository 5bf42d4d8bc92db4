"""A chain's own transactions export mapped onto the contract by a small TOML file, no code.

A format file (`--transactions-format F.toml`, example: docs/examples/semicolon-unit-prices.toml):

    delimiter = ";"                 # the CSV's field separator (default ",")
    decimal_comma = true            # numbers written 4,50 (no thousands separators)
    paid_at_format = "%d.%m.%Y %H:%M"   # strptime format of paid_at (default: ISO 8601)
    receipt_key = ["store_id", "receipt_id"]   # optional: pins the columns that make a receipt
    [columns]                       # contract column = the export's column
    receipt_id = "Bon"
    unit_price = "Preis"            # instead of amount: amount = quantity x unit_price, to the cent

Contract columns not named under [columns] are read under their own name.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from agebatch.errors import InputError

REQUIRED = (
    "receipt_id",
    "store_id",
    "register_id",
    "cashier_id",
    "paid_at",
    "sku",
    "quantity",
    "amount",
)
OPTIONAL = ("age_check", "operator_id")
KEYS = (
    ("receipt_id",),
    ("store_id", "receipt_id"),
    ("store_id", "register_id", "receipt_id"),
)
SETTINGS = {"delimiter", "decimal_comma", "paid_at_format", "receipt_key", "encoding", "columns"}


@dataclass(frozen=True)
class TransactionsFormat:
    """How one chain writes its transactions; the default is the contract itself."""

    columns: dict[str, str] = field(default_factory=dict)  # contract column -> export column
    delimiter: str = ","
    decimal_comma: bool = False
    paid_at_format: str | None = None
    receipt_key: tuple[str, ...] | None = None  # None: found from the day's lines
    encoding: str = "utf-8"

    def source(self, column: str) -> str:
        """The export's column for a contract column (its own name when not mapped)."""
        return self.columns.get(column, column)

    @property
    def unit_prices(self) -> bool:
        """Whether the export writes a unit price in place of the line amount."""
        return "unit_price" in self.columns

    def required(self) -> list[str]:
        """The export's columns that must be in the file."""
        names = [self.source(c) for c in REQUIRED if not (c == "amount" and self.unit_prices)]
        return names + ([self.columns["unit_price"]] if self.unit_prices else [])


CONTRACT = TransactionsFormat()


def read_format(path: Path) -> TransactionsFormat:
    """A format file read and checked, or one sentence saying what is wrong with it."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InputError(f"Transactions format {path} cannot be read ({error.strerror}).") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"Transactions format {path} is not valid TOML ({error}).") from None
    unknown = sorted(set(data) - SETTINGS)
    if unknown:
        raise InputError(
            f"Transactions format {path} has the unknown setting(s) {', '.join(unknown)} "
            f"(known: {', '.join(sorted(SETTINGS))})."
        )
    columns = data.get("columns", {})
    allowed = {*REQUIRED, *OPTIONAL, "unit_price"}
    if not isinstance(columns, dict) or not all(isinstance(v, str) for v in columns.values()):
        raise InputError(f"Transactions format {path}: [columns] maps names to column names.")
    if set(columns) - allowed:
        raise InputError(
            f"Transactions format {path} maps the unknown column(s) "
            f"{', '.join(sorted(set(columns) - allowed))} (known: {', '.join(sorted(allowed))})."
        )
    if "unit_price" in columns and "amount" in columns:
        raise InputError(
            f"Transactions format {path} names both amount and unit_price: give one of them."
        )
    delimiter = data.get("delimiter", ",")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise InputError(f"Transactions format {path}: delimiter is one character, e.g. ';'.")
    key = data.get("receipt_key")
    if key is not None and tuple(key) not in KEYS:
        raise InputError(
            f"Transactions format {path}: receipt_key is one of "
            f"{'; '.join(str(list(k)) for k in KEYS)}."
        )
    return TransactionsFormat(
        columns=dict(columns),
        delimiter=delimiter,
        decimal_comma=bool(data.get("decimal_comma", False)),
        paid_at_format=data.get("paid_at_format"),
        receipt_key=None if key is None else tuple(key),
        encoding=str(data.get("encoding", "utf-8")),
    )


def raw_columns(fmt: TransactionsFormat, present: list[str]) -> dict[str, str]:
    """The contract's text columns (and optional ones, null when absent) as SQL expressions over
    the file as read: renamed, decimal commas turned to points, paid_at rewritten from its
    format, amount computed from a unit price (rounded half away from zero to the cent)."""

    def text(name: str) -> str:
        return f'"{name}"::varchar'

    def number(name: str) -> str:
        value = f"trim({text(name)})"
        return f"replace({value}, ',', '.')" if fmt.decimal_comma else value

    exprs = {c: text(fmt.source(c)) for c in REQUIRED if c not in ("quantity", "amount")}
    exprs["quantity"] = number(fmt.source("quantity"))
    if fmt.unit_prices:
        price = number(fmt.columns["unit_price"])
        exprs["amount"] = (
            f"round(try_cast({exprs['quantity']} as decimal(18, 3)) * "
            f"try_cast({price} as decimal(18, 4)), 2)::decimal(18, 2)::varchar"
        )
    else:
        exprs["amount"] = number(fmt.source("amount"))
    if fmt.paid_at_format:
        fmt_literal = fmt.paid_at_format.replace("'", "''")
        exprs["paid_at"] = (
            f"coalesce(strftime(try_strptime(trim({exprs['paid_at']}), '{fmt_literal}'), "
            f"'%Y-%m-%d %H:%M:%S.%f'), {exprs['paid_at']})"
        )
    for column in OPTIONAL:
        name = fmt.source(column)
        exprs[column] = text(name) if name in present else "null::varchar"
    return exprs
