"""Read a CSV or Parquet input with typed columns, or say in one sentence what is wrong.

Every row of the file is read and checked, not a sample: a CSV's dialect is fixed (comma,
double quotes, a header line, UTF-8) and its columns are the header's, so DuckDB's sniffer
never runs, and DuckDB's strict mode fails on the first line with the wrong number of fields,
a bad byte or an unclosed quote, anywhere in the file; the sentence names that line.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from pathlib import Path

import duckdb
import pyarrow as pa

from agebatch.duck import connect
from agebatch.errors import InputError

# Fixed, not sniffed: DuckDB's sniffer reads a sample of rows, and a file whose first quote comes
# after it was read with no quote character at all (a cashier id `"C1` taken literally;
# duckdb/duckdb#11838); it may also take '#' for a comment mark and drop the lines that start
# with it, and it fails without a line number on a bad line inside its sample. Columns come
# from the header line (read_csv_header) as text; their types are checked per column below.
CSV_OPTIONS: dict[str, object] = {
    "auto_detect": False,
    "header": True,
    "delimiter": ",",
    "quotechar": '"',
    "escapechar": '"',
    "encoding": "utf-8",
    "strict_mode": True,
    "null_padding": False,
    "ignore_errors": False,
}
# Delimiters a file may be written with, in words (a file read with another is told which).
SEPARATORS = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "vertical bars"}
SOURCE_ROW = "source_row"  # with rows=True: the 1-based row of the file a line came from


def read_table(
    path: Path,
    columns: dict[str, str],
    what: str,
    nullable: Iterable[str] = (),
    optional: dict[str, str] | None = None,
) -> pa.Table:
    """Read a Parquet or CSV file with typed columns (column -> DuckDB type); every column must
    be there, and only those in `nullable` may have empty values; `optional` columns are kept
    when the file has them, empty values as null."""
    with connect() as con:
        load_table(con, "loaded", path, columns, what, nullable, optional)
        return con.table("loaded").fetch_arrow_table()


def load_table(
    con: duckdb.DuckDBPyConnection,
    name: str,
    path: Path,
    columns: dict[str, str],
    what: str,
    nullable: Iterable[str] = (),
    optional: dict[str, str] | None = None,
    rows: bool = False,
) -> None:
    """Load a Parquet or CSV file as table `name` with typed columns, or say what is wrong;
    optional columns (may be absent, may be empty) follow the required ones when present; with
    rows, the table also has SOURCE_ROW (the file's 1-based row of each line)."""
    read = f"{name}_read"
    file_columns = read_raw(con, read, path, what, list(columns))
    for column, type_ in columns.items():
        empty = "false" if column in nullable else f'"{column}" is null'
        wrong = f'try_cast("{column}" as {type_}) is null and "{column}" is not null'
        found = con.execute(
            f'select count(*) over (), "{column}"::varchar, rowid from {read} '
            f"where {empty} or ({wrong}) order by rowid limit 1"
        ).fetchall()
        if found:
            bad, example, rowid = found[0]
            shown = "empty" if example is None else repr(example)
            raise InputError(
                f"{what.capitalize()} file {path}: column {column} has {bad} value(s) that are "
                f"empty or not of type {type_} (first: {shown} on {where(path, rowid + 1)})."
            )
    present = {c: t for c, t in (optional or {}).items() if c in file_columns}
    for column, type_ in present.items():
        value = f"nullif(trim(\"{column}\"::varchar), '')"
        found = con.execute(
            f"select count(*) over (), {value}, rowid from {read} "
            f"where {value} is not null and try_cast({value} as {type_}) is null "
            "order by rowid limit 1"
        ).fetchall()
        if found:
            bad, example, rowid = found[0]
            raise InputError(
                f"{what.capitalize()} file {path}: column {column} has {bad} value(s) that are "
                f"not of type {type_} (first: {example!r} on {where(path, rowid + 1)})."
            )
    casts = [f'cast("{c}" as {t}) as "{c}"' for c, t in columns.items()]
    casts += [
        f'cast(nullif(trim("{c}"::varchar), \'\') as {t}) as "{c}"' for c, t in present.items()
    ]
    casts += [f"rowid + 1 as {SOURCE_ROW}"] if rows else []
    con.execute(
        f"create or replace table {name} as select {', '.join(casts)} from {read} order by rowid"
    )
    con.execute(f"drop table {read}")


def read_raw(
    con: duckdb.DuckDBPyConnection,
    name: str,
    path: Path,
    what: str,
    required: Iterable[str],
    delimiter: str = ",",
    encoding: str = "utf-8",
) -> list[str]:
    """Load a Parquet or CSV file as table `name` as written (a CSV's columns all text, its
    dialect fixed), every row read; its rowid is the file's row order. Returns its columns; a
    file that is missing, unreadable or lacks a `required` column is one sentence (InputError)."""
    if not path.is_file():
        raise InputError(f"{what.capitalize()} file {path} does not exist.")
    try:
        if path.suffix.lower() == ".parquet":
            rel = con.read_parquet(str(path))
        elif path.suffix.lower() == ".csv":
            header = read_csv_header(path, what, delimiter, encoding)
            options = {**CSV_OPTIONS, "delimiter": delimiter, "encoding": encoding}
            rel = con.read_csv(str(path), columns=dict.fromkeys(header, "varchar"), **options)
        else:
            raise InputError(f"{what.capitalize()} file {path} must be .parquet or .csv.")
        missing = [c for c in required if c not in rel.columns]
        if missing:
            raise InputError(
                f"{what.capitalize()} file {path} lacks the column(s) {', '.join(missing)} "
                f"(expected {', '.join(required)})."
            )
        rel.create(name)  # every row is read here; the table's rowid is the file's row order
    except duckdb.Error as error:
        raise InputError(_unreadable(what, path, error)) from None
    return list(rel.columns)


def read_csv_header(
    path: Path, what: str, delimiter: str = ",", encoding: str = "utf-8"
) -> list[str]:
    """The column names on a CSV file's first line (quotes allowed), each once; a file
    separated by another delimiter than `delimiter` (`;`, a tab) is told so."""
    with path.open("rb") as file:
        first = file.readline(1 << 20)
    try:
        line = first.decode("utf-8-sig" if encoding == "utf-8" else encoding).rstrip("\r\n")
    except (UnicodeDecodeError, LookupError):
        raise InputError(
            f"{what.capitalize()} file {path}: line 1 is not {encoding.upper()} text."
        ) from None
    if not line:
        raise InputError(f"{what.capitalize()} file {path} is empty: it needs a header line.")
    try:
        names = next(csv.reader([line], delimiter=delimiter, strict=True))
    except csv.Error as error:
        raise InputError(
            f"{what.capitalize()} file {path}: line 1 (the header) cannot be read ({error})."
        ) from None
    if len(names) == 1:
        for other, called in SEPARATORS.items():
            if other != delimiter and other in line:
                raise InputError(
                    f"{what.capitalize()} file {path} is separated by {called}, not by "
                    f"{SEPARATORS.get(delimiter, repr(delimiter))}: write it with "
                    f"{SEPARATORS.get(delimiter, repr(delimiter))} or give a format file "
                    "(--transactions-format, docs/inputs.md) that names its delimiter."
                )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InputError(f"{what.capitalize()} file {path} names the column(s) {repeated} twice.")
    return names


def where(path: Path, row: int) -> str:
    """Where a file's 1-based data row is, in words: a CSV's line (its header is line 1, and no
    field spans lines), a Parquet file's row."""
    return f"line {row + 1:,}" if path.suffix.lower() == ".csv" else f"row {row:,}"


def _unreadable(what: str, path: Path, error: duckdb.Error) -> str:
    """One sentence from DuckDB's CSV or Parquet error: the line and what is wrong with it."""
    text = str(error)
    line = re.search(r"CSV Error on Line: (\d+)", text)
    columns = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", text)
    if "unterminated quote" in text:
        problem = "opens a quote that is never closed"
    elif "Invalid unicode" in text:
        problem = "is not UTF-8 text"
    elif columns:
        problem = f"has {columns[2]} field(s) where the header has {columns[1]}"
    else:
        first = text.splitlines()[0].removeprefix("Invalid Input Error: ").rstrip(".")
        problem = f"cannot be read ({first})"
    if line:
        return f"{what.capitalize()} file {path}: line {int(line[1]):,} {problem}."
    return f"{what.capitalize()} file {path} {problem}."
