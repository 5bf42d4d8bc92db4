"""Keep docs/datasets.md true: its data dictionary and the figures printed under its queries.

Developer tool. The dictionary section is made from agebatch/schema.py; each ```sql block that
starts with `-- check: NAME` is run on the demo's output and the table printed under it is
rewritten, and each ```python block that starts with `# check: NAME` is run and the ```text
block under it rewritten. Run it from the folder that holds the demo, after the demo the doc
names:

    agebatch demo --workdir agebatch-demo --day 2026-11-26 --days 3
    python -m tools.datasets_doc

tests/test_dictionary.py and tests/test_analyst_queries.py fail when the doc and these
disagree.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import duckdb

from agebatch.dictionary import BEGIN, END, markdown

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "datasets.md"
DEMO = Path("agebatch-demo")  # the demo folder the doc's queries name, relative to the cwd
DATABASE = DEMO / "out" / "analytics.duckdb"

# A checked block, then (optionally) what it printed: a Markdown table or a ```text block.
BLOCK = re.compile(
    r"```(?P<lang>sql|python)\n(?:--|#) check: (?P<name>[a-z0-9_]+)\n(?P<code>.*?)```\n"
    r"(?P<printed>\n(?:\|[^\n]*\|\n)+|\n```text\n.*?```\n)?",
    re.DOTALL,
)


@dataclass(frozen=True)
class Check:
    """One checked block of the doc: its language, name, code and what the doc says it prints."""

    lang: str
    name: str
    code: str
    printed: str | None
    span: tuple[int, int]


def checks(text: str) -> list[Check]:
    """Every checked block of the doc, in order."""
    return [
        Check(m["lang"], m["name"], m["code"], m["printed"], m.span()) for m in BLOCK.finditer(text)
    ]


def dictionary_section(text: str) -> str:
    """The doc's copy of the data dictionary, from its BEGIN marker to its END marker."""
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[start:end] + "\n"


def show(value: object) -> str:
    """A value as the doc prints it."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dt.date | Decimal | int | float | str):
        return str(value)
    return repr(value)


def table(columns: list[str], rows: list[tuple]) -> str:
    """Query results as the Markdown table printed under a query."""
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(show(v) for v in row) + " |" for row in rows]
    return "\n" + "\n".join(lines) + "\n"


def run_sql(con: duckdb.DuckDBPyConnection, code: str) -> tuple[list[str], list[tuple]]:
    """Run a doc query; its column names and rows."""
    relation = con.sql(code)
    return relation.columns, relation.fetchall()


def run_python(code: str) -> str:
    """Run a doc's Python block; what it printed."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "<docs/datasets.md>", "exec"), {"__name__": "__doc_block__"})
    return printed.getvalue()


def printed_text(output: str) -> str:
    """What a Python block printed, as the ```text block under it."""
    return f"\n```text\n{output}```\n"


def refresh(text: str, con: duckdb.DuckDBPyConnection | None) -> str:
    """The doc with its dictionary made anew and, given a connection, every printed result."""
    text = text.replace(dictionary_section(text), markdown())
    if con is None:
        return text
    for check in reversed(checks(text)):
        if check.lang == "sql":
            fresh = table(*run_sql(con, check.code))
        else:
            fresh = printed_text(run_python(check.code))
        start, end = check.span
        head = f"```{check.lang}\n{'--' if check.lang == 'sql' else '#'} check: {check.name}\n"
        text = text[:start] + head + check.code + "```\n" + fresh + text[end:]
    return text


def main() -> None:
    """Rewrite docs/datasets.md's dictionary and (with the demo's output here) its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dictionary-only", action="store_true", help="leave the printed figures as they are"
    )
    args = parser.parse_args()
    con = None if args.dictionary_only else duckdb.connect(str(DATABASE), read_only=True)
    DOC.write_text(refresh(DOC.read_text(), con))
    print(f"Rewrote {DOC}")


if __name__ == "__main__":
    main()
