"""`lifecycle report`: one self-contained HTML file of the catalog, for people.

Charts are inline SVG drawn here, and the file carries its own styles and its one
small script, so it opens anywhere with no network: the stage funnel, the stage flows
between two dates, the value pyramid, the RFM grid, customers per stage each day,
cohort retention, the value models' P(alive) distribution and value matrix, the
activity mix and satisfaction, each chart with a short table under it. The data comes
from the catalog views (projections/catalog/views.py), read as `lifecycle sql` reads them.
Every value shown is escaped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

import duckdb

from lifecycle.stage import LADDER
from projections.errors import ProjectionError
from projections.reading.query import reading
from schemas.currencies import minor_digits
from schemas.lifecycle_events import DIMENSION_VALUES

_COLOURS = ("#3b6ea5", "#e08a3c", "#5a9e5a", "#c0504d", "#8064a2", "#4bacc6", "#9c9c9c")
_STAGE_COLOURS = dict(zip(LADDER, ("#9c9c9c", "#4bacc6", "#8064a2", "#3b6ea5", "#5a9e5a", "#e08a3c", "#c0504d"),
                          strict=True))
"""One colour per stage whatever stages a report shows, so that a stage looks the same in every report."""
ACTIVITY = DIMENSION_VALUES["activity"]
"""Activity in decline order: active to churned."""
_ACTIVITY_COLOURS = dict(zip(ACTIVITY, ("#5a9e5a", "#9bbb59", "#e0b03c", "#e08a3c", "#c0504d"), strict=True))
_FLOW_DAYS = 90
_CONTENT_PX = 720
"""The width a chart is drawn at: the page's column. A chart drawn wider is scaled down, its text with it."""
_LABEL_PX = 6.6
"""About how wide a character of the charts' 11 px labels is drawn."""
_MIN_CELL_PX = 30


class ReportError(ProjectionError):
    """The report cannot be made as asked."""


@dataclass(frozen=True)
class Section:
    title: str
    note: str
    chart: str
    table: str


def build_report(database: Path, since: datetime | None = None, until: datetime | None = None) -> str:
    """The report's HTML; stage flows from `since` to `until` (default: the 90 days up
    to the population's time)."""
    with reading(database) as (connection, source):
        population_time = connection.execute("SELECT max(as_of) FROM customers").fetchone()[0]  # type: ignore[index]
        until = until or population_time
        since = since or (until - timedelta(days=_FLOW_DAYS) if until is not None else None)
        if since is not None and until is not None and since >= until:
            raise ReportError(f"--since {_day(since)} is not before --until {_day(until)} (the population's time, "
                              "if not given): give a --since before it, or swap the two")
        money = _Money(_base_currency(connection))
        sections = [
            _funnel(connection),
            _flows(connection, since, until),
            _pyramid(connection, money),
            _rfm(connection, money),
            _daily(connection),
            _cohorts(connection, population_time),
            _p_alive(connection, money),
            _value_matrix(connection, money),
            _activity(connection),
            _satisfaction(connection),
        ]
    return _page(sections, source.name, population_time)


def _base_currency(connection: duckdb.DuckDBPyConnection) -> str | None:
    """The policies' base currency, the one every value is in; None if they name several."""
    codes = _rows(connection, "SELECT DISTINCT policy->>'$.value.base_currency' FROM policies")
    return codes[0][0] if len(codes) == 1 else None


@dataclass(frozen=True)
class _Money:
    """Amounts in minor units of the base currency, shown as people write them."""

    currency: str | None

    @property
    def unit(self) -> str:
        return self.currency or "minor units"

    def __call__(self, minor: int | float | None) -> str:
        if minor is None:
            return "-"
        if self.currency is None:
            return f"{round(minor):,}"
        digits = minor_digits(self.currency)
        return f"{minor / 10 ** digits:,.{digits}f}"


def _rows(connection: duckdb.DuckDBPyConnection, query: str, parameters: list[Any] | None = None) -> list[tuple]:
    return connection.execute(query, parameters or []).fetchall()


def _funnel(connection: duckdb.DuckDBPyConnection) -> Section:
    rows = _rows(connection, "SELECT stage, customers_now, reached, conversion FROM stage_funnel ORDER BY rung")
    chart = _bars([(stage, reached) for stage, _, reached, _ in rows])
    table = _table(("stage", "customers now", "reached", "conversion from the rung below"),
                   [(s, n, r, _pct(c)) for s, n, r, c in rows])
    return Section("Stage funnel", "Customers who ever reached each rung of the ladder, or higher.", chart, table)


def _flows(connection: duckdb.DuckDBPyConnection, since: datetime | None, until: datetime | None) -> Section:
    title = "Stage flows"
    if since is None or until is None:
        return Section(title, "No customers yet.", "", "")
    rows = _rows(
        connection,
        "SELECT coalesce(a.stage, '(no lifecycle event yet)') AS from_stage, b.stage AS to_stage, count(*) "
        "FROM customers_as_of(?) b LEFT JOIN customers_as_of(?) a USING (customer_id) GROUP BY ALL",
        [until, since],
    )
    order = ["(no lifecycle event yet)", *LADDER]
    counts = {(f, t): n for f, t, n in rows}
    grid = _heatmap(order, list(LADDER), counts, "from", "to")
    moved = sorted(((f, t, n) for (f, t), n in counts.items() if f != t), key=lambda r: -r[2])[:10]
    note = f"Where customers stood on {_day(since)} (rows) and on {_day(until)} (columns), as the log is known now."
    return Section(title, note, grid, _table(("from", "to", "customers"), moved))


def _pyramid(connection: duckdb.DuckDBPyConnection, money: _Money) -> Section:
    rows = _rows(connection, "SELECT abc_class, segment, count(*), sum(share), sum(value_minor) FROM value_pyramid "
                             "GROUP BY ALL ORDER BY abc_class")
    chart = _bars([(f"{abc} ({segment})", count) for abc, segment, count, _, _ in rows])
    table = _table(("class", "customers", "share of value", f"value ({money.unit})"),
                   [(f"{abc} ({segment})", n, _pct(share), money(value)) for abc, segment, n, share, value in rows])
    return Section("Value pyramid", "ABC by the Pareto rule over the whole population: A brings the first 80% of the "
                   "value, B up to 95%. Not the customers' value band (`customers.value_band`), which the policy's "
                   "fixed thresholds decide for each customer alone.", chart, table)


def _rfm(connection: duckdb.DuckDBPyConnection, money: _Money) -> Section:
    cells = {(f"R{r}", f"F{f}"): n for r, f, n in _rows(
        connection, "SELECT r_score, f_score, count(*) FROM customer_rfm GROUP BY ALL")}
    grid = _heatmap([f"R{r}" for r in range(5, 0, -1)], [f"F{f}" for f in range(1, 6)], cells, "recency", "frequency")
    segments = _rows(connection, "SELECT segment, count(*), sum(monetary_minor) FROM customer_rfm GROUP BY ALL "
                                 "ORDER BY 3 DESC")
    return Section("RFM grid", "Buyers by recency score (rows, 5 = most recent) and frequency score (columns), "
                   "scored in quintiles against each other. Its segments (loyal, at risk, ...) are not the lifecycle "
                   "stages, which the rules decide from each customer's own history.", grid,
                   _table(("segment", "customers", f"value ({money.unit})"),
                          [(segment, n, money(value)) for segment, n, value in segments]))


def _daily(connection: duckdb.DuckDBPyConnection) -> Section:
    rows = _rows(connection, "SELECT day, value, customers FROM daily_lifecycle_counts "
                             "WHERE dimension = 'stage' ORDER BY day")
    series: dict[str, list[tuple[Any, int]]] = {}
    for day, value, customers in rows:
        series.setdefault(value, []).append((day, customers))
    ordered = {stage: series[stage] for stage in LADDER if stage in series}
    latest = [(stage, points[-1][1]) for stage, points in ordered.items()]
    return Section("Customers per stage, each day", "At the end of each day (UTC).", _lines(ordered, _STAGE_COLOURS),
                   _table(("stage", "customers on the last day"), latest))


def _cohorts(connection: duckdb.DuckDBPyConnection, population_time: datetime | None) -> Section:
    rows = _rows(connection, "SELECT cohort_month, months_after, cohort_customers, retention FROM cohort_retention")
    months = sorted({_day(m)[:7] for m, _, _, _ in rows})
    left = _label_width(months)
    fits = max(1, (_CONTENT_PX - left) // _MIN_CELL_PX)
    shown = min(max((k for _, k, _, _ in rows), default=-1) + 1, fits)
    offsets = [f"+{k}" for k in range(shown)]
    partial = _day(population_time)[:7] if population_time is not None else None
    cells: dict[tuple[str, str], int | str] = {}
    for month, k, _, retention in rows:
        if k < shown:
            # The population's own month is not over: its share is of the days so far.
            mark = "*" if _month_after(month, k) == partial else ""
            cells[(_day(month)[:7], f"+{k}")] = f"{round(100 * retention)}{mark}" if mark else round(100 * retention)
    sizes = sorted({(_day(m)[:7], n) for m, _, n, _ in rows})
    note = ("Share of each first-purchase month's customers (rows) who bought again N months later (columns), in "
            f"percent. *: the month of the population's time ({partial}), not over yet.")
    if shown <= max((k for _, k, _, _ in rows), default=-1):
        note += f" Months after +{shown - 1} are in the catalog's `cohort_retention`."
    return Section("Cohort retention", note, _heatmap(months, offsets, cells, "cohort", "months after"),
                   _table(("cohort", "customers"), sizes))


def _month_after(month: Any, months: int) -> str:
    index = int(str(month)[:4]) * 12 + int(str(month)[5:7]) - 1 + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def _latest_fit(connection: duckdb.DuckDBPyConnection) -> str | None:
    """The latest value model fit in words, or None before the first."""
    rows = _rows(connection, "SELECT cutoff, customers, r, alpha, a, b, p, q, gamma, currency, model FROM value_models "
                             "ORDER BY cutoff DESC, model_id LIMIT 1")
    if not rows:
        return None
    cutoff, customers, r, alpha, a, b, p, q, gamma, currency, model = rows[0]
    name = "MBG/NBD" if model == "mbg_nbd" else "BG/NBD"
    return (f"From the value model fitted as of {_day(cutoff)} to {customers} customers: {name} r={r:.3g}, "
            f"alpha={alpha:.3g} days, a={a:.3g}, b={b:.3g}; Gamma-Gamma p={p:.3g}, q={q:.3g}, "
            f"gamma={gamma:.4g} {currency} minor units.")


_NO_FIT = "No value model fit yet: run `lifecycle fit-value-model` (or let `lifecycle process` fit on its schedule)."


def _p_alive(connection: duckdb.DuckDBPyConnection, money: _Money) -> Section:
    title = "Chance still alive (BG/NBD or MBG/NBD)"
    fit = _latest_fit(connection)
    if fit is None:
        return Section(title, _NO_FIT, "", "")
    rows = _rows(connection, "SELECT least(floor(p_alive * 10), 9)::INTEGER AS tenth, count(*), "
                             "sum(expected_purchases), sum(model_clv_minor) FROM value_estimates GROUP BY 1 ORDER BY 1")
    counts = dict((tenth, n) for tenth, n, _, _ in rows)
    labels = [f"{tenth / 10:.1f}-{(tenth + 1) / 10:.1f}" for tenth in range(10)]
    chart = _bars([(label, counts.get(tenth, 0)) for tenth, label in enumerate(labels)])
    table = _table(("P(alive)", "customers", "expected purchases", f"model CLV ({money.unit})"),
                   [(labels[tenth], n, _number(purchases), money(clv)) for tenth, n, purchases, clv in rows])
    (churned, gone), = _rows(connection, "SELECT count_if(disagreement = 'churned_but_likely_alive'), "
                                         "count_if(disagreement = 'active_but_likely_gone') FROM model_vs_rules")
    fit += (f" The model and the rules disagree on {churned + gone} customers (view `model_vs_rules`): {churned} "
            f"the rules call churned have P(alive) of 0.5 or more, {gone} they call active have less.")
    return Section(title, f"Customers with a purchase by the cutoff, by their chance of still buying. {fit} The "
                   "model's CLV (`model_clv_minor`) is a forecast from the fit; the rules' lifetime value "
                   "(`customers.lifetime_value_minor`) is the policy's formula over each customer's history: they "
                   "answer different questions and need not agree.", chart, table)


def _value_matrix(connection: duckdb.DuckDBPyConnection, money: _Money) -> Section:
    title = "Value matrix"
    if _latest_fit(connection) is None:
        return Section(title, _NO_FIT, "", "")
    rows = _rows(connection, "SELECT current_level, potential_level, quadrant, count(*), sum(current_value_minor), "
                             "sum(potential_minor) FROM value_matrix GROUP BY ALL ORDER BY 3")
    cells = {(f"current {c}", p): n for c, p, _, n, _, _ in rows}
    grid = _heatmap(["current high", "current low"], ["low", "high"], cells, "current value", "potential")
    table = _table(("quadrant", "customers", f"current value ({money.unit})", f"potential ({money.unit})"),
                   [(quadrant, n, money(current), money(potential)) for _, _, quadrant, n, current, potential in rows])
    return Section(title, "Current value (the trailing window; rows) against potential (the model's CLV; "
                   "columns), split at each one's median.", grid, table)


def _activity(connection: duckdb.DuckDBPyConnection) -> Section:
    counts = dict(_rows(connection, "SELECT activity, count(*) FROM customers GROUP BY ALL"))
    rows = [(activity, counts[activity]) for activity in ACTIVITY if activity in counts]
    return Section("Activity now", "Decline by recency against each customer's own rhythm, from active to churned.",
                   _bars(rows, _ACTIVITY_COLOURS), _table(("activity", "customers"), rows))


def _satisfaction(connection: duckdb.DuckDBPyConnection) -> Section:
    result = connection.execute("SELECT * FROM satisfaction")
    names = [d[0] for d in result.description or []]
    values = result.fetchone() or ()
    return Section("Satisfaction and complaints", "T = S / C, CSAT and NPS of each customer's latest answers.", "",
                   _table(("measure", "value"), [(n, _number(v)) for n, v in zip(names, values)]))


def _bars(items: list[tuple[str, int]], colours: dict[str, str] | None = None) -> str:
    if not items:
        return ""
    width, row, label = 640, 22, 190
    top = max((value for _, value in items), default=0) or 1
    parts = [f'<svg class="chart" viewBox="0 0 {width} {row * len(items) + 4}" role="img">']
    for index, (name, value) in enumerate(items):
        length = (width - label - 70) * value / top
        y = index * row + 2
        parts.append(
            f'<text x="{label - 6}" y="{y + 15}" text-anchor="end">{escape(str(name))}</text>'
            f'<rect x="{label}" y="{y}" width="{length:.1f}" height="{row - 6}" '
            f'fill="{(colours or {}).get(name, _COLOURS[0])}">'
            f"<title>{escape(str(name))}: {value}</title></rect>"
            f'<text x="{label + length + 4:.1f}" y="{y + 15}">{value}</text>'
        )
    return "".join(parts) + "</svg>"


def _heatmap(rows: list[str], columns: list[str], counts: dict[tuple[str, str], int | str], across: str,
             down: str) -> str:
    """A grid of counts (a count may carry a mark: "12*"), drawn at most as wide as the
    page's column so that its text is never scaled down."""
    left, top = _label_width(rows), 40
    cell = max(_MIN_CELL_PX, min(64, (_CONTENT_PX - left) // max(len(columns), 1)))
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
                f'fill="{_COLOURS[0]}" fill-opacity="{shade:.2f}"{partial}><title>{escape(row)} / {escape(column)}: '
                f'{escape(str(shown))}</title></rect>'
                f'<text x="{left + c * cell + cell / 2}" y="{top + r * cell + cell / 2 + 4}" text-anchor="middle" '
                f'class="small">{escape(str(shown)) if value or shown != 0 else ""}</text>'
            )
    return "".join(parts) + "</svg>"


def _label_width(labels: list[str]) -> int:
    return int(12 + _LABEL_PX * max((len(label) for label in labels), default=0))


def _lines(series: dict[str, list[tuple[Any, int]]], colours: dict[str, str]) -> str:
    points = [p for values in series.values() for p in values]
    if not points:
        return ""
    width, height, left, bottom = 640, 260, 50, 30
    days = sorted({day for day, _ in points})
    top = max(value for _, value in points) or 1
    x = {day: left + (width - left - 120) * i / max(len(days) - 1, 1) for i, day in enumerate(days)}
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img">',
             f'<text x="4" y="14" class="small">{top}</text>',
             f'<text x="{left}" y="{height - 8}" class="small">{_day(days[0])}</text>',
             f'<text x="{width - 120}" y="{height - 8}" text-anchor="end" class="small">{_day(days[-1])}</text>']
    for index, (name, values) in enumerate(series.items()):
        colour = colours.get(name, _COLOURS[index % len(_COLOURS)])
        path = " ".join(f"{x[day]:.1f},{height - bottom - (height - bottom - 10) * v / top:.1f}" for day, v in values)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5">'
                     f"<title>{escape(name)}</title></polyline>")
        parts.append(f'<text x="{width - 112}" y="{20 + 16 * index}" fill="{colour}">{escape(name)}</text>')
    return "".join(parts) + "</svg>"


def _table(header: tuple[str, ...], rows: list[tuple]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _number(value: object) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def _day(moment: Any) -> str:
    return str(moment)[:10]


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px auto;max-width:760px;color:#222}
h1{font-size:22px}h2{font-size:17px;margin-top:32px;border-bottom:1px solid #ddd}
.chart{width:100%;height:auto;font-size:12px}.small{font-size:11px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:2px 8px;text-align:left}
.note{color:#555}
"""
# The one script: marks the page as drawn, which the tests read back from the browser.
_SCRIPT = "document.body.dataset.rendered = String(document.querySelectorAll('section').length);"


def _page(sections: list[Section], source: str, population_time: datetime | None) -> str:
    body = "".join(
        f'<section><h2>{escape(s.title)}</h2><p class="note">{escape(s.note)}</p>{s.chart}{s.table}</section>'
        for s in sections
    )
    as_of = _day(population_time) if population_time is not None else "-"
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>Customer lifecycle report</title>"
        f"<style>{_STYLE}</style></head><body><h1>Customer lifecycle report</h1>"
        f'<p class="note">Population time {escape(as_of)}, from {escape(source)}.</p>'
        f"{body}<script>{_SCRIPT}</script></body></html>"
    )
