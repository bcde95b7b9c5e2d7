"""What each section of `lifecycle report` shows: its chart, its table, a line saying
what it counts (and how it differs from similar words elsewhere), and the customers
behind it, read from the catalog as `lifecycle sql` reads it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from lifecycle.stage import LADDER
from projections.reading import charts
from schemas.currencies import minor_digits
from schemas.lifecycle_events import DIMENSION_VALUES


@dataclass(frozen=True)
class Rows:
    """A table: shown under its chart, and downloadable as CSV from the page itself."""

    header: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    total: int | None = None
    """How many rows there are in all, where `rows` holds only the first `BEHIND_ROWS`."""
    query: str | None = None
    """The catalog query that gives them all."""


@dataclass(frozen=True)
class Section:
    title: str
    note: str
    chart: str
    table: Rows | None
    behind: Rows | None = None
    """The customers behind the chart (ids only, no personal data), most significant first."""


BEHIND_ROWS = 1_000
"""The most customers a section embeds; all of them are one `lifecycle sql` away."""


@dataclass(frozen=True)
class Money:
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


def base_currency(connection: duckdb.DuckDBPyConnection) -> str | None:
    """The policies' base currency, the one every value is in; None if they name several."""
    codes = _rows(connection, "SELECT DISTINCT policy->>'$.value.base_currency' FROM policies")
    return codes[0][0] if len(codes) == 1 else None


def _rows(connection: duckdb.DuckDBPyConnection, query: str, parameters: list[Any] | None = None) -> list[tuple]:
    return connection.execute(query, parameters or []).fetchall()


def _behind(connection: duckdb.DuckDBPyConnection, header: tuple[str, ...], query: str,
            shown: Callable[[tuple[Any, ...]], tuple[Any, ...]] = lambda row: row) -> Rows:
    """The customers behind a chart: the first `BEHIND_ROWS` rows of `query`, and how many in all."""
    total = _rows(connection, f"SELECT count(*) FROM ({query})")[0][0]
    rows = [shown(row) for row in _rows(connection, f"{query} LIMIT {BEHIND_ROWS}")]
    return Rows(header, rows, total, query)


def funnel(connection: duckdb.DuckDBPyConnection, money: Money) -> Section:
    rows = _rows(connection, "SELECT stage, customers_now, reached, conversion FROM stage_funnel ORDER BY rung")
    table = Rows(("stage", "customers now", "reached", "conversion from the rung below"),
                 [(s, n, r, charts.pct(c)) for s, n, r, c in rows])
    behind = _behind(connection, ("customer", "stage", f"historical value ({money.unit})"),
                     "SELECT customer_id, stage, historical_value_minor FROM customers "
                     "ORDER BY historical_value_minor DESC, customer_id", lambda r: (r[0], r[1], money(r[2])))
    return Section("Stage funnel", "Customers who ever reached each rung of the ladder, or higher.",
                   charts.bars([(stage, reached) for stage, _, reached, _ in rows], charts.STAGE_COLOURS), table,
                   behind)


_NOT_YET = "(no lifecycle event yet)"


def movement(connection: duckdb.DuckDBPyConnection, dimension: str, since: datetime | None,
             until: datetime | None) -> Section:
    """Where customers stood in `dimension` at `since` and at `until`, as the log is known now."""
    title = "Stage flows" if dimension == "stage" else f"Movement between {dimension.replace('_', ' ')}s"
    if since is None or until is None:
        return Section(title, "No customers yet.", "", None)
    flows = (f"SELECT b.customer_id, coalesce(a.{dimension}, '{_NOT_YET}') AS from_value, b.{dimension} AS to_value "
             f"FROM customers_as_of(TIMESTAMPTZ '{until.isoformat()}') b "
             f"LEFT JOIN customers_as_of(TIMESTAMPTZ '{since.isoformat()}') a USING (customer_id)")
    counts = {(f, t): n for f, t, n in _rows(connection, f"SELECT from_value, to_value, count(*) FROM ({flows}) "
                                                         "GROUP BY ALL")}
    values = list(DIMENSION_VALUES[dimension])
    grid = charts.heatmap([_NOT_YET, *values], values, counts, "from", "to")
    moved = sorted(((f, t, n) for (f, t), n in counts.items() if f != t), key=lambda r: (-r[2], r[0], r[1]))
    behind = _behind(connection, ("customer", "from", "to"),
                     f"SELECT * FROM ({flows}) WHERE from_value <> to_value ORDER BY from_value, to_value, customer_id")
    note = (f"Where customers stood on {charts.day(since)} (rows) and on {charts.day(until)} (columns), as the log is "
            "known now.")
    if dimension == "value_band":
        note += " Value bands are the policy's fixed thresholds on each customer's value (not the value pyramid)."
    return Section(title, note, grid, Rows(("from", "to", "customers"), moved), behind)


def pyramid(connection: duckdb.DuckDBPyConnection, money: Money) -> Section:
    rows = _rows(connection, "SELECT abc_class, segment, count(*), sum(share), sum(value_minor) FROM value_pyramid "
                             "GROUP BY ALL ORDER BY abc_class")
    table = Rows(("class", "customers", "share of value", f"value ({money.unit})"),
                 [(f"{abc} ({segment})", n, charts.pct(share), money(value)) for abc, segment, n, share, value in rows])
    behind = _behind(connection, ("customer", "class", f"value ({money.unit})"),
                     "SELECT customer_id, abc_class, value_minor FROM value_pyramid ORDER BY value_minor DESC, "
                     "customer_id", lambda r: (r[0], r[1], money(r[2])))
    return Section("Value pyramid", "ABC by the Pareto rule over the whole population: A brings the first 80% of the "
                   "value, B up to 95%. Not the customers' value band (`customers.value_band`), which the policy's "
                   "fixed thresholds decide for each customer alone.",
                   charts.bars([(f"{abc} ({segment})", count) for abc, segment, count, _, _ in rows]), table, behind)


def rfm(connection: duckdb.DuckDBPyConnection, money: Money) -> Section:
    cells = {(f"R{r}", f"F{f}"): n for r, f, n in _rows(
        connection, "SELECT r_score, f_score, count(*) FROM customer_rfm GROUP BY ALL")}
    grid = charts.heatmap([f"R{r}" for r in range(5, 0, -1)], [f"F{f}" for f in range(1, 6)], cells, "recency",
                          "frequency")
    segments = _rows(connection, "SELECT segment, count(*), sum(monetary_minor) FROM customer_rfm GROUP BY ALL "
                                 "ORDER BY 3 DESC")
    behind = _behind(connection, ("customer", "segment", "R", "F", "M", f"value ({money.unit})"),
                     "SELECT customer_id, segment, r_score, f_score, m_score, monetary_minor FROM customer_rfm "
                     "ORDER BY monetary_minor DESC, customer_id", lambda r: (*r[:5], money(r[5])))
    return Section("RFM grid", "Buyers by recency score (rows, 5 = most recent) and frequency score (columns), "
                   "scored in quintiles against each other. Its segments (loyal, at risk, ...) are not the lifecycle "
                   "stages, which the rules decide from each customer's own history.", grid,
                   Rows(("segment", "customers", f"value ({money.unit})"),
                        [(segment, n, money(value)) for segment, n, value in segments]), behind)


def daily(connection: duckdb.DuckDBPyConnection) -> Section:
    rows = _rows(connection, "SELECT day, value, customers FROM daily_lifecycle_counts "
                             "WHERE dimension = 'stage' ORDER BY day")
    series: dict[str, list[tuple[Any, int]]] = {}
    for moment, value, customers in rows:
        series.setdefault(value, []).append((moment, customers))
    ordered = {stage: series[stage] for stage in LADDER if stage in series}
    latest = [(stage, points[-1][1]) for stage, points in ordered.items()]
    return Section("Customers per stage, each day", "At the end of each day (UTC).",
                   charts.lines(ordered, charts.STAGE_COLOURS), Rows(("stage", "customers on the last day"), latest))


def month_of(moment: Any) -> str:
    return charts.day(moment)[:7]


def monthly(connection: duckdb.DuckDBPyConnection, money: Money, population_time: datetime | None) -> Section:
    rows = _rows(connection, "SELECT month, revenue_minor, buyers, active_customers FROM monthly_trends ORDER BY month")
    partial = month_of(population_time) if population_time is not None else None
    label = lambda month: month_of(month) + ("*" if month_of(month) == partial else "")  # noqa: E731
    table = Rows(("month", f"revenue ({money.unit})", "buyers", "active customers at the month's end"),
                 [(label(m), money(revenue), buyers, active) for m, revenue, buyers, active in rows])
    chart = charts.bars([(label(m), revenue) for m, revenue, _, _ in rows], shown=money)
    return Section("Revenue and active customers, each month", "Net revenue (purchases less refunds, as booked) and "
                   "the customers who bought in each month, and the customers whose activity was `active` at its "
                   f"end. *: the month of the population's time ({partial}), not over yet.", chart, table)


def churn(connection: duckdb.DuckDBPyConnection, money: Money, population_time: datetime | None) -> Section:
    rows = _rows(connection, "SELECT month, churned, churn_rate, won_back, win_back_rate FROM monthly_trends "
                             "ORDER BY month")
    partial = month_of(population_time) if population_time is not None else None
    series = {"churned": [(m, churned) for m, churned, _, _, _ in rows],
              "won back": [(m, won) for m, _, _, won, _ in rows]}
    table = Rows(("month", "churned", "churn rate", "won back", "win-back rate"),
                 [(month_of(m) + ("*" if month_of(m) == partial else ""), c, charts.pct(cr), w, charts.pct(wr))
                  for m, c, cr, w, wr in rows])
    behind = _behind(connection, ("customer", "churned at", f"historical value ({money.unit})"),
                     "SELECT t.customer_id, t.occurred_at, c.historical_value_minor FROM lifecycle_transitions t "
                     "JOIN customers c USING (customer_id) WHERE t.dimension = 'activity' AND t.to_value = 'churned' "
                     "AND c.activity = 'churned' ORDER BY t.occurred_at DESC, t.customer_id",
                     lambda r: (r[0], charts.day(r[1]), money(r[2])))
    return Section("Churn and win-back, each month", "Customers whose activity became `churned` in the month (a year "
                   "without a purchase, by the policy), of those not churned at the month before's end; and customers "
                   "won back (a purchase after being dormant or churned), of those dormant or churned then. Behind it: "
                   "the customers churned now, the latest first.",
                   charts.lines(series, {"churned": "#c0504d", "won back": "#5a9e5a"}), table, behind)


def time_in_stage(connection: duckdb.DuckDBPyConnection, population_time: datetime | None) -> Section:
    counts = {stage: row for stage, *row in _rows(
        connection, "SELECT stage, stays_ended, still_there, median_days, p90_days FROM time_in_stage")}
    rows = [(stage, *counts[stage]) for stage in LADDER if stage in counts]
    table = Rows(("stage", "stays ended", "still there", "median days", "90th percentile days"),
                 [(stage, ended, there, charts.number(median), charts.number(p90))
                  for stage, ended, there, median, p90 in rows])
    now = f"TIMESTAMPTZ '{population_time.isoformat()}'" if population_time is not None else "now()"
    behind = _behind(connection, ("customer", "stage", "days in it so far"),
                     f"SELECT customer_id, stage, round(epoch({now} - entered_at) / 86400.0, 1) AS days "
                     "FROM stage_stays WHERE left_at IS NULL ORDER BY days DESC, customer_id")
    chart = charts.bars([(stage, round(median or 0)) for stage, _, _, median, _ in rows], charts.STAGE_COLOURS)
    return Section("Time in stage", "How long customers stayed in each stage before their next stage change (median "
                   "and 90th percentile, in days, of the stays that ended); the chart shows the medians. Behind it: "
                   "the longest stays still going.", chart, table, behind)


def cohorts(connection: duckdb.DuckDBPyConnection, population_time: datetime | None) -> Section:
    rows = _rows(connection, "SELECT cohort_month, months_after, cohort_customers, retention FROM cohort_retention")
    months = sorted({month_of(m) for m, _, _, _ in rows})
    fits = max(1, (charts.CONTENT_PX - charts.label_width(months)) // charts.MIN_CELL_PX)
    last = max((k for _, k, _, _ in rows), default=-1)
    shown = min(last + 1, fits)
    partial = month_of(population_time) if population_time is not None else None
    cells: dict[tuple[str, str], int | str] = {}
    for month, k, _, retention in rows:
        if k < shown:
            # The population's own month is not over: its share is of the days so far.
            percent = round(100 * retention)
            cells[(month_of(month), f"+{k}")] = f"{percent}*" if _month_after(month, k) == partial else percent
    note = ("Share of each first-purchase month's customers (rows) who bought again N months later (columns), in "
            f"percent. *: the month of the population's time ({partial}), not over yet.")
    if shown <= last:
        note += f" Months after +{shown - 1} are in the catalog's `cohort_retention`."
    return Section("Cohort retention", note,
                   charts.heatmap(months, [f"+{k}" for k in range(shown)], cells, "cohort", "months after"),
                   Rows(("cohort", "customers"), sorted({(month_of(m), n) for m, _, n, _ in rows})))


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
    return (f"From the value model fitted as of {charts.day(cutoff)} to {customers} customers: {name} r={r:.3g}, "
            f"alpha={alpha:.3g} days, a={a:.3g}, b={b:.3g}; Gamma-Gamma p={p:.3g}, q={q:.3g}, "
            f"gamma={gamma:.4g} {currency} minor units.")


_NO_FIT = "No value model fit yet: run `lifecycle fit-value-model` (or let `lifecycle process` fit on its schedule)."


def p_alive(connection: duckdb.DuckDBPyConnection, money: Money) -> Section:
    title = "Chance still alive (BG/NBD or MBG/NBD)"
    fit = _latest_fit(connection)
    if fit is None:
        return Section(title, _NO_FIT, "", None)
    rows = _rows(connection, "SELECT least(floor(p_alive * 10), 9)::INTEGER AS tenth, count(*), "
                             "sum(expected_purchases), sum(model_clv_minor) FROM value_estimates GROUP BY 1 ORDER BY 1")
    counts = dict((tenth, n) for tenth, n, _, _ in rows)
    labels = [f"{tenth / 10:.1f}-{(tenth + 1) / 10:.1f}" for tenth in range(10)]
    table = Rows(("P(alive)", "customers", "expected purchases", f"model CLV ({money.unit})"),
                 [(labels[tenth], n, charts.number(purchases), money(clv)) for tenth, n, purchases, clv in rows])
    # count_if of no rows is NULL; count(*) of none is 0.
    (churned, gone), = _rows(connection, "SELECT count(*) FILTER (WHERE disagreement = 'churned_but_likely_alive'), "
                                         "count(*) FILTER (WHERE disagreement = 'active_but_likely_gone') "
                                         "FROM model_vs_rules")
    behind = _behind(connection, ("customer", "activity", "P(alive)", "disagreement"),
                     "SELECT customer_id, activity, p_alive, disagreement FROM model_vs_rules "
                     "ORDER BY abs(p_alive - 0.5) DESC, customer_id")
    return Section(title, f"Customers with a purchase by the cutoff, by their chance of still buying. {fit} The model "
                   f"and the rules disagree on {churned + gone} customers (view `model_vs_rules`, behind the chart): "
                   f"{churned} the rules call churned have P(alive) of 0.5 or more, {gone} they call active have less. "
                   "The model's CLV (`model_clv_minor`) is a forecast from the fit; the rules' lifetime value "
                   "(`customers.clv_minor`) is the policy's formula over each customer's history: they answer "
                   "different questions and need not agree.",
                   charts.bars([(label, counts.get(tenth, 0)) for tenth, label in enumerate(labels)]), table, behind)


def value_matrix(connection: duckdb.DuckDBPyConnection, money: Money) -> Section:
    title = "Value matrix"
    if _latest_fit(connection) is None:
        return Section(title, _NO_FIT, "", None)
    rows = _rows(connection, "SELECT current_level, potential_level, quadrant, count(*), sum(current_value_minor), "
                             "sum(potential_minor) FROM value_matrix GROUP BY ALL ORDER BY 3")
    cells = {(f"current {c}", p): n for c, p, _, n, _, _ in rows}
    table = Rows(("quadrant", "customers", f"current value ({money.unit})", f"potential ({money.unit})"),
                 [(quadrant, n, money(current), money(potential)) for _, _, quadrant, n, current, potential in rows])
    behind = _behind(connection, ("customer", "quadrant", f"potential ({money.unit})"),
                     "SELECT customer_id, quadrant, potential_minor FROM value_matrix "
                     "ORDER BY potential_minor DESC, customer_id", lambda r: (r[0], r[1], money(r[2])))
    return Section(title, "Current value (the trailing window; rows) against potential (the model's CLV; "
                   "columns), split at each one's median.",
                   charts.heatmap(["current high", "current low"], ["low", "high"], cells, "current value",
                                  "potential"), table, behind)


def activity(connection: duckdb.DuckDBPyConnection, money: Money) -> Section:
    counts = dict(_rows(connection, "SELECT activity, count(*) FROM customers GROUP BY ALL"))
    rows = [(value, counts[value]) for value in charts.ACTIVITY if value in counts]
    behind = _behind(connection, ("customer", "activity", f"historical value ({money.unit})"),
                     "SELECT customer_id, activity, historical_value_minor FROM customers WHERE activity <> 'active' "
                     "ORDER BY historical_value_minor DESC, customer_id", lambda r: (r[0], r[1], money(r[2])))
    return Section("Activity now", "Decline by recency against each customer's own rhythm, from active to churned. "
                   "Behind it: the customers no longer active, the most valuable first.",
                   charts.bars(rows, charts.ACTIVITY_COLOURS), Rows(("activity", "customers"), rows), behind)


def satisfaction(connection: duckdb.DuckDBPyConnection) -> Section:
    result = connection.execute("SELECT * FROM satisfaction")
    names = [d[0] for d in result.description or []]
    values = result.fetchone() or ()
    behind = _behind(connection, ("customer", "filed at", "category", "severity"),
                     "SELECT customer_id, filed_at, category, severity FROM complaints WHERE resolved_at IS NULL "
                     "ORDER BY filed_at, customer_id", lambda r: (r[0], charts.day(r[1]), r[2], r[3]))
    return Section("Satisfaction and complaints", "T = S / C, CSAT and NPS of each customer's latest answers. Behind "
                   "it: the complaints still open, the oldest first.", "",
                   Rows(("measure", "value"), [(n, charts.number(v)) for n, v in zip(names, values)]), behind)
