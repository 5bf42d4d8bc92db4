"""Small pieces of the page read true: an offer's range that is wholly above 1 never reads as
starting at 1.00, and a trend line breaks at a missing or withheld day."""

from __future__ import annotations

import re

import pytest

from agebatch.reports.html import likely_range
from agebatch.reports.report_data import group_key
from agebatch.reports.svg import line_chart


@pytest.mark.parametrize(
    ("low", "high", "text"),
    [
        (1.004, 2.491, "just over 1 to 2.50\u00d7"),
        (1.019, 1.5, "1.01 to 1.50\u00d7"),
        (2.3, 3.6, "2.30 to 3.60\u00d7"),
        (0.8, 1.2, "0.80 to 1.20\u00d7"),
    ],
)
def test_an_offer_range_wholly_above_1_reads_so(low: float, high: float, text: str) -> None:
    assert likely_range(low, high) == text


def test_a_trend_line_breaks_at_a_gap() -> None:
    days = ["d1", "d2", "d3", "d4", "d5"]
    svg = str(line_chart("t", "t", days, [("18-24", [0.1, 0.2, None, 0.3, 0.4])]))
    (path,) = re.findall(r'<path class="mark line"[^>]* d="([^"]+)"', svg)
    assert path.count("M") == 2 and path.count("L") == 2  # two segments, none across d3
    assert svg.count("<circle") == 4  # a dot per known value, none for the gap


def test_groups_of_older_days_still_sort() -> None:
    """Days published before cells were withheld hold a 'suppressed' row: it sorts after the
    age groups and before 'unknown', and does not stop the page."""
    labels = ["unknown", "65+", "suppressed", "18-24", "<18"]
    assert sorted(labels, key=group_key) == ["<18", "18-24", "65+", "suppressed", "unknown"]
