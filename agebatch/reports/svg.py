"""Charts as inline SVG markup for the report's templates: no script, nothing fetched.

Each helper returns MarkupSafe `Markup` that the page template places as it is; every text in
it goes through `esc` (MarkupSafe's escape, the one the templates' autoescape uses), and every
number is formatted here. Every data mark is an element of class `mark` carrying its
value in `data-value`, so a browser test can count the marks each chart drew and the report's
tests can read the plotted figures back.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

# Okabe & Ito's colour-blind-safe palette, then darker and lighter tones for longer lists.
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#000000",
    "#999999",
    "#6A3D9A",
    "#B15928",
    "#1F78B4",
)
WIDTH = 720
LABEL_W = 120  # room for the row labels on the left
VALUE_W = 70  # room for the value written after a bar
FONT = 12


def esc(value: object) -> Markup:
    """Escape text for HTML and SVG, quotes included; markup passes through."""
    return escape(value)


def number(value: float) -> str:
    """A value as written in a data-value attribute: full precision, read back exactly."""
    return repr(float(value))


def percent(value: float | None, digits: int = 1) -> str:
    """A share as a percentage for people, e.g. 23.4%; a dash when there is none."""
    return "\u2013" if value is None else f"{100 * value:.{digits}f}%"


def colour(index: int) -> str:
    """The palette's colour for the index-th key."""
    return PALETTE[index % len(PALETTE)]


def _svg(name: str, label: str, height: float, body: list[str]) -> Markup:
    """The chart's svg element: class chart, its name, an accessible label."""
    return Markup(
        f'<svg class="chart" data-chart="{esc(name)}" role="img" aria-label="{esc(label)}" '
        f'viewBox="0 0 {WIDTH} {height:.0f}" width="{WIDTH}" height="{height:.0f}" '
        f'font-size="{FONT}" xmlns="http://www.w3.org/2000/svg"><title>{esc(label)}</title>'
        + "".join(body)
        + "</svg>"
    )


def _legend(keys: Sequence[str]) -> tuple[list[str], float]:
    """A row of coloured squares and key names, wrapped onto more lines when they do not fit;
    and the height it takes."""
    parts, x, y = [], LABEL_W, 4
    for i, key in enumerate(keys):
        width = 24 + 7 * len(key)
        if x + width > WIDTH - 20 and x > LABEL_W:
            x, y = LABEL_W, y + 16
        parts.append(
            f'<rect x="{x}" y="{y}" width="10" height="10" fill="{colour(i)}"/>'
            f'<text x="{x + 14}" y="{y + 9}">{esc(key)}</text>'
        )
        x += width
    return parts, y + 20


def bar_chart(
    name: str,
    label: str,
    rows: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    missing: str = "\u2013",
) -> Markup:
    """Grouped horizontal bars of shares (0-1): one block per row, one bar per series; a
    missing value draws no bar and is written as `missing` (a dash, or e.g. 'withheld')."""
    bar_h, gap = 12, 10
    body, top = _legend([key for key, _ in series])
    block = len(series) * bar_h + gap
    height = top + len(rows) * block + 4
    values = [v for _, vs in series for v in vs if v is not None]
    scale = (WIDTH - LABEL_W - VALUE_W) / max(max(values, default=0.0), 1e-9)
    for r, row in enumerate(rows):
        y0 = top + r * block
        body.append(
            f'<text x="{LABEL_W - 8}" y="{y0 + block / 2}" text-anchor="end">{esc(row)}</text>'
        )
        for s, (key, vs) in enumerate(series):
            value = vs[r]
            y = y0 + s * bar_h
            if value is not None and value > 0:
                body.append(
                    f'<rect class="mark" data-key="{esc(row)}" data-series="{esc(key)}" '
                    f'data-value="{number(value)}" x="{LABEL_W}" y="{y}" '
                    f'width="{value * scale:.2f}" height="{bar_h - 2}" fill="{colour(s)}">'
                    f"<title>{esc(row)}, {esc(key)}: {percent(value)}</title></rect>"
                )
            end = LABEL_W + (value or 0) * scale + 4
            text = missing if value is None else percent(value)
            body.append(f'<text x="{end:.2f}" y="{y + bar_h - 3}">{esc(text)}</text>')
    return _svg(name, label, height, body)


def stacked_chart(
    name: str,
    label: str,
    keys: Sequence[str],
    rows: Sequence[tuple[str, Sequence[float | None], str]],
    totals: Sequence[float | None] | None = None,
) -> Markup:
    """One 100% bar per row (label, values in the order of keys, note written after it): each
    key's part of the row's total, in the key's colour. A value None (withheld) draws nothing:
    with totals (each row's exact total) the bar then stops short; a total None draws no bar."""
    bar_h, gap = 16, 8
    body, top = _legend(keys)
    height = top + len(rows) * (bar_h + gap) + 4
    span = WIDTH - LABEL_W - VALUE_W
    for r, (row, values, note) in enumerate(rows):
        y = top + r * (bar_h + gap)
        total = sum(max(v, 0.0) for v in values if v is not None)
        if totals is not None:
            total = totals[r] or 0.0
        body.append(
            f'<text x="{LABEL_W - 8}" y="{y + bar_h - 4}" text-anchor="end">{esc(row)}</text>'
        )
        x = float(LABEL_W)
        for k, (key, value) in enumerate(zip(keys, values, strict=True)):
            if total <= 0 or value is None or value <= 0:
                continue
            part = value / total
            body.append(
                f'<rect class="mark" data-key="{esc(row)}" data-series="{esc(key)}" '
                f'data-value="{number(part)}" x="{x:.2f}" y="{y}" width="{part * span:.2f}" '
                f'height="{bar_h}" fill="{colour(k)}"><title>{esc(row)}, {esc(key)}: '
                f"{percent(part)}</title></rect>"
            )
            x += part * span
        body.append(f'<text x="{LABEL_W + span + 4}" y="{y + bar_h - 4}">{esc(note)}</text>')
    return _svg(name, label, height, body)


def line_chart(
    name: str,
    label: str,
    days: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
) -> Markup:
    """One line per series over the days (shares, 0-1), a dot per known value; a value None
    (a day not published, a group withheld) breaks the line."""
    body, top = _legend([key for key, _ in series])
    top, plot_h, bottom = top + 6, 220, 24
    height = top + plot_h + bottom
    left, right = LABEL_W - 60, WIDTH - 20
    values = [v for _, vs in series for v in vs if v is not None]
    peak = max(max(values, default=0.0), 1e-9)
    step = 0.05 if peak <= 0.3 else 0.1
    ceiling = step * (int(peak / step) + 1)

    def x_of(i: int) -> float:
        return left + (right - left) * (i / max(len(days) - 1, 1) if len(days) > 1 else 0.5)

    def y_of(v: float) -> float:
        return top + plot_h * (1 - v / ceiling)

    ticks = round(ceiling / step)
    for t in range(ticks + 1):
        v = t * step
        body.append(
            f'<line x1="{left}" x2="{right}" y1="{y_of(v):.2f}" y2="{y_of(v):.2f}" '
            f'stroke="#ddd"/><text x="{left - 4}" y="{y_of(v) + 4:.2f}" '
            f'text-anchor="end">{percent(v, 0)}</text>'
        )
    shown = sorted({0, len(days) - 1, (len(days) - 1) // 2}) if days else []
    for i in shown:
        anchor = "start" if i == 0 else "end" if i == len(days) - 1 else "middle"
        body.append(
            f'<text x="{x_of(i):.2f}" y="{height - 6}" text-anchor="{anchor}">{esc(days[i])}</text>'
        )
    for s, (key, vs) in enumerate(series):
        # a new segment after each missing value: a line never bridges a gap
        moves = [
            f"{'M' if i == 0 or vs[i - 1] is None else 'L'}{x_of(i):.2f},{y_of(v):.2f}"
            for i, v in enumerate(vs)
            if v is not None
        ]
        if any(move.startswith("L") for move in moves):
            path = " ".join(moves)
            body.append(
                f'<path class="mark line" data-series="{esc(key)}" d="{path}" fill="none" '
                f'stroke="{colour(s)}" stroke-width="2"/>'
            )
        for i, v in enumerate(vs):
            if v is None:
                continue
            body.append(
                f'<circle class="mark point" data-key="{esc(days[i])}" data-series="{esc(key)}" '
                f'data-value="{number(v)}" cx="{x_of(i):.2f}" cy="{y_of(v):.2f}" r="3" '
                f'fill="{colour(s)}"><title>{esc(days[i])}, {esc(key)}: {percent(v)}</title>'
                "</circle>"
            )
    return _svg(name, label, height, body)
