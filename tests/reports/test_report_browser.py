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
        assert chart["marks"] == len(expected[chart["name"]]) > 0, chart
        assert chart["drawn"] == chart["marks"], chart  # every mark drawn, inside its chart
    trend = next(chart for chart in found["charts"] if chart["name"].startswith("trend:"))
    assert trend["marks"] >= 14  # a dot per day at least, over the two weeks
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
