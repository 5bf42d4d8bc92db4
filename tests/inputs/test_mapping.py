"""A chain's own export read through a format file: the shipped example, and bad format files."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from agebatch.errors import InputError
from agebatch.inputs.mapping import read_format
from agebatch.inputs.transactions import read_lines

DAY = dt.date(2026, 10, 25)
EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "semicolon-unit-prices.toml"
EXPORT = """Bon;Filiale;Kasse;Bediener;Zeit;Artikel;Menge;Einzelpreis
0001;S01;K1;C0221;25.10.2026 10:15:02;BEE000;2;2,25
0001;S01;K1;C0221;25.10.2026 10:15:09;COUPON;1;-1,00
0001;S02;K3;C0907;25.10.2026 10:15:30;APP000;0,5;3,98
0002;S02;K3;C0907;25.10.2026 11:00:00;APP000;0,333;1,50
0002;S02;K3;C0907;25.10.2026 11:00:01;APP000;1,5;zwei
"""


def test_the_shipped_example_reads_a_semicolon_export_with_unit_prices(tmp_path: Path) -> None:
    (tmp_path / f"{DAY}.csv").write_text(EXPORT, encoding="utf-8")
    read = read_lines(tmp_path, DAY, "Europe/London", read_format(EXAMPLE))
    assert read.key == ("store_id", "receipt_id")
    lines = read.lines.to_pydict()
    assert lines["receipt_id"] == ["S01/0001", "S01/0001", "S02/0001"]
    assert lines["amount"] == [Decimal("4.50"), Decimal("-1.00"), Decimal("1.99")]
    assert lines["quantity"] == [Decimal(2), Decimal(0), Decimal("0.5")]
    assert lines["line_kind"] == ["sale", "adjustment", "sale"]
    assert lines["paid_at"][0] == dt.datetime(2026, 10, 25, 10, 15, 2)
    assert lines["cashier_id"] == ["C0221", "C0221", "C0907"]
    # a unit price that is not a number quarantines its receipt; the raw line is as written
    assert read.quarantined.select(["receipt_id", "line", "rule", "raw_line"]).to_pylist() == [
        {
            "receipt_id": "S02/0002",
            "line": 6,
            "rule": "amount",
            "raw_line": "0002;S02;K3;C0907;25.10.2026 11:00:01;APP000;1,5;zwei",
        }
    ]


def test_without_the_format_file_the_semicolons_are_named(tmp_path: Path) -> None:
    (tmp_path / f"{DAY}.csv").write_text(EXPORT, encoding="utf-8")
    with pytest.raises(InputError, match="is separated by semicolons, not by commas"):
        read_lines(tmp_path, DAY, "Europe/London")


def test_a_tab_separated_file_is_told_so(tmp_path: Path) -> None:
    (tmp_path / f"{DAY}.csv").write_text(EXPORT.replace(";", "\t"), encoding="utf-8")
    with pytest.raises(InputError, match="is separated by tabs, not by commas"):
        read_lines(tmp_path, DAY, "Europe/London")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("delimiter = ';'\nsheet = 2\n", "unknown setting\\(s\\) sheet"),
        ("[columns]\nprice = 'P'\n", "maps the unknown column\\(s\\) price"),
        ("[columns]\namount = 'A'\nunit_price = 'P'\n", "names both amount and unit_price"),
        ("delimiter = ';;'\n", "delimiter is one character"),
        ("receipt_key = ['register_id']\n", "receipt_key is one of"),
        ("delimiter = \n", "is not valid TOML"),
    ],
)
def test_a_bad_format_file_is_one_sentence(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "f.toml"
    path.write_text(text)
    with pytest.raises(InputError, match=says):
        read_format(path)


def test_a_mapped_column_missing_from_the_export_is_named(tmp_path: Path) -> None:
    (tmp_path / f"{DAY}.csv").write_text(EXPORT.replace("Einzelpreis", "Preis"), "utf-8")
    with pytest.raises(InputError, match="lacks the column\\(s\\) Einzelpreis"):
        read_lines(tmp_path, DAY, "Europe/London", read_format(EXAMPLE))
