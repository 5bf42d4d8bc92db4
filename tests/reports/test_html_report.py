"""The HTML report: its figures are the published tables', a store's page holds that store only,
hostile ids are only text, days without the optional tables still make a page."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agebatch.cli import main
from agebatch.config import RunConfig
from agebatch.predict.card import SHORT_DIGEST, ModelCard
from agebatch.reports.html import STATUS_WORDS, reason_words, write_report
from agebatch.sample import make_catalog
from agebatch.schema import Reason, ReceiptStatus
from tests.reports.conftest import RUN_DAYS, Published, publish_days
from tests.reports.page import Page, amount, money, percent, read_page

HALF = 0.0005 + 1e-9  # a share written to 0.1% is within half of that of the figure
NAMES = dict(zip(make_catalog()["sku"], make_catalog()["name"], strict=True))


def _rows(out: Path, table: str, day: dt.date, select: str) -> list[tuple]:
    """Run select over the day of a published table, which it names t (DuckDB, hive read)."""
    return duckdb.sql(
        "with t as (select * from read_parquet($glob, hive_partitioning = true) where day = $day) "
        + select,
        params={"glob": str(out / table / "*" / "*.parquet"), "day": day},
    ).fetchall()


def _page(published: Published, store: str | None = None, **kwargs: object) -> tuple[str, Page]:
    path = published.out / "pages" / f"{store or 'chain'}.html"
    card = ModelCard.read(published.model)
    write_report(published.out, path, store=store, card=card, **kwargs)
    html = path.read_text()
    return html, read_page(html)


def test_the_run_wrote_a_page_for_the_chain_and_each_store(two_weeks: Published) -> None:
    for day in two_weeks.days[-RUN_DAYS:]:
        folder = two_weeks.out / "reports" / day.isoformat()
        names = sorted(p.name for p in folder.iterdir())
        assert names == ["index.html", "store-S01.html", "store-S02.html", "store-S03.html"]
        assert f"store S02, {day}" in (folder / "store-S02.html").read_text()


def test_the_footer_names_the_model_and_the_card_that_aged_the_day(two_weeks: Published) -> None:
    html, _ = _page(two_weeks)
    card = ModelCard.read(two_weeks.model)
    assert f"model {card.version}, card {card.digest()[:SHORT_DIGEST]});" in html


def test_shares_and_revenue_are_the_published_figures(two_weeks: Published) -> None:
    out, day = two_weeks.out, two_weeks.day
    html, page = _page(two_weeks)
    shares = _rows(
        out,
        "age_group_shares",
        day,
        "select coalesce(store_id, 'chain'), age_group, receipts, share, corrected_share, "
        "correction from t",
    )
    revenue = _rows(
        out,
        "age_group_receipts",
        day,
        "select coalesce(store_id, 'chain'), age_group, "
        "case when bool_or(withheld) then null else sum(revenue) end from t "
        "where age_group != 'unknown' group by grouping sets ((store_id, age_group), (age_group))",
    )
    revenues = {(scope, group): value for scope, group, value in revenue}
    # the revenue of the receipts with an age, exact: store_sales less 'unknown'
    with_age = _rows(
        out,
        "store_sales",
        day,
        "select coalesce(store_id, 'chain'), revenue from t where category = 'all'",
    )
    unknown = _rows(
        out,
        "age_group_receipts",
        day,
        "select coalesce(store_id, 'chain'), sum(revenue) from t where age_group = 'unknown' "
        "group by grouping sets ((store_id), ())",
    )
    totals = {scope: value for scope, value in with_age}
    for scope, value in unknown:
        totals[scope] -= value
    assert {scope for scope, *_ in shares} == {"chain", "S01", "S02", "S03"}
    withheld = 0
    for scope, group, receipts, share, corrected, correction in shares:
        cells = page.table("shares", scope)[group]
        plotted = {
            m["data-series"]: float(m["data-value"])
            for m in page.marks[f"shares:{scope}"]
            if m["data-key"] == group
        }
        if receipts is None:  # withheld: said so, never 0, nothing drawn
            withheld += 1
            assert cells[:2] == ["withheld", "withheld"] and cells[2] == "\u2013"
            assert "receipts" not in plotted and "revenue" not in plotted
            continue
        assert int(cells[0]) == receipts
        assert abs(percent(cells[1]) - share) <= HALF
        if corrected is None:  # a scope with a withheld group is not corrected
            assert cells[2] == "\u2013"
        else:
            assert abs(percent(cells[2]) - corrected) <= HALF
            assert f"the method: {correction})." in "".join(page.text)  # named, under its table
        value = revenues.get((scope, group))
        if value is None:  # the chain's revenue of a group withheld at a store
            assert cells[3] == "withheld" and "revenue" not in plotted
        else:
            assert money(cells[3]) == value
            expected = float(value / totals[scope])
            assert abs(percent(cells[4]) - expected) <= HALF
            assert plotted.get("revenue", 0.0) == pytest.approx(expected, abs=1e-12)
        assert plotted.get("receipts", 0.0) == pytest.approx(share, abs=1e-12)
        assert plotted.get("receipts, corrected", 0.0) == pytest.approx(corrected or 0, abs=1e-12)
    assert withheld > 0  # these small days withhold groups: the test sees how they read
    # The model's measured error and miss rate, from the card and the run.
    assert "off by 0.1 years on average" in html
    assert "for 13\u201317-year-olds at this flag threshold (25 years) is 12.5%" in html
    assert "list to review, not a verdict" in html


def test_trend_coverage_and_mix_are_the_published_figures(two_weeks: Published) -> None:
    out, day = two_weeks.out, two_weeks.day
    _, page = _page(two_weeks, days=10)
    days = two_weeks.days[-10:]
    points = [m for m in page.marks["trend:chain"] if m["tag"] == "circle"]
    lines = len(page.marks["trend:chain"]) - len(points)
    # a line per group published on two days in a row (a withheld day breaks it)
    on = {(m["data-series"], m["data-key"]) for m in points}
    iso = [d.isoformat() for d in days]
    joined = {g for g, d in on for n in iso[iso.index(d) + 1 : iso.index(d) + 2] if (g, n) in on}
    assert lines == len(joined)
    # a dot per published chain share (on these small days most are withheld at some store)
    assert points and {m["data-key"] for m in points} <= {d.isoformat() for d in days}
    trend = page.table("trend", "chain")
    groups = page.header("trend", "chain")[1:]
    for each in days:
        chain = _rows(
            out, "age_group_shares", each, "select age_group, share from t where level = 'chain'"
        )
        for group, share in chain:
            if share is None:  # withheld that day: a gap in its line, said in the table
                assert trend[each.isoformat()][groups.index(group)] == "withheld"
                assert not [
                    m
                    for m in points
                    if (m["data-key"], m["data-series"]) == (each.isoformat(), group)
                ]
                continue
            (point,) = [
                m for m in points if (m["data-key"], m["data-series"]) == (each.isoformat(), group)
            ]
            assert float(point["data-value"]) == pytest.approx(share, abs=1e-12)
            assert abs(percent(trend[each.isoformat()][groups.index(group)]) - share) <= HALF

    coverage = page.table("coverage")
    statuses = page.header("coverage")[1:-1]
    counted = _rows(
        out, "receipt_ages", day, "select store_id, status, count(*) from t group by all"
    )
    for store in ("S01", "S02", "S03"):
        expected = {status: n for s, status, n in counted if s == store}
        assert {s: int(c) for s, c in zip(statuses, coverage[store], strict=False)} == {
            s: expected.get(s, 0) for s in statuses
        }
        assert int(coverage[store][-1]) == sum(expected.values())

    mix = page.table("mix", "chain")
    categories = page.header("mix", "chain")[1:]
    revenue = _rows(
        out,
        "age_group_purchases",
        day,
        "select age_group, category, "
        "case when bool_or(withheld) then null else greatest(sum(revenue), 0) end from t "
        "group by all",
    )
    groups = _rows(
        out,
        "age_group_receipts",
        day,
        "select age_group, case when bool_or(withheld) then null else sum(revenue) end from t "
        "group by all",
    )
    group_total = dict(groups)
    for group in mix:
        spent = {c: v for g, c, v in revenue if g == group}
        total = group_total[group]
        if group == "unknown":
            total = sum(spent.values())
        for category, cell in zip(categories, mix[group], strict=True):
            if total is None or (category in spent and spent[category] is None):
                assert cell == "withheld"  # never a share computed without the withheld part
                continue
            expected = float(spent.get(category) or 0) / float(total)
            assert abs(percent(cell) - expected) <= HALF


def test_review_list_and_cashiers_are_the_published_figures(two_weeks: Published) -> None:
    out, day = two_weeks.out, two_weeks.day
    _, page = _page(two_weeks)
    checks = _rows(
        out,
        "alcohol_checks",
        day,
        "select store_id, strftime(paid_at, '%H:%M:%S'), cashier_id, restricted_amount, "
        "predicted_age, reason from t",
    )
    cashiers = _rows(
        out,
        "cashier_compliance",
        day,
        "select store_id, cashier_id, restricted_receipts, flagged_rate_7d, flagged_rate_28d, "
        "missed_rate_28d from t",
    )
    assert checks and cashiers
    for store in ("S01", "S02", "S03"):
        rows = page.tables[("review", store)][1:]
        expected = sorted(
            (time, cashier, float(money), "\u2013" if age is None else f"{age:.1f}")
            for s, time, cashier, money, age, _ in checks
            if s == store
        )
        assert sorted((r[0], r[2], amount(r[4]), r[5]) for r in rows) == expected
        for row in rows:  # each product by its catalog name and code (sample.PRODUCT_NAMES)
            for item in row[3].rsplit(" (", 1)[0].split("; "):
                name, sku = item.rsplit(", ", 1)
                assert NAMES[sku] == name
        header = page.header("cashiers", store)
        table = page.table("cashiers", store)
        for s, cashier, restricted, rate_7d, rate_28d, missed_28d in cashiers:
            if s != store:
                continue
            cells = dict(zip(header[1:], table[cashier], strict=True))
            assert int(cells["restricted"]) == restricted
            assert abs(percent(cells["flagged 7 days"]) - rate_7d) <= HALF
            assert abs(percent(cells["flagged 28 days"]) - rate_28d) <= HALF
            if missed_28d is None:
                assert cells["missed 28 days"] == "\u2013"
            else:
                assert abs(percent(cells["missed 28 days"]) - missed_28d) <= HALF
    reasons = " ".join(page.text)
    assert "no photo of the shopper" in reasons or "looked under" in reasons

    offers = _rows(
        out,
        "age_group_affinity",
        day,
        "select coalesce(store_id, 'chain'), count(*) from t where offer_rank <= 3 group by all",
    )
    if not offers:  # small days: every item has a withheld group in the window
        assert "No offers for the chain in this window." in reasons
    for scope, n in offers:
        assert len(page.tables[("offers", scope)]) - 1 == n


def test_a_store_page_holds_that_store_only(two_weeks: Published) -> None:
    out, day = two_weeks.out, two_weeks.day
    everyone = _rows(out, "receipt_ages", day, "select distinct store_id, cashier_id from t")
    for store in ("S01", "S02", "S03"):
        html, page = _page(two_weeks, store=store)
        others = {s for s, _ in everyone if s != store} | {c for s, c in everyone if s != store}
        assert others and not [other for other in others if other in html]
        assert {scope for _, scope in page.tables if scope is not None} == {store}
        assert set(page.marks) >= {f"shares:{store}", f"trend:{store}", f"mix:{store}"}
        assert "the chain" not in html  # no chain figure: they hold the other stores'
        own = _rows(out, "receipt_ages", day, f"select count(*) from t where store_id = '{store}'")
        assert int(page.table("coverage")[store][-1]) == own[0][0]
        assert f"<dt>receipts</dt><dd>{own[0][0]}</dd>" in html  # the headline too
    # The pages the run wrote are held to the same rule.
    written = (out / "reports" / day.isoformat() / "store-S01.html").read_text()
    assert "S02" not in written and "S03" not in written


def test_hostile_ids_are_only_text(tmp_path: Path, carded_model_path: Path) -> None:
    store = "S<img src=x onerror=alert(1)>\"'&"
    cashier = '<script>alert("c")</script>'
    rename = {"S01": store, "C011a": cashier, "C011b": cashier}
    published = publish_days(tmp_path, carded_model_path, 1, receipts=60, stores=2, rename=rename)
    for scope in (None, store):
        html, page = _page(published, store=scope)
        assert store not in html and cashier not in html
        assert "<script" not in html and "<img" not in html
        assert not page.tags & {"script", "img", "iframe", "object", "embed", "link"}
        text = "".join(page.text)
        assert store in text and cashier in text  # shown, as text
        assert (store,) and ("shares", store) in page.tables
    written = list((published.out / "reports").glob("*/*.html"))
    assert len(written) == 3  # index.html and one page per store, the hostile one in hex
    assert all(store not in p.name for p in written)


def test_days_without_the_optional_tables_still_make_a_page(
    tmp_path: Path, carded_model_path: Path
) -> None:
    published = publish_days(
        tmp_path,
        carded_model_path,
        1,
        receipts=60,
        age_checks=False,
        blind=("S02",),
        accept_low_coverage=True,  # the coverage gate would refuse the day: S02 is blind
    )
    day = published.day
    # S02's camera took no photo: no shares, but its receipts, coverage and page are there.
    written = published.out / "reports" / day.isoformat()
    s02 = read_page((written / "store-S02.html").read_text())
    assert f"No receipt of store S02 had an age on {day}." in "".join(s02.text)
    assert "No receipt of store S02 had an age on these days." in "".join(s02.text)
    assert ("shares", "S02") not in s02.tables and s02.marks["coverage"]
    every_chart = [read_page(p.read_text()).marks for p in written.glob("*.html")]
    # none drawn empty, but a shares chart whose groups are all withheld (said in its table)
    assert all(
        marks
        for page in every_chart
        for name, marks in page.items()
        if not name.startswith(("shares:", "trend:"))
    )
    counted = _rows(
        published.out, "receipt_ages", day, "select count(*) from t where store_id = 'S02'"
    )
    n = str(counted[0][0])  # matched, no photo, unreadable, no face, low quality, refused; receipts
    assert s02.table("coverage")["S02"] == ["0", n, "0", "0", "0", "0", n]
    for table in ("age_group_affinity", "age_group_receipts", "products"):  # as an older
        (published.out / table / f"day={day}").unlink()  # agebatch published
    html, page = _page(published)
    assert f"The tills recorded no age checks on {day}: missed checks are not counted." in html
    assert f"{day} has no age_group_affinity (published by an older agebatch)" in html
    assert f"{day} has no age_group_receipts (published by an older agebatch)" in html
    assert "missed 28 days" not in page.header("cashiers", "S01")
    # (the chain's shares and trend may draw nothing here: every group is withheld at a store)
    for chart in ("mix:chain", "coverage"):
        assert page.marks[chart], chart
    assert page.table("coverage")["S02"][0] == "0"  # the chain's page has S02 too


def test_money_carries_the_runs_currency(two_weeks: Published, tmp_path: Path) -> None:
    _, pounds = _page(two_weeks)
    _, euros = _page(two_weeks, currency="EUR")
    _, francs = _page(two_weeks, currency="CHF")
    for scope in ("chain", "S01"):
        for group, cells in pounds.table("shares", scope).items():
            if cells[3] != "withheld":
                assert money(euros.table("shares", scope)[group][3], "€") == money(cells[3])
                assert francs.table("shares", scope)[group][3] == cells[3][1:] + " CHF"
    with pytest.raises(ValidationError, match="currency"):
        RunConfig(photos=tmp_path, transactions=tmp_path, catalog=tmp_path, out=tmp_path,
                  currency="euro")  # fmt: skip


def test_report_command(two_weeks: Published, tmp_path: Path, capsys) -> None:
    page = tmp_path / "S02.html"
    argv = ["report", "--out", str(two_weeks.out), "--html", str(page), "--store", "S02"]
    assert main([*argv, "--model", str(two_weeks.model), "--days", "3"]) == 0
    assert page.as_uri() in capsys.readouterr().out
    assert read_page(page.read_text()).marks["trend:S02"]
    assert main([*argv[:-1], "S09"]) == 2
    assert "Store 'S09' has no figures" in capsys.readouterr().err
    assert main([*argv[:5], "--day", "2020-01-01"]) == 2
    assert "2020-01-01 is not published" in capsys.readouterr().err


def test_with_a_restricted_root_the_pages_stay_there(
    tmp_path: Path, carded_model_path: Path, capsys
) -> None:
    """The pages name receipts and cashiers: a run with --restricted-out writes them under
    that root, never under OUT, and the command reads the restricted tables from it."""
    restricted = tmp_path / "restricted"
    published = publish_days(tmp_path, carded_model_path, 1, receipts=60, restricted_out=restricted)
    day = published.day
    assert not (published.out / "reports").exists()
    pages = restricted / "reports" / day.isoformat()
    assert (pages / "index.html").is_file() and (pages / "store-S01.html").is_file()
    page = tmp_path / "chain.html"
    argv = ["report", "--out", str(published.out), "--html", str(page)]
    assert main(argv) == 2  # OUT alone holds no receipt_ages
    assert "receipt_ages" in capsys.readouterr().err
    assert main([*argv, "--restricted-out", str(restricted)]) == 0
    review = read_page(page.read_text()).tables
    checks = _rows(restricted, "alcohol_checks", day, "select store_id, count(*) from t group by 1")
    for store, n in checks:
        assert len(review[("review", store)]) - 1 == n


def test_every_status_and_reason_has_plain_words() -> None:
    # A status or reason added to the schema must be said in words on the page, not crash it.
    assert set(STATUS_WORDS) == set(ReceiptStatus)
    row = {"legal_age": 18.0, "flag_threshold": 25.0}
    for reason in Reason:
        assert reason_words({**row, "reason": reason}) != str(reason)


@settings(max_examples=300, deadline=None)
@example(ids=["S 1", "532031"])
@example(ids=["\u00c4" * 150, "A" * 240])
@given(ids=st.lists(st.text(min_size=1, max_size=300), min_size=2, max_size=5, unique=True))
def test_store_pages_have_distinct_short_names_inside_the_folder(ids: list[str]) -> None:
    # Found by attack: 'S 1' (hex 532031) and '532031' shared a page; a 150-character id made a
    # name past the file system's 255 bytes and the report crashed after publishing.
    from agebatch.reports.html import _store_file

    names = [_store_file(store) for store in ids]
    assert len(set(names)) == len(names)
    for name in names:
        assert "/" not in name and "\0" not in name and not name.startswith(".")
        assert len(f".{name}.tmp".encode()) <= 255


def test_a_store_gone_from_a_rerun_loses_its_page(two_weeks: Published, tmp_path: Path) -> None:
    from agebatch.reports.html import write_pages

    folder = tmp_path / "pages"
    folder.mkdir()
    (folder / "store-GONE.html").write_text("an earlier run's store")
    pages = write_pages(two_weeks.out, two_weeks.days[-1], folder)
    assert sorted(p.name for p in folder.glob("store-*.html")) == sorted(
        p.name for p in pages.stores.values()
    )


def test_a_long_review_list_is_cut_and_the_page_stays_small(two_weeks: Published) -> None:
    """#27.6: 200,000 sales to review (a 1 M-line day's worth and more) at one store: the chain
    page and the store's page each list REVIEW_ROWS at most, say how many there are and where
    they all are, and stay under 2 MB."""
    import dataclasses

    import pandas as pd

    from agebatch.reports.html import REVIEW_ROWS, render
    from agebatch.reports.report_data import for_store, read_chain

    every = read_chain(two_weeks.out, two_weeks.day, 28)
    one = every.checks.iloc[[0]]
    store = one["store_id"].iloc[0]
    many = one.loc[one.index.repeat(200_000)].reset_index(drop=True)
    many["receipt_id"] = [f"R{i:07d}" for i in range(len(many))]
    many["paid_at"] = pd.Timestamp(one["paid_at"].iloc[0]) + pd.to_timedelta(
        range(len(many)), unit="ms"
    )
    others = every.checks[every.checks["store_id"] != store]
    every = dataclasses.replace(every, checks=pd.concat([others, many], ignore_index=True))
    for scope, most in ((None, REVIEW_ROWS // len(every.stores)), (store, REVIEW_ROWS)):
        html = render(for_store(every, scope))
        assert len(html.encode()) < 2_000_000
        page = read_page(html)
        rows = page.tables[("review", store)][1:]
        assert len(rows) == most
        assert rows[0][0] == pd.Timestamp(one["paid_at"].iloc[0]).strftime("%H:%M:%S")
        text = " ".join(page.text)
        assert f"The first {most:,} of the 200,000 sales to review at {store}" in text
        assert f"store_id = '{store}'" in text
        assert (f'href="store-{store}.html"' in html) == (scope is None)
        if scope is None:  # the other stores' lists, short, are whole on the chain page
            for other in set(every.stores) - {store}:
                listed = page.tables.get(("review", other), [[]])[1:]
                assert len(listed) == min(most, int((others["store_id"] == other).sum()))
