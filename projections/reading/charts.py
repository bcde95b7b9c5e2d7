"""The report's pieces: inline SVG charts (bars, heatmaps, lines), HTML tables, and how
numbers, days and shares are written; with the fixed colours of the stages and
activities, so that a stage looks the same in every report.

Every chart is drawn at most as wide as the page's column (`CONTENT_PX`), so its text
is never scaled below the size it was drawn at. Every value shown is escaped.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any

from lifecycle.stage import LADDER
from schemas.lifecycle_events import DIMENSION_VALUES

COLOURS = ("#3b6ea5", "#e08a3c", "#5a9e5a", "#c0504d", "#8064a2", "#4bacc6", "#9c9c9c")
STAGE_COLOURS = dict(zip(LADDER, ("#9c9c9c", "#4bacc6", "#8064a2", "#3b6ea5", "#5a9e5a", "#e08a3c", "#c0504d"),
                          strict=True))
"""One colour per stage whatever stages a report shows, so that a stage looks the same in every report."""
ACTIVITY = DIMENSION_VALUES["activity"]
"""Activity in decline order: active to churned."""
ACTIVITY_COLOURS = dict(zip(ACTIVITY, ("#5a9e5a", "#9bbb59", "#e0b03c", "#e08a3c", "#c0504d"), strict=True))
CONTENT_PX = 720
"""The width a chart is drawn at: the page's column. A chart drawn wider is scaled down, its text with it."""
LABEL_PX = 6.6
"""About how wide a character of the charts' 11 px labels is drawn."""
MIN_CELL_PX = 30


def bars(items: list[tuple[str, int]], colours: dict[str, str] | None = None,
         shown: Callable[[int], str] = str) -> str:
    """One bar an item, its value written as `shown` gives it, each bar in its name's colour if given."""
    if not items:
        return ""
    width, row, label = 640, 22, 190
    top = max((value for _, value in items), default=0) or 1
    parts = [f'<svg class="chart" viewBox="0 0 {width} {row * len(items) + 4}" role="img">']
    for index, (name, value) in enumerate(items):
        length = (width - label - 100) * value / top
        y = index * row + 2
        parts.append(
            f'<text x="{label - 6}" y="{y + 15}" text-anchor="end">{escape(str(name))}</text>'
            f'<rect x="{label}" y="{y}" width="{length:.1f}" height="{row - 6}" '
            f'fill="{(colours or {}).get(name, COLOURS[0])}">'
            f"<title>{escape(str(name))}: {value}</title></rect>"
            f'<text x="{label + length + 4:.1f}" y="{y + 15}">{escape(shown(value))}</text>'
        )
    return "".join(parts) + "</svg>"


def heatmap(rows: list[str], columns: list[str], counts: dict[tuple[str, str], int | str], across: str,
             down: str) -> str:
    """A grid of counts (a count may carry a mark: "12*"), drawn at most as wide as the
    page's column so that its text is never scaled down."""
    left, top = label_width(rows), 40
    cell = max(MIN_CELL_PX, min(64, (CONTENT_PX - left) // max(len(columns), 1)))
    values = [int(str(v).rstrip("*")) for v in counts.values()]
    largest = max(values, default=0) or 1
    width = left + cell * len(columns) + 4
    parts = [f'<svg class="chart" viewBox="0 0 {width} {top + cell * len(rows) + 4}" style="max-width:{width}px" '
             f'role="img" aria-label="{escape(across)} by {escape(down)}">']
    for c, column in enumerate(columns):
        parts.append(f'<text x="{left + c * cell + cell / 2}" y="{top - 8}" text-anchor="middle" '
                     f'class="small">{escape(column)}</text>')
    for r, row in enumerate(rows):
        parts.append(f'<text x="{left - 6}" y="{top + r * cell + cell / 2 + 4}" text-anchor="end" '
                     f'class="small">{escape(row)}</text>')
        for c, column in enumerate(columns):
            shown = counts.get((row, column), 0)
            value = int(str(shown).rstrip("*"))
            shade = 0.08 + 0.92 * value / largest if value else 0.03
            partial = ' stroke="#888" stroke-dasharray="3 2"' if str(shown).endswith("*") else ""
            parts.append(
                f'<rect x="{left + c * cell}" y="{top + r * cell}" width="{cell - 2}" height="{cell - 2}" '
                f'fill="{COLOURS[0]}" fill-opacity="{shade:.2f}"{partial}><title>{escape(row)} / {escape(column)}: '
                f'{escape(str(shown))}</title></rect>'
                f'<text x="{left + c * cell + cell / 2}" y="{top + r * cell + cell / 2 + 4}" text-anchor="middle" '
                f'class="small">{escape(str(shown)) if value or shown != 0 else ""}</text>'
            )
    return "".join(parts) + "</svg>"


def label_width(labels: list[str]) -> int:
    return int(12 + LABEL_PX * max((len(label) for label in labels), default=0))


def lines(series: dict[str, list[tuple[Any, int]]], colours: dict[str, str]) -> str:
    points = [p for values in series.values() for p in values]
    if not points:
        return ""
    width, height, left, bottom = 640, 260, 50, 30
    days = sorted({day for day, _ in points})
    top = max(value for _, value in points) or 1
    x = {day: left + (width - left - 120) * i / max(len(days) - 1, 1) for i, day in enumerate(days)}
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img">',
             f'<text x="4" y="14" class="small">{top}</text>',
             f'<text x="{left}" y="{height - 8}" class="small">{day(days[0])}</text>',
             f'<text x="{width - 120}" y="{height - 8}" text-anchor="end" class="small">{day(days[-1])}</text>']
    for index, (name, values) in enumerate(series.items()):
        colour = colours.get(name, COLOURS[index % len(COLOURS)])
        path = " ".join(f"{x[day]:.1f},{height - bottom - (height - bottom - 10) * v / top:.1f}" for day, v in values)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5">'
                     f"<title>{escape(name)}</title></polyline>")
        parts.append(f'<text x="{width - 112}" y="{20 + 16 * index}" fill="{colour}">{escape(name)}</text>')
    return "".join(parts) + "</svg>"


def table(header: tuple[str, ...], rows: list[tuple]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def number(value: object) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def day(moment: Any) -> str:
    return str(moment)[:10]
