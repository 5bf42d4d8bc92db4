"""The data dictionary in docs/datasets.md cannot drift: it is the schema's, and it is what a
published day's files really hold (columns, types, descriptions in the field metadata)."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from agebatch.dictionary import markdown
from agebatch.pipeline import run_day
from agebatch.sample import make_sample_day
from agebatch.schema import ABOUT, TABLES
from tests.conftest import DAY
from tests.pictures import SolidFaces
from tools.datasets_doc import DOC, dictionary_section

SECTION = re.compile(r"^### `(?P<table>\w+)`\n(?P<body>.*?)(?=^### |\Z)", re.DOTALL | re.MULTILINE)
ROW = re.compile(
    r"^\| `(?P<column>\w+)` \| (?P<type>[^|]+) \| (?P<null>yes|no) \| (?P<meaning>.*?) \|", re.M
)


def documented() -> dict[str, dict[str, tuple[str, str]]]:
    """Table -> column -> (DuckDB type, meaning), as the doc's dictionary lists them."""
    section = dictionary_section(DOC.read_text())
    return {
        m["table"]: {r["column"]: (r["type"], r["meaning"]) for r in ROW.finditer(m["body"])}
        for m in SECTION.finditer(section)
    }


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory, brightness_model, brightness_model_path) -> Path:
    """A day published by the real pipeline (brightness model, 40 receipts)."""
    root = tmp_path_factory.mktemp("published")
    sample = make_sample_day(root / "day", DAY, receipts=40, writer=SolidFaces(), seed=3)
    config = sample.config(root / "out", model=brightness_model_path, photo_kind="crops")
    run_day(config, DAY, model=brightness_model)
    return root / "out"


def test_the_doc_holds_the_dictionary_made_from_the_schema() -> None:
    assert dictionary_section(DOC.read_text()) == markdown(), (
        "docs/datasets.md is out of date: run python -m tools.datasets_doc --dictionary-only"
    )


def test_every_published_column_is_in_the_dictionary_and_nothing_else(out: Path) -> None:
    docs = documented()
    reports = out / "reports"  # the HTML report's pages (docs/report.md), not a dataset
    assert (reports / DAY.isoformat() / "index.html").is_file()
    published = sorted(
        p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith(".") and p != reports
    )
    assert sorted(docs) == published == sorted(TABLES)
    for table, columns in docs.items():
        (file,) = (out / table / f"day={DAY}").glob("*.parquet")
        fields = pq.read_schema(file)
        # The day is the folder name, so the files hold every column but day.
        assert ["day", *fields.names] == list(columns), table
        found = duckdb.sql(
            "select * from read_parquet($file, hive_partitioning = true)",
            params={"file": str(file)},
        )
        types = dict(zip(found.columns, map(str, found.types), strict=True))
        assert {c: t for c, (t, _) in columns.items()} == types, table
        for field in fields:
            description = field.metadata[b"description"].decode()
            assert description.replace("|", "\\|") == columns[field.name][1], (table, field.name)
        assert set(ABOUT[table].key) <= set(columns)
