"""`lifecycle report`: one self-contained HTML file of the catalog, for people.

Charts are inline SVG (projections/reading/charts.py), and the file carries its own
styles and its one small script, so it opens anywhere with no network. Each section
(projections/reading/report_sections.py) has a chart, a line saying what it counts, a
table, and the customers behind it (ids only); both the table and the customers are
downloadable as CSV from the file itself (data URLs). The data comes from the catalog
views, read as `lifecycle sql` reads them. Every value shown is escaped.
"""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from html import escape
from pathlib import Path
from urllib.parse import quote

from projections.errors import ProjectionError
from projections.reading import charts
from projections.reading import report_sections as sections
from projections.reading.query import reading
from projections.reading.report_sections import Rows, Section

_FLOW_DAYS = 90
_BEHIND_SHOWN = 10


class ReportError(ProjectionError):
    """The report cannot be made as asked."""


def build_report(database: Path, since: datetime | None = None, until: datetime | None = None,
                 told: Callable[[str], None] | None = None) -> str:
    """The report's HTML; movements from `since` to `until` (default: the 90 days up
    to the population's time). `told` is told of each section as it is made."""
    with reading(database) as (connection, source):
        population_time = connection.execute("SELECT max(as_of) FROM customers").fetchone()[0]  # type: ignore[index]
        until = until or population_time
        since = since or (until - timedelta(days=_FLOW_DAYS) if until is not None else None)
        if since is not None and until is not None and since >= until:
            raise ReportError(f"--since {charts.day(since)} is not before --until {charts.day(until)} (the "
                              "population's time, if not given): give a --since before it, or swap the two")
        money = sections.Money(sections.base_currency(connection))
        makers = [
            partial(sections.funnel, connection, money),
            partial(sections.movement, connection, "stage", since, until),
            partial(sections.monthly, connection, money, population_time),
            partial(sections.churn, connection, money, population_time),
            partial(sections.time_in_stage, connection, population_time),
            partial(sections.pyramid, connection, money),
            partial(sections.movement, connection, "value_band", since, until),
            partial(sections.rfm, connection, money),
            partial(sections.daily, connection),
            partial(sections.cohorts, connection, population_time),
            partial(sections.p_alive, connection, money),
            partial(sections.value_matrix, connection, money),
            partial(sections.activity, connection, money),
            partial(sections.satisfaction, connection),
        ]
        made = []
        for number, make in enumerate(makers, start=1):
            if told is not None:
                told(f"section {number} of {len(makers)}")
            made.append(make())
    return _page(made, source.name, population_time)


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px auto;max-width:760px;color:#222}
h1{font-size:22px}h2{font-size:17px;margin-top:32px;border-bottom:1px solid #ddd}
.chart{width:100%;height:auto;font-size:12px}.small{font-size:11px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:2px 8px;text-align:left}
.note{color:#555}.csv{font-size:13px}summary{cursor:pointer;color:#3b6ea5}
"""
# The one script: marks the page as drawn, which the tests read back from the browser.
_SCRIPT = "document.body.dataset.rendered = String(document.querySelectorAll('section').length);"


def _page(made: list[Section], source: str, population_time: datetime | None) -> str:
    body = "".join(_section(section) for section in made)
    as_of = charts.day(population_time) if population_time is not None else "-"
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>Customer lifecycle report</title>"
        f"<style>{_STYLE}</style></head><body><h1>Customer lifecycle report</h1>"
        f'<p class="note">Population time {escape(as_of)}, from {escape(source)}.</p>'
        f"{body}<script>{_SCRIPT}</script></body></html>"
    )


def _section(section: Section) -> str:
    parts = [f'<section><h2>{escape(section.title)}</h2><p class="note">{escape(section.note)}</p>{section.chart}']
    name = _file_name(section.title)
    if section.table is not None:
        parts.append(charts.table(section.table.header, section.table.rows))
        parts.append(f'<p class="csv">{_download(section.table, f"{name}.csv", "This table as CSV")}</p>')
    behind = section.behind
    if behind is not None and behind.rows:
        total = behind.total if behind.total is not None else len(behind.rows)
        listed = f"the first {len(behind.rows):,} of {total:,}" if total > len(behind.rows) else f"all {total:,}"
        parts.append(
            f"<details><summary>The customers behind it: the first {min(_BEHIND_SHOWN, total)} of {total:,}"
            f"</summary>{charts.table(behind.header, behind.rows[:_BEHIND_SHOWN])}</details>"
            f'<p class="csv">{_download(behind, f"{name}-customers.csv", f"The customers as CSV ({listed})")}'
            + (f"; all of them: <code>lifecycle sql \"{escape(behind.query)}\"</code>" if total > len(behind.rows)
               and behind.query else "") + "</p>")
    return "".join(parts) + "</section>"


def _file_name(title: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in title.lower()).strip("-").replace("--", "-")


def _download(rows: Rows, file_name: str, text: str) -> str:
    """A link that saves `rows` as a CSV file, the data in the link itself."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(rows.header)
    writer.writerows(rows.rows)
    data = base64.b64encode(buffer.getvalue().encode("utf-8")).decode("ascii")
    return (f'<a download="{quote(file_name)}" href="data:text/csv;charset=utf-8;base64,{data}">'
            f"{escape(text)}</a>")
