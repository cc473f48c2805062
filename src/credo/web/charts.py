"""Charts as inline SVG drawn on the server: no script, no style attributes (the CSP allows
neither), a <title> and <desc> for screen readers, and every value also given as text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from itertools import count

from markupsafe import Markup, escape

PALETTE = (
    "#1f5fa8",
    "#c0392b",
    "#1e8449",
    "#b9770e",
    "#7d3c98",
    "#138d90",
    "#5d6d7e",
    "#d35400",
    "#17202a",
    "#a93279",
    "#6b8e23",
    "#8fb3e0",
)
EMPTY = Markup('<p class="muted">Nothing to show yet.</p>')
INK, MUTED, GRID = "#17202a", "#56606b", "#d5dbe1"
_ids = count(1)


def _open(width: int, height: int, title: str, desc: str) -> tuple[str, list[str]]:
    n = next(_ids)
    head = (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="chart{n}-t chart{n}-d" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="chart{n}-t">{escape(title)}</title><desc id="chart{n}-d">{escape(desc)}</desc>'
    )
    return head, []


def _text(x: float, y: float, label: str, anchor: str = "start", fill: str = INK) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{fill}">{escape(label)}</text>'
    )


def score_chart(
    points: Sequence[tuple[date, int]],
    *,
    today: date,
    bands: Sequence[tuple[str, int]],
    title: str,
    desc: str,
) -> Markup:
    """A subject's score over time: the past solid, the projection dashed, grade lines."""
    width, height, left, right, top, bottom = 720, 300, 56, 84, 16, 40
    if not points:
        return Markup("")
    scores = [s for _, s in points]
    low, high = min(scores), max(scores)
    near = [m for _, m in bands if low - 150 <= m <= high + 150]
    low, high = min([low, *near]) - 20, max([high, *near]) + 20
    first, last = points[0][0].toordinal(), points[-1][0].toordinal()
    span_x = max(1, last - first)
    span_y = max(1, high - low)

    def x(day: date) -> float:
        return left + (day.toordinal() - first) / span_x * (width - left - right)

    def y(score: float) -> float:
        return top + (high - score) / span_y * (height - top - bottom)

    head, parts = _open(width, height, title, desc)
    for name, minimum in bands:
        if low <= minimum <= high:
            parts.append(
                f'<line x1="{left}" x2="{width - right}" y1="{y(minimum):.1f}" '
                f'y2="{y(minimum):.1f}" stroke="{GRID}" stroke-dasharray="4 3"/>'
            )
            parts.append(_text(width - right + 4, y(minimum) + 4, f"{name} {minimum}", fill=MUTED))
    for tick in (low + 20, (low + high) // 2, high - 20):
        parts.append(_text(left - 6, y(tick) + 4, str(int(tick)), "end", MUTED))
    years = sorted({d.year for d, _ in points})
    for year in years:
        jan = date(year, 1, 1)
        if first <= jan.toordinal() <= last:
            parts.append(
                f'<line x1="{x(jan):.1f}" x2="{x(jan):.1f}" y1="{top}" '
                f'y2="{height - bottom}" stroke="{GRID}"/>'
            )
            parts.append(_text(x(jan) + 3, height - bottom + 16, str(year), fill=MUTED))
    past = [(d, s) for d, s in points if d <= today]
    future = [(d, s) for d, s in points if d >= today]
    for series, dash in ((past, ""), (future, ' stroke-dasharray="6 4"')):
        if len(series) > 1:
            coords = " ".join(f"{x(d):.1f},{y(s):.1f}" for d, s in series)
            parts.append(
                f'<polyline points="{coords}" fill="none" stroke="{PALETTE[0]}" '
                f'stroke-width="2.5"{dash}/>'
            )
    for d, s in points:
        parts.append(
            f'<circle cx="{x(d):.1f}" cy="{y(s):.1f}" r="2.5" fill="{PALETTE[0]}">'
            f"<title>{d.isoformat()}: {s}</title></circle>"
        )
    parts.append(
        f'<line x1="{x(today):.1f}" x2="{x(today):.1f}" y1="{top}" y2="{height - bottom}" '
        f'stroke="{INK}" stroke-width="1.5"/>'
    )
    parts.append(_text(x(today), top + 10, "today", "middle"))
    parts.append(
        _text(left, height - 6, "solid: as held · dashed: if nothing new is filed", fill=MUTED)
    )
    return Markup(head + "".join(parts) + "</svg>")


def bar_chart(bars: Sequence[tuple[str, int]], *, title: str, desc: str) -> Markup:
    """Horizontal bars with their values written beside them."""
    if not bars or not any(value for _, value in bars):
        return EMPTY
    width, row, left = 480, 26, 150
    height = max(1, len(bars)) * row + 12
    peak = max([v for _, v in bars] or [1]) or 1
    head, parts = _open(width, height, title, desc)
    for i, (label, value) in enumerate(bars):
        top = 6 + i * row
        length = value / peak * (width - left - 60)
        parts.append(_text(left - 8, top + 16, label, "end"))
        parts.append(
            f'<rect x="{left}" y="{top + 3}" width="{max(length, 1):.1f}" height="{row - 8}" '
            f'fill="{PALETTE[i % len(PALETTE)]}"/>'
        )
        parts.append(_text(left + length + 6, top + 16, f"{value:,}"))
    return Markup(head + "".join(parts) + "</svg>")


def stacked_columns(
    columns: Sequence[str], series: Mapping[str, Sequence[int]], *, title: str, desc: str
) -> Markup:
    """Columns (e.g. months) stacked by series (e.g. authorities), with a legend."""
    if not series:
        return EMPTY
    names = list(series)
    width, left, top = 720, 48, 12
    legend_rows = -(-len(names) // 3)
    plot_bottom = 230
    height = plot_bottom + 30 + legend_rows * 20
    totals = [sum(series[n][i] for n in names) for i in range(len(columns))]
    peak = max(totals or [1]) or 1
    step = (width - left - 10) / max(1, len(columns))
    head, parts = _open(width, height, title, desc)
    parts.append(_text(left - 6, top + 8, f"{peak:,}", "end", MUTED))
    parts.append(_text(left - 6, plot_bottom, "0", "end", MUTED))
    parts.append(
        f'<line x1="{left}" x2="{width - 10}" y1="{plot_bottom}" y2="{plot_bottom}" '
        f'stroke="{MUTED}"/>'
    )
    for i, column in enumerate(columns):
        base = float(plot_bottom)
        for k, name in enumerate(names):
            value = series[name][i]
            if not value:
                continue
            h = value / peak * (plot_bottom - top)
            base -= h
            parts.append(
                f'<rect x="{left + i * step + 2:.1f}" y="{base:.1f}" width="{step - 4:.1f}" '
                f'height="{h:.1f}" fill="{PALETTE[k % len(PALETTE)]}">'
                f"<title>{escape(column)} · {escape(name)}: {value:,}</title></rect>"
            )
        if len(columns) <= 12 or i % max(1, len(columns) // 12) == 0:
            parts.append(_text(left + i * step + step / 2, plot_bottom + 16, column, "middle"))
    for k, name in enumerate(names):
        lx = left + (k % 3) * 220
        ly = plot_bottom + 30 + (k // 3) * 20
        parts.append(
            f'<rect x="{lx}" y="{ly}" width="12" height="12" fill="{PALETTE[k % len(PALETTE)]}"/>'
        )
        parts.append(_text(lx + 18, ly + 11, name))
    return Markup(head + "".join(parts) + "</svg>")


def line_chart(
    columns: Sequence[str], series: Mapping[str, Sequence[int]], *, title: str, desc: str
) -> Markup:
    """One line per series (e.g. list sizes) across columns (e.g. months), with a legend."""
    if not series or not columns:
        return EMPTY
    names = list(series)
    width, left, top, plot_bottom = 720, 48, 12, 230
    height = plot_bottom + 30 + -(-len(names) // 3) * 20
    peak = max((max(values) for values in series.values()), default=1) or 1
    step = (width - left - 10) / max(1, len(columns) - 1)
    head, parts = _open(width, height, title, desc)
    parts.append(_text(left - 6, top + 8, f"{peak:,}", "end", MUTED))
    parts.append(_text(left - 6, plot_bottom, "0", "end", MUTED))
    parts.append(
        f'<line x1="{left}" x2="{width - 10}" y1="{plot_bottom}" y2="{plot_bottom}" '
        f'stroke="{MUTED}"/>'
    )
    for i, column in enumerate(columns):
        if len(columns) <= 12 or i % max(1, len(columns) // 12) == 0:
            parts.append(_text(left + i * step, plot_bottom + 16, column, "middle"))
    for k, name in enumerate(names):
        colour = PALETTE[k % len(PALETTE)]
        points = [
            (left + i * step, plot_bottom - v / peak * (plot_bottom - top))
            for i, v in enumerate(series[name])
        ]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for (x, y), column, value in zip(points, columns, series[name], strict=True):
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}">'
                f"<title>{escape(column)} · {escape(name)}: {value:,}</title></circle>"
            )
        lx = left + (k % 3) * 220
        ly = plot_bottom + 30 + (k // 3) * 20
        parts.append(f'<rect x="{lx}" y="{ly}" width="12" height="12" fill="{colour}"/>')
        parts.append(_text(lx + 18, ly + 11, name))
    return Markup(head + "".join(parts) + "</svg>")
