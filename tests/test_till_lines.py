"""Tills of every line kind and receipt numbering, read and joined: the published aggregates
against the rules written plainly (tests/inputs/test_transactions.py's oracle), quarantined
receipts in none of them, overrides of restricted lines published as approved_by."""

from __future__ import annotations

import datetime as dt
import tempfile
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings

from agebatch.config import default_age_bounds
from agebatch.duck import connect
from agebatch.errors import InputError
from agebatch.inputs.mapping import TransactionsFormat
from agebatch.inputs.transactions import KEY_NAMES, read_lines
from agebatch.pipeline import run_day
from agebatch.sample import make_sample_day
from agebatch.transform.join import join_day
from tests.conftest import captures_frame, compliance
from tests.inputs.test_transactions import DAY, HEADER, Till, _oracle, _tills
from tests.pictures import SolidFaces

CATALOG = pa.table(
    {
        "sku": ["BEE000", "APP000"],
        "category": ["beer", "produce"],
        "age_restricted": [True, False],
    }
)


def _approvers(lines: Till, numbering: str, kept: dict[str, str]) -> dict[str, str]:
    """Restricted receipts (net beer units > 0) whose beer lines another operator keyed."""
    width = {"chain": 1, "store": 2, "register": 3}[numbering]
    beer: dict[str, list[tuple]] = {}
    for line in lines:
        key = "/".join([*[line[1], line[2]][: width - 1], line[0]])
        if key in kept and line[5] == "BEE000":
            beer.setdefault(key, []).append(line)
    approved = {}
    for key, rows in beer.items():
        if sum(Decimal(r[6]) for r in rows if Decimal(r[6]) * Decimal(r[7]) >= 0) > 0:
            others = sorted({r[3] for r in rows} - {kept[key]})
            approved[key] = ", ".join(others) if others else None
    return approved


@settings(max_examples=60, deadline=None)
@given(till=_tills())
def test_published_aggregates_against_the_rules_written_plainly(till: tuple[Till, str]) -> None:
    lines, numbering = till
    expected = _oracle(lines, numbering)
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, f"{DAY}.csv").write_text(HEADER + "".join(",".join(x) + "\n" for x in lines))
        fmt = TransactionsFormat(receipt_key=KEY_NAMES[numbering])
        try:
            read = read_lines(Path(folder), DAY, "Europe/London", fmt)
        except InputError:
            assert not expected["cashiers"]  # every receipt quarantined: refused
            return
    with connect() as con:
        tables = join_day(
            con,
            day=DAY,
            lines=read.lines,
            catalog=CATALOG,
            captures=captures_frame(),
            model_version="m1",
            age_bounds=default_age_bounds(),
            window_before_s=120.0,
            window_after_s=5.0,
            compliance=compliance(),
            min_cell_receipts=1,
            quarantined=read.quarantined,
        )
    purchases = tables["age_group_purchases"].to_pydict()
    assert sum(purchases["revenue"], Decimal(0)) == expected["revenue"]
    assert sum(purchases["units"], Decimal(0)) == expected["units"]
    receipts = tables["age_group_receipts"].to_pydict()
    assert sum(receipts["receipts"]) == len(expected["cashiers"])  # each receipt counted once
    ages = tables["receipt_ages"].to_pydict()
    assert dict(zip(ages["receipt_id"], ages["cashier_id"], strict=True)) == expected["cashiers"]
    published = set(tables["quarantined_receipts"]["receipt_id"].to_pylist())
    assert published == expected["quarantined"]
    for name in ("receipt_ages", "alcohol_checks"):
        assert not published & set(tables[name]["receipt_id"].to_pylist()), name
    # every restricted sale has no photo here, so every one is listed to review
    checks = tables["alcohol_checks"].to_pydict()
    approved = dict(zip(checks["receipt_id"], checks["approved_by"], strict=True))
    assert approved == _approvers(lines, numbering, expected["cashiers"])
    compliance_rows = tables["cashier_compliance"].to_pydict()
    assert sum(compliance_rows["approved_receipts"]) == sum(
        v is not None for v in approved.values()
    )
    # codes missing from the catalog (coupons, bags) are adjustments: under 'adjustment', 0 units
    kept = read.lines.to_pydict()
    coupons = sum(
        (a for a, sku in zip(kept["amount"], kept["sku"], strict=True) if sku in ("COUPON", "BAG")),
        Decimal(0),
    )
    by_category: dict[str, Decimal] = {}
    for category, revenue in zip(purchases["category"], purchases["revenue"], strict=True):
        by_category[category] = by_category.get(category, Decimal(0)) + revenue
    assert by_category.get("adjustment", Decimal(0)) == coupons
    assert "uncategorised" not in by_category


@pytest.mark.parametrize("numbering", ["chain", "store", "register"])
def test_a_sample_till_day_publishes_every_line_kind_and_numbering(
    numbering: str, tmp_path: Path, brightness_model, brightness_model_path: Path
) -> None:
    day = dt.date(2026, 11, 24)
    sample = make_sample_day(
        tmp_path / "day",
        day,
        receipts=60,
        writer=SolidFaces(),
        seed=4,
        till_lines=True,
        numbering=numbering,
    )
    config = sample.config(tmp_path / "out", model=brightness_model_path, photo_kind="crops")
    published = run_day(config, day, model=brightness_model)
    assert published.record.receipt_key == list(KEY_NAMES[numbering])
    assert published.record.receipts == 60 and published.record.receipts_quarantined == 0
    import pandas as pd

    out = tmp_path / "out"
    lines = pd.read_parquet(sample.transactions / f"{day}.parquet")
    sales = pd.read_parquet(out / "store_sales")  # exact; the age-group tables withhold cells
    stores = sales[sales["level"] == "store"]
    expected = sum(lines["amount"].map(lambda a: Decimal(str(round(a, 2)))))
    assert stores.loc[stores["category"] == "all", "revenue"].map(Decimal).sum() == expected
    by_category = stores.loc[stores["category"] != "all", "revenue"].map(Decimal).sum()
    assert by_category == expected and "adjustment" in set(stores["category"])
    ages = pd.read_parquet(out / "receipt_ages")
    assert sorted(ages["receipt_id"]) == sorted(sample.truth["receipt_id"])
    truth = sample.truth.set_index("receipt_id")["status"].astype(str).sort_index()
    assert ages.set_index("receipt_id")["status"].astype(str).sort_index().equals(truth)
    checks = pd.read_parquet(out / "alcohol_checks")
    compliance = pd.read_parquet(out / "cashier_compliance")
    assert compliance["approved_receipts"].sum() >= checks["approved_by"].notna().sum() > 0
    assert set(checks["approved_by"].dropna()) <= {f"SUP-S0{s}" for s in (1, 2, 3)}
    assert not set(checks["cashier_id"]) & {f"SUP-S0{s}" for s in (1, 2, 3)}


def test_the_example_receipt_of_the_docs_counts_as_the_docs_say(tmp_path: Path) -> None:
    text = (Path(__file__).parents[1] / "docs" / "inputs.md").read_text()
    block = text.split("An example receipt, as the till wrote it:\n\n```\n")[1].split("```")[0]
    # each line's comment follows two spaces or more; the receipt is dated on DAY here
    rows = [line.split("  ")[0].replace("2026-11-24", str(DAY)) for line in block.splitlines()]
    (tmp_path / f"{DAY}.csv").write_text("\n".join(rows) + "\n")
    read = read_lines(tmp_path, DAY, "Europe/London")
    catalog = pa.table(
        {
            "sku": ["BEE000", "WIN001", "BAG"],
            "category": ["beer", "wine", "bags"],
            "age_restricted": [True, True, False],
        }
    )
    with connect() as con:
        tables = join_day(
            con,
            day=DAY,
            lines=read.lines,
            catalog=catalog,
            captures=captures_frame(),
            model_version="m1",
            age_bounds=default_age_bounds(),
            window_before_s=120.0,
            window_after_s=5.0,
            compliance=compliance(),
            min_cell_receipts=1,
        )
    purchases = tables["age_group_purchases"].to_pydict()
    assert sum(purchases["revenue"], Decimal(0)) == Decimal("13.90")
    assert sum(purchases["units"], Decimal(0)) == 2
    by_category = dict(zip(purchases["category"], purchases["revenue"], strict=True))
    assert by_category["adjustment"] == Decimal("-0.50")
    checks = tables["alcohol_checks"].to_pylist()
    assert [(c["receipt_id"], c["cashier_id"], c["approved_by"]) for c in checks] == [
        ("0001", "C0221", "SUP-S01")
    ]
