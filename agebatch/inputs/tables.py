"""Read a CSV or Parquet input with typed columns, or say in one sentence what is wrong.

Every row of the file is read and checked, not a sample: a CSV's dialect is fixed (comma,
double quotes, a header line, UTF-8) and its columns are the header's, so DuckDB's sniffer
never runs. read_raw (catalog and the other small inputs): DuckDB's strict mode fails on the
first line with the wrong number of fields, a bad byte or an unclosed quote, anywhere in the
file; the sentence names that line. read_lines_raw (transactions): each physical line is read
as text and split in the same pass, and a line whose fields do not parse is returned as a
BrokenLine (its receipt is quarantined), the file refused only when most lines are broken.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass
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
RAW_LINE_CHARS = 1000  # a broken line is kept (and published) up to this many characters
# read_lines_raw reads each physical line as one text value: this separator (ASCII unit
# separator) is never written by a till; a line holding it is a broken line like another.
LINE_SEPARATOR = "\x1f"
SUSPECT = "agebatch_suspect_line"  # read_lines_raw's working column (dropped before it returns)


@dataclass(frozen=True)
class BrokenLine:
    """A CSV line whose fields do not parse: kept as a row of nulls but for the fields that
    could be told apart (by position, up to the header's count)."""

    row: int  # the 1-based data row (SOURCE_ROW); the file's line is row + 1
    problem: str  # in words, e.g. "has 7 field(s) where the header has 8"
    raw: str  # the line as written (bad bytes replaced), at most RAW_LINE_CHARS characters


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
        _require(path, what, rel.columns, required)
        rel.create(name)  # every row is read here; the table's rowid is the file's row order
    except duckdb.Error as error:
        raise InputError(_unreadable(what, path, error)) from None
    return list(rel.columns)


def _require(path: Path, what: str, columns: Iterable[str], required: Iterable[str]) -> None:
    """One sentence (InputError) naming the `required` columns a file lacks, if any."""
    required = list(required)
    missing = [c for c in required if c not in set(columns)]
    if missing:
        raise InputError(
            f"{what.capitalize()} file {path} lacks the column(s) {', '.join(missing)} "
            f"(expected {', '.join(required)})."
        )


def read_lines_raw(
    con: duckdb.DuckDBPyConnection,
    name: str,
    path: Path,
    what: str,
    required: Iterable[str],
    delimiter: str = ",",
    encoding: str = "utf-8",
) -> tuple[list[str], list[BrokenLine]]:
    """Like read_raw, but a CSV line whose fields do not parse (another number of fields than the
    header, an unclosed quote, bytes that are not `encoding`) is kept as a row of the fields at
    the header's positions that could be read, and returned as a BrokenLine, not refused; blank
    lines are rows of nulls, returned too (problem "is blank"). A file of which more than half
    the lines are broken is refused in one sentence (InputError).

    Each physical line is read as one text value (no field spans lines), so a bad line never
    swallows the next; a line without a quote is split on the delimiter in DuckDB, one with a
    quote by Python's csv module."""
    if path.suffix.lower() != ".csv" or not path.is_file():
        return read_raw(con, name, path, what, required, delimiter, encoding), []
    header = read_csv_header(path, what, delimiter, encoding)
    _require(path, what, header, required)
    text, rejects, count = f"{name}_text", f"{name}_rejects", len(header)
    sep = delimiter.replace("'", "''")
    fields = [
        f"nullif(string_split(text, '{sep}')[{index + 1}], '') as \"{column}\""
        for index, column in enumerate(header)
    ]
    # a line to look at again (blank, another number of fields, a quote): its text, else null
    fields.append(
        "case when text is null or contains(text, '\"') or "
        f"len(string_split(text, '{sep}')) != {count} then coalesce(text, '') end as {SUSPECT}"
    )
    lines = (
        "read_csv($path, columns = {'text': 'varchar'}, auto_detect = false, header = true, "
        "delim = $sep, quote = '', escape = '', encoding = $encoding, strict_mode = false, "
        f"store_rejects = true, rejects_table = '{rejects}', rejects_scan = '{name}_scans')"
    )
    options = {"path": str(path), "sep": LINE_SEPARATOR, "encoding": encoding}
    try:  # each line split as read, in the file's order
        con.execute(
            f"create or replace table {name} as select {', '.join(fields)} from {lines}", options
        )
        rejected = con.execute(
            f"select line, line_byte_position, error_type::varchar from {rejects} order by line"
        ).fetchall()
        if rejected:  # bad bytes: a line left out, those after it move up; read again, numbered
            con.execute(f"drop table {rejects}; drop table {name}_scans")
            con.execute(f"create or replace temp table {text} as select text from {lines}", options)
    except duckdb.Error as error:
        raise InputError(_unreadable(what, path, error)) from None
    broken: dict[int, BrokenLine] = {}
    if rejected:
        # kept rows before the j-th rejected line: its line - 2 - j; from there j + 1 are ahead
        shifts = {line - 2 - index: index + 1 for index, (line, _, _) in enumerate(rejected)}
        con.execute(f"create or replace temp table {name}_shifts (kept bigint, ahead bigint)")
        con.executemany(f"insert into {name}_shifts values (?, ?)", list(shifts.items()))
        numbered = (
            f"select {text}.rowid + 1 + coalesce(s.ahead, 0) as row, text from {text} "
            f"asof left join {name}_shifts as s on {text}.rowid >= s.kept"
        )
        nulls = ", ".join([f'null as "{column}"' for column in header] + [f"null as {SUSPECT}"])
        con.execute(  # the rejected lines' rows put back in place (nulls, fields set below)
            f"create or replace table {name} as select * exclude (row) from ("
            f"select row, {', '.join(fields)} from ({numbered}) union all "
            f"select unnest($rows) as row, {nulls}) order by row",
            {"rows": [line - 1 for line, _, _ in rejected]},
        )
        con.execute(f"drop table {text}; drop table {name}_shifts")
        with path.open("rb") as file:
            for line, start, kind in rejected:
                # back to the line's start: the position DuckDB gives may be inside the line
                low = max(0, start - 4096)
                file.seek(low)
                file.seek(low + file.read(start - low).rfind(b"\n") + 1)
                raw = file.readline(4 * RAW_LINE_CHARS).decode("utf-8", "replace")
                problem = "is not UTF-8 text" if "ENCODING" in kind else f"cannot be read ({kind})"
                if encoding != "utf-8" and "ENCODING" in kind:
                    problem = f"is not {encoding.upper()} text"
                broken[line - 1] = BrokenLine(line - 1, problem, _bounded(raw))
    suspects = con.execute(
        f"select rowid + 1, {SUSPECT} from {name} where {SUSPECT} is not null"
    ).fetchall()
    con.execute(f"alter table {name} drop column {SUSPECT}")
    parsed: list[tuple[int, list[str | None]]] = []
    for row, raw in suspects:
        if not raw.strip():
            broken[row] = BrokenLine(row, "is blank", "")
        elif '"' not in raw:  # split by DuckDB; fields by position
            problem = f"has {raw.count(delimiter) + 1} field(s) where the header has {count}"
            broken[row] = BrokenLine(row, problem, _bounded(raw))
        else:  # a quote: parsed here (a till rarely quotes; other lines are split in DuckDB)
            try:
                values = next(csv.reader([raw], delimiter=delimiter, strict=True))
                if len(values) != count:
                    problem = f"has {len(values)} field(s) where the header has {count}"
                    broken[row] = BrokenLine(row, problem, _bounded(raw))
            except csv.Error as error:  # only the fields before the first quote are trusted
                values = raw[: raw.index('"')].split(delimiter)[:-1]
                problem = f"has a quoted field that does not parse ({error})"
                broken[row] = BrokenLine(row, problem, _bounded(raw))
            parsed.append((row, [value or None for value in values[:count]]))
    (total,) = con.execute(f"select count(*) from {name}").fetchone()
    if broken and len(broken) * 2 > total:
        first = broken[min(broken)]
        raise InputError(
            f"{what.capitalize()} file {path}: {len(broken):,} of its {total:,} lines cannot be "
            f"read (first: line {first.row + 1:,} {first.problem})."
        )
    # a rejected line (bad bytes): its fields as far as they read, a field with a bad byte null
    for line, _, _ in rejected:
        values = next(csv.reader([broken[line - 1].raw or ""], delimiter=delimiter), [])
        values = [None if "\ufffd" in value else value or None for value in values[:count]]
        parsed.append((line - 1, values))
    if parsed:
        quoted = f"{name}_quoted"
        con.execute(
            f"create or replace temp table {quoted} (row bigint, "
            + ", ".join(f'"{column}" varchar' for column in header)
            + ")"
        )
        con.executemany(
            f"insert into {quoted} values ({', '.join(['?'] * (count + 1))})",
            [[row, *values, *[None] * (count - len(values))] for row, values in parsed],
        )
        assign = ", ".join(f'"{column}" = q."{column}"' for column in header)
        con.execute(f"update {name} set {assign} from {quoted} as q where {name}.rowid + 1 = q.row")
        con.execute(f"drop table {quoted}")
    con.execute(f"drop table if exists {rejects}; drop table if exists {name}_scans")
    return header, sorted(broken.values(), key=lambda line: line.row)


def _bounded(raw: str) -> str:
    """A raw line without its line break, cut to RAW_LINE_CHARS characters."""
    return raw.rstrip("\r\n")[:RAW_LINE_CHARS]


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
