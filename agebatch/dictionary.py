"""The data dictionary of docs/datasets.md: every dataset and column, made from agebatch.schema.

`python -m agebatch.dictionary` prints it; tests/test_dictionary.py fails when the copy in
docs/datasets.md differs from it, or when a published file has a column it does not list.
"""

from __future__ import annotations

from agebatch.config import age_group_labels, default_age_bounds
from agebatch.duck import connect
from agebatch.schema import ABOUT, TABLES, UNKNOWN_GROUP, WITH_UNKNOWN, Column, schema

BEGIN = "<!-- dictionary: made by `python -m agebatch.dictionary`; edit agebatch/schema.py -->"
END = "<!-- end of dictionary -->"


def _groups() -> list[tuple[str, int, int | None]]:
    """The default age groups: label, low, high in whole years (as published)."""
    return [
        (label, int(max(low, 0)), None if high == float("inf") else int(high))
        for label, low, high in age_group_labels(default_age_bounds())
    ]


def _values(table: str, column: Column) -> str:
    """The values a column holds, for the dictionary's last column."""
    if column.allowed is not None:
        return ", ".join(f"`{value}`" for value in column.allowed)
    groups = _groups()
    unknown = f"; `{UNKNOWN_GROUP}` (no age: low and high null)" if table in WITH_UNKNOWN else ""
    by_name = {
        "age_group": "the run's `--age-groups`; by default "
        + ", ".join(f"`{label}`" for label, *_ in groups)
        + unknown,
        "age_group_low": "by default " + ", ".join(str(low) for _, low, _ in groups),
        "age_group_high": "by default "
        + ", ".join(str(high) for *_, high in groups if high is not None)
        + ", null",
        "category": "the catalog's categories; `uncategorised`",
        "device": "`CPU`, `GPU`",
        "share": "0 to 1",
        "corrected_share": "0 to 1; null without a confusion in the model card",
        "flagged_rate": "0 to 1",
        "flagged_rate_7d": "0 to 1",
        "flagged_rate_28d": "0 to 1",
        "days_7d": "1 to 7",
        "days_28d": "1 to 28",
    }
    return by_name.get(column.name, "")


def duckdb_types(table: str) -> dict[str, str]:
    """Each column's DuckDB type, as the views of the analytics database and read_parquet show
    it."""
    with connect() as con:
        relation = con.from_arrow(schema(table).empty_table())
        return dict(zip(relation.columns, (str(t) for t in relation.types), strict=True))


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown() -> str:
    """The dictionary as Markdown: one section per dataset, one table row per column."""
    lines = [BEGIN, ""]
    for table, columns in TABLES.items():
        about = ABOUT[table]
        types = duckdb_types(table)
        lines += [
            f"### `{table}`",
            "",
            f"One row per {about.grain}. Key: {', '.join(f'`{k}`' for k in about.key)}. "
            f"Files: `OUT/{table}/day=YYYY-MM-DD/*.parquet`.",
            "",
            "| column | type | null | meaning | values |",
            "| --- | --- | --- | --- | --- |",
        ]
        for column in columns:
            null = "yes" if column.nullable else "no"
            cells = [f"`{column.name}`", types[column.name], null, column.description]
            lines.append(
                "| " + " | ".join(_cell(c) for c in [*cells, _values(table, column)]) + " |"
            )
        lines.append("")
    lines.append(END)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
