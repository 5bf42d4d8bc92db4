"""The report in a real browser: headless Chromium, network blocked, opens the pages of a
generated two-week output; every chart draws its data marks inside it, and the page asks for
nothing but itself. Chromium missing is a failure, not a skip (.ci/run installs it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from markupsafe import escape

from agebatch.reports.html import CSP
from tests.browser import INSTALL, chromium, visit
from tests.reports.conftest import Published
from tests.reports.page import read_page

pytestmark = pytest.mark.slow

# Run in the page once it has loaded: each chart's size and its marks, those drawn with a size
# inside the chart's box counted apart.
MEASURE = """(() => {
  const inside = (r, box) => (r.width > 0 || r.height > 0) && r.right > box.left &&
      r.left < box.right && r.bottom > box.top && r.top < box.bottom;
  const charts = [...document.querySelectorAll('svg.chart')].map(svg => {
    const box = svg.getBoundingClientRect();
    const marks = [...svg.querySelectorAll('.mark')];
    const drawn = marks.filter(m => inside(m.getBoundingClientRect(), box) &&
        getComputedStyle(m).display !== 'none' && getComputedStyle(m).visibility !== 'hidden');
    return {name: svg.dataset.chart, width: box.width, height: box.height,
            marks: marks.length, drawn: drawn.length};
  });
  return {charts, scripts: document.scripts.length, images: document.images.length,
          tables: document.querySelectorAll('table').length};
})()"""


# Run at a width: does anything run off the page's right edge, is any text (svg text scaled as
# drawn) under 11 px, and is a withheld group drawn as a value in its scope's shares chart?
READABLE = """(() => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll('body *')].filter(e => {
    const r = e.getBoundingClientRect();
    if (r.width === 0 || r.right <= width + 1) return false;
    for (let p = e.parentElement; p; p = p.parentElement)
      if (p.classList.contains('scroll')) return false;  // scrolls inside its box
    return true;
  }).map(e => e.tagName + (e.dataset.table ? ':' + e.dataset.table : ''));
  const small = [];
  for (const t of document.querySelectorAll('body *')) {
    if (![...t.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
    let size = parseFloat(getComputedStyle(t).fontSize);
    const svg = t.closest('svg');
    if (svg) size *= svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
    if (size < 11) small.push(t.tagName + ' ' + t.textContent.trim().slice(0, 20) + ' ' + size);
  }
  const drawn = [];
  let withheld = 0;
  for (const table of document.querySelectorAll('table[data-table=shares]')) {
    for (const row of table.tBodies[0].rows) {
      if (!row.cells[1].classList.contains('withheld')) continue;
      withheld += 1;
      const group = row.cells[0].textContent.trim();
      const chart = document.querySelector(`svg[data-chart="shares:${table.dataset.scope}"]`);
      for (const m of chart ? chart.querySelectorAll('.mark') : [])
        if (m.dataset.key === group && m.dataset.series === 'receipts') drawn.push(group);
    }
  }
  return {scrollWidth: document.documentElement.scrollWidth, width, wide, small, drawn,
          withheld, text: document.body.innerText};
})()"""


@pytest.fixture(scope="module")
def browser() -> str:
    """Chromium's path; its absence fails the test with what to install."""
    path = chromium()
    if path is None:
        pytest.fail(f"Chromium is not installed, and the report's browser test needs it: {INSTALL}")
    return path


@pytest.mark.parametrize("page", ["index.html", "store-S02.html"])
def test_every_chart_draws_its_data_and_nothing_leaves_the_page(
    browser: str, two_weeks: Published, page: str
) -> None:
    path = two_weeks.out / "reports" / two_weeks.day.isoformat() / page
    html = path.read_text()
    assert f'content="{escape(CSP)}"' in html  # the page forbids every request
    visit_ = visit(path, MEASURE)
    assert visit_.requests == [path.resolve().as_uri()], visit_.requests
    assert visit_.messages == []
    found = visit_.result
    expected = read_page(html).marks
    assert {chart["name"] for chart in found["charts"]} == set(expected)
    assert len(expected) >= 4  # shares, trend, category mix, coverage at least
    for chart in found["charts"]:
        assert chart["width"] > 100 and chart["height"] > 50, chart
        assert chart["marks"] == len(expected[chart["name"]]), chart
        # a shares chart may be empty: on these small days (30 receipts a store) every group
        # is withheld at some store, so the chain's are all withheld; every other chart draws
        assert chart["marks"] > 0 or chart["name"] == "shares:chain", chart
        assert chart["drawn"] == chart["marks"], chart  # every mark drawn, inside its chart
    trend = next(chart for chart in found["charts"] if chart["name"].startswith("trend:"))
    # a dot per day and group that is published (withheld groups are gaps on these small days)
    assert trend["marks"] >= 7
    assert found["scripts"] == 0 and found["images"] == 0 and found["tables"] >= 5


def test_the_check_sees_a_request_and_an_empty_chart(browser: str, tmp_path: Path) -> None:
    """The browser check can fail: a page that asks the network for an image, and one with
    the report's policy whose chart has no marks."""
    leaky = tmp_path / "leaky.html"
    leaky.write_text(
        '<!DOCTYPE html><html><body><img src="http://report-test.invalid/pixel.png">'
        '<svg class="chart" data-chart="empty" width="300" height="100"></svg></body></html>'
    )
    seen = visit(leaky, MEASURE)
    assert "http://report-test.invalid/pixel.png" in seen.requests
    assert seen.result["charts"] == [
        {"name": "empty", "width": 300, "height": 100, "marks": 0, "drawn": 0}
    ]
    guarded = tmp_path / "guarded.html"
    guarded.write_text(
        f'<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" '
        f'content="{CSP}"></head><body><img src="http://report-test.invalid/pixel.png">'
        "</body></html>"
    )
    seen = visit(guarded, MEASURE)
    assert seen.blocked == {"http://report-test.invalid/pixel.png": "csp"}
    assert any("Content Security Policy" in message for message in seen.messages), seen.messages


@pytest.mark.parametrize("width", [390, 1280])
@pytest.mark.parametrize("page", ["index.html", "store-S02.html"])
def test_the_page_reads_on_a_phone_and_a_desktop(
    browser: str, two_weeks: Published, page: str, width: int
) -> None:
    """Nothing runs off the right edge (tables and charts scroll inside their box), no text
    under 11 px, and a withheld group is written "withheld" and never drawn as a value."""
    path = two_weeks.out / "reports" / two_weeks.day.isoformat() / page
    seen = visit(path, READABLE, width=width).result
    assert width - 20 <= seen["width"] <= width  # less a scroll bar's width
    assert seen["scrollWidth"] <= seen["width"] and seen["wide"] == [], seen["wide"]
    assert seen["small"] == [], seen["small"][:5]
    assert seen["drawn"] == []
    if page == "index.html":  # the chain's page of these small days withholds groups
        assert seen["withheld"] > 0


def test_the_readability_check_can_fail(browser: str, tmp_path: Path) -> None:
    """A wide table outside a scroll box, 8 px text and a withheld group drawn as a bar."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><html><head><meta name="viewport" content="width=device-width">'
        '</head><body><p style="font-size:8px">tiny</p>'
        '<table data-table="shares" data-scope="S1" style="width:900px"><tbody><tr>'
        '<th>18-24</th><td class="withheld">withheld</td></tr></tbody></table>'
        '<svg class="chart" data-chart="shares:S1" viewBox="0 0 720 100" width="300">'
        '<rect class="mark" data-key="18-24" data-series="receipts" width="5" height="5"/>'
        '<text font-size="12">shrunk</text></svg></body></html>'
    )
    seen = visit(bad, READABLE, width=390).result
    assert seen["scrollWidth"] > 390 and "TABLE:shares" in seen["wide"]
    assert any(s.startswith("P tiny") for s in seen["small"])
    assert any(s.startswith("text shrunk") for s in seen["small"])
    assert seen["drawn"] == ["18-24"] and seen["withheld"] == 1
