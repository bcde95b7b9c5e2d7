"""The catalog's views over time (projections/catalog/trends.py) on a hand-written
population, answers by hand. From 2025-01-01 09:00 UTC (day 0), amounts in EUR cents,
the shipped policy (dormant after 180 silent days, churned after 365, without a rhythm):

| customer | purchases (day: amount) | activity |
|---|---|---|
| p | 0: 1000 | dormant day 180 (2025-06-30), churned day 365 (2026-01-01) |
| q | 10: 2000, 230: 4000 | dormant day 190 (2025-07-10), won back day 230 (2025-08-19) |
| r | 31: 3000 | dormant day 211 (2025-07-31), churned day 396 (2026-02-01) |

and a clock every 30 days to day 400 (2026-02-05).
"""

from __future__ import annotations

import json
from functools import partial

import pytest

from tests.cli import lifecycle, sql_rows
from tests.test_explain import _event, _purchase

POPULATION = [
    _purchase(1, "p", 0, 1_000, None), _purchase(2, "q", 10, 2_000, None), _purchase(3, "r", 31, 3_000, None),
    _purchase(4, "q", 230, 4_000, None),
    *(_event(100 + day, "clock", day) for day in range(30, 401, 30)), _event(99, "clock", 400),
]


@pytest.fixture
def trends(settings, tmp_path, capsys):  # type: ignore[no-untyped-def]
    source = tmp_path / "trends.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in sorted(POPULATION, key=lambda e: e["occurred_at"])))
    assert lifecycle(settings, "publish", str(source), "--allow-future") == 0
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0

    return partial(sql_rows, settings, capsys)


def test_revenue_buyers_churn_and_win_back_each_month(trends):
    rows = {month[:7]: rest for month, *rest in trends(
        "SELECT month, revenue_minor, buyers, active_customers, churned, won_back, churn_rate, win_back_rate "
        "FROM monthly_trends ORDER BY month")}
    assert rows["2025-01"][:5] == [3_000, 2, 2, 0, 0]  # p and q bought; r not yet a customer
    assert rows["2025-02"][:5] == [3_000, 1, 3, 0, 0]
    assert rows["2025-07"][:5] == [0, 0, 0, 0, 0]  # q dormant on the 10th, r on the 31st: nobody active
    # August: q won back, of the three asleep at the end of July (p, q, r); no one churned of those three.
    assert rows["2025-08"] == [4_000, 1, 1, 0, 1, 0.0, pytest.approx(1 / 3)]
    assert rows["2026-01"][3:6] == [1, 0, pytest.approx(1 / 3)]  # p churned, of three not churned at December's end
    assert rows["2026-02"][3:6] == [1, 0, pytest.approx(1 / 2)]  # r churned, of the two left


def test_time_in_stage_median_and_p90(trends):
    assert trends("SELECT stage, stays_ended, still_there, median_days, p90_days FROM time_in_stage "
                  "ORDER BY stage") == [
        ("first_time", 1, 2, 220.0, 220.0),  # q: day 10 to day 230; p and r are still first-time buyers
        ("prospect", 3, 0, 0.0, 0.0),  # each bought at their first event
        ("repeat", 0, 1, None, None),
    ]


def test_the_report_shows_them_as_computed_above(trends, settings):
    from projections.reading.report import build_report

    html = build_report(settings.views_path)
    time_in_stage = html.split("<h2>Time in stage</h2>")[1].split("</section>")[0]
    assert "<tr><td>first_time</td><td>1</td><td>2</td><td>220.0</td><td>220.0</td></tr>" in time_in_stage
    monthly = html.split("<h2>Revenue and active customers, each month</h2>")[1].split("</section>")[0]
    assert "<tr><td>2025-08</td><td>40.00</td><td>1</td><td>1</td></tr>" in monthly
    assert "<td>2026-02*</td>" in monthly, "the month of the population's time is not over"
    churn = html.split("<h2>Churn and win-back, each month</h2>")[1].split("</section>")[0]
    assert "<tr><td>2025-08</td><td>0</td><td>0.0%</td><td>1</td><td>33.3%</td></tr>" in churn
    assert "<tr><td>2026-01</td><td>1</td><td>33.3%</td><td>0</td><td>0.0%</td></tr>" in churn
    # Behind it: the customers churned now, the latest first: r (2026-02-01), then p (2026-01-01).
    assert churn.index("<td>r</td>") < churn.index("<td>p</td>")
