"""Read an HTML report back: its tables (by data-table and data-scope), its charts' marks and
every element, with the standard library's parser."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from html.parser import HTMLParser


@dataclass
class Page:
    """What a report page holds, as parsed."""

    tables: dict[tuple[str, str | None], list[list[str]]] = field(default_factory=dict)
    marks: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # chart -> marks
    tags: set[str] = field(default_factory=set)
    text: list[str] = field(default_factory=list)

    def table(self, name: str, scope: str | None = None) -> dict[str, list[str]]:
        """A table's body rows keyed by their first cell (header row left out)."""
        rows = self.tables[(name, scope)]
        return {row[0]: row[1:] for row in rows[1:]}

    def header(self, name: str, scope: str | None = None) -> list[str]:
        """A table's header cells."""
        return self.tables[(name, scope)][0]


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._table: list[list[str]] | None = None
        self._cell: list[str] | None = None
        self._chart: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.page.tags.add(tag)
        if tag == "table":
            self._table = []
            self.page.tables[(a.get("data-table", ""), a.get("data-scope"))] = self._table
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        elif tag == "svg" and "chart" in a.get("class", "").split():
            self._chart = a["data-chart"]
            self.page.marks[self._chart] = []
        elif self._chart is not None and "mark" in a.get("class", "").split():
            self.page.marks[self._chart].append({"tag": tag, **a})

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table:
            self._table[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None
        elif tag == "svg":
            self._chart = None

    def handle_data(self, data: str) -> None:
        self.page.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def read_page(html: str) -> Page:
    """Parse a report page."""
    reader = _Reader()
    reader.feed(html)
    reader.close()
    return reader.page


def percent(cell: str) -> float | None:
    """'23.4%' as 0.234; a dash as None."""
    return None if cell == "\u2013" else float(cell.rstrip("%")) / 100


def money(cell: str, sign: str = "£") -> Decimal:
    """'£2,028.60' (or '-£3.10') as Decimal('2028.60'); the currency's sign must be there."""
    negative = cell.startswith("-")
    assert cell.removeprefix("-").startswith(sign), f"{cell!r} lacks its currency {sign}"
    value = Decimal(cell.removeprefix("-").removeprefix(sign).replace(",", ""))
    return -value if negative else value


def amount(cell: str) -> float | None:
    """'£2,028.60' as 2028.6; a dash as None."""
    return None if cell == "\u2013" else float(money(cell))
