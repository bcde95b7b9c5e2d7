"""The segment catalog (docs/catalog.md) on a hand-written population, answers by hand.

Six customers over one month from 2025-01-01 09:00 UTC (day 0), amounts in EUR cents,
value = revenue (no margins):

| customer | purchases (day: amount) | other events (day) |
|---|---|---|
| a | 0: 10000, 10: 10000, 20: 10000 | survey NPS 10, CSAT 5 (21) |
| b | 5: 5000 | survey NPS 3, CSAT 2 (6) |
| c | 25: 1000 | complaint filed (26), resolved satisfied (28) |
| d | 2: 2000, 12: 2000 | survey NPS 8 (13), complaint filed (14), still open |
| e | - | inbound contact (1) |
| f | - | outbound contact (3) |

and a clock on day 30.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import duckdb
import pytest

from projections.reading.export import TABLES
from tests.cli import lifecycle, sql_rows
from tests.test_explain import _at, _event, _purchase

POPULATION = [
    _purchase(1, "a", 0, 10_000, None), _purchase(2, "a", 10, 10_000, None), _purchase(3, "a", 20, 10_000, None),
    _event(4, "survey_answered", 21, "a", nps=10, csat=5),
    _purchase(5, "b", 5, 5_000, None), _event(6, "survey_answered", 6, "b", nps=3, csat=2),
    _purchase(7, "c", 25, 1_000, None),
    _event(8, "complaint_filed", 26, "c", complaint_id="k-c", category="delivery", severity="low"),
    _event(9, "complaint_resolved", 28, "c", complaint_id="k-c", satisfied=True),
    _purchase(10, "d", 2, 2_000, None), _purchase(11, "d", 12, 2_000, None),
    _event(12, "survey_answered", 13, "d", nps=8),
    _event(13, "complaint_filed", 14, "d", complaint_id="k-d", category="billing", severity="high"),
    _event(14, "contact", 1, "e", channel="phone", direction="inbound"),
    _event(15, "contact", 3, "f", channel="email", direction="outbound"),
    _event(16, "clock", 30),
]


@pytest.fixture
def catalog(settings, tmp_path: Path, capsys):  # type: ignore[no-untyped-def]
    events = sorted(POPULATION, key=lambda e: e["occurred_at"])
    source = tmp_path / "population.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in events))
    assert lifecycle(settings, "publish", str(source), "--allow-future") == 0
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0

    return partial(sql_rows, settings, capsys)


def test_rfm_scores_and_segments(catalog):
    assert catalog("SELECT customer_id, recency_days, frequency, monetary_minor, r_score, f_score, m_score, segment"
                   " FROM customer_rfm ORDER BY customer_id") == [
        ("a", 10, 3, 30_000, 4, 5, 5, "champions"),
        ("b", 25, 1, 5_000, 1, 1, 4, "hibernating"),
        ("c", 5, 1, 1_000, 5, 1, 1, "new_customers"),
        ("d", 18, 2, 4_000, 2, 4, 2, "at_risk"),
    ]


def test_value_pyramid_by_the_pareto_rule(catalog):
    assert catalog("SELECT customer_id, value_minor, cumulative_share, abc_class, segment FROM value_pyramid"
                   " ORDER BY customer_id") == [
        ("a", 30_000, 0.75, "A", "key"),
        ("b", 5_000, 0.875, "A", "key"),  # the customer that crosses 80% is still in A
        ("c", 1_000, 1.0, "C", "small"),
        ("d", 4_000, 0.975, "B", "normal"),
        ("e", 0, 1.0, "C", "small"),
        ("f", 0, 1.0, "C", "small"),
    ]


def test_loyalty_matrix(catalog):
    assert catalog("SELECT * FROM loyalty_matrix ORDER BY ALL") == [
        ("negative", "low", "none", 2),  # b (NPS 3, CSAT 2), d (an open complaint)
        ("neutral", "low", "none", 2),  # e, f
        ("positive", "low", "latent", 2),  # a (NPS 10, CSAT 5), c (a recovery that satisfied)
    ]


def test_stage_funnel_with_conversion_between_rungs(catalog):
    assert catalog("SELECT * FROM stage_funnel") == [
        (1, "prospect", 1, 6, None),
        (2, "qualified", 1, 5, 5 / 6),
        (3, "first_time", 2, 4, 4 / 5),
        (4, "repeat", 2, 2, 2 / 4),
        (5, "loyal", 0, 0, 0.0),
        (6, "member", 0, 0, None),
        (7, "advocate", 0, 0, None),
    ]


def test_daily_counts_per_stage_and_activity(catalog):
    day11, day30 = _at(11)[:10], _at(30)[:10]
    assert catalog(f"SELECT dimension, value, customers FROM daily_lifecycle_counts WHERE day = '{day11}'"
                   " AND customers > 0 ORDER BY ALL") == [
        ("activity", "active", 5),
        ("stage", "first_time", 2),  # b, d (d's second purchase is on day 12)
        ("stage", "prospect", 1),
        ("stage", "qualified", 1),
        ("stage", "repeat", 1),
    ]
    assert catalog(f"SELECT dimension, value, customers FROM daily_lifecycle_counts WHERE day = '{day30}'"
                   " AND customers > 0 ORDER BY ALL") == [
        ("activity", "active", 6),
        ("stage", "first_time", 2),
        ("stage", "prospect", 1),
        ("stage", "qualified", 1),
        ("stage", "repeat", 2),
    ]


def test_satisfaction_and_complaints(catalog):
    assert catalog("SELECT * FROM satisfaction") == [(2, 1, 50.0, 3.5, 3, 0.0, 2, 1, 1, 2.0, 100.0)]


def test_export_writes_the_catalog_as_parquet_without_personal_data(catalog, settings, tmp_path):
    target = tmp_path / "warehouse"
    assert lifecycle(settings, "export", "--parquet", str(target)) == 0
    assert sorted(p.name for p in target.iterdir()) == sorted(["manifest.json", *(f"{t}.parquet" for t in TABLES)])
    exported = duckdb.sql(f"SELECT * FROM '{target / 'customer_rfm.parquet'}' ORDER BY customer_id").fetchall()
    assert exported == catalog("SELECT * FROM customer_rfm ORDER BY customer_id")
    assert duckdb.sql(f"SELECT count(*) FROM '{target / 'customers.parquet'}'").fetchall() == [(6,)]
    assert "customer_profiles" not in TABLES and "dead_letters" not in TABLES


COHORTS = [  # (customer, day of each purchase): January and February cohorts
    ("p1", (4, 40)),  # 2025-01-05, 2025-02-10
    ("p2", (19,)),  # 2025-01-20
    ("p3", (33, 90)),  # 2025-02-03, 2025-04-01
    ("p4", (45, 73, 78)),  # 2025-02-15, 2025-03-15, 2025-03-20
]


def test_cohort_retention_by_first_purchase_month(settings, tmp_path, capsys):
    events = sorted(
        (_purchase(100 + 10 * n + k, customer, day, 1_000, None)
         for n, (customer, days) in enumerate(COHORTS) for k, day in enumerate(days)),
        key=lambda e: e["occurred_at"])
    source = tmp_path / "cohorts.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in events))
    assert lifecycle(settings, "publish", str(source), "--allow-future") == 0
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    capsys.readouterr()
    assert lifecycle(settings, "sql", "SELECT * FROM cohort_retention", "--format", "json") == 0
    assert [tuple(row.values()) for row in json.loads(capsys.readouterr().out)] == [
        ("2025-01-01", 0, 2, 2, 1.0),
        ("2025-01-01", 1, 2, 1, 0.5),  # p1 bought again in February
        ("2025-02-01", 0, 2, 2, 1.0),
        ("2025-02-01", 1, 2, 1, 0.5),  # p4 in March (twice: one customer)
        ("2025-02-01", 2, 2, 1, 0.5),  # p3 in April
    ]


def test_value_matrix_splits_current_value_and_potential_at_their_medians(tmp_path):
    """Five customers with a model figure and one without, written to a real DuckDB
    file: medians 300 (current) and 5000 (potential); a customer at a median is low."""
    from lifecycle.state import CustomerState
    from projections.catalog import customers
    from projections.stores.projection_store import DuckDBProjectionStore

    figures = {"a": (500, 9000), "b": (100, 8000), "c": (400, 100), "d": (0, 50), "e": (300, 5000), "f": (700, None)}
    store = DuckDBProjectionStore(tmp_path / "views.duckdb")
    try:
        with store.recorder.transaction() as connection:
            states = [CustomerState(customer_id=c, current_value_minor=current) for c, (current, _) in figures.items()]
            customers.upsert(connection, customers.customers_table(states, ["p"] * len(states)))
            for customer, (_, potential) in figures.items():
                if potential is not None:
                    connection.execute(
                        "INSERT INTO value_estimates VALUES (?, 'p', uuid(), 1, 1, 2, 100, 0.5, 1.0, 100, ?)",
                        [customer, potential])
            rows = connection.execute("SELECT customer_id, current_level, potential_level, quadrant "
                                      "FROM value_matrix ORDER BY customer_id").fetchall()
    finally:
        store.close()
    assert rows == [
        ("a", "high", "high", "most_valuable"),
        ("b", "low", "high", "growth"),
        ("c", "high", "low", "maintain"),
        ("d", "low", "low", "low_value"),
        ("e", "low", "low", "low_value"),
    ]


def test_raw_facts_answer_nps_by_month_complaint_times_and_contacts(catalog):
    # NPS: promoters (9-10) less detractors (0-6), in percent of answers: a 10, b 3, d 8 in January.
    assert catalog("SELECT strftime(occurred_at, '%Y-%m'), count(nps), round(100.0 * (count_if(nps >= 9) "
                   "- count_if(nps <= 6)) / count(nps)) FROM surveys GROUP BY 1") == [("2025-01", 3, 0.0)]
    assert catalog("SELECT customer_id, complaint_id, category, severity, days_to_resolve, satisfied "
                   "FROM complaints ORDER BY 1") == [
        ("c", "k-c", "delivery", "low", 2.0, True),  # filed day 26, resolved day 28
        ("d", "k-d", "billing", "high", None, None),  # still open
    ]
    assert catalog("SELECT customer_id, channel, direction FROM contacts ORDER BY 1") == [
        ("e", "phone", "inbound"), ("f", "email", "outbound")]
    assert catalog("SELECT kind, count(*) FROM customer_facts GROUP BY 1 ORDER BY 1") == [
        ("complaint_filed", 2), ("complaint_resolved", 1), ("contact", 2), ("survey_answered", 3)]


def test_visits_memberships_referrals_and_consents_are_one_query_each(settings, tmp_path, capsys):
    events = [
        _event(1, "visit", 1, "g", place="store", duration_s=600), _event(2, "visit", 8, "g", place="web"),
        _event(3, "visit", 15, "g", place="store", duration_s=300), _event(4, "visit", 2, "h", place="app"),
        _event(5, "membership_joined", 3, "g", programme="club", member_id="M-77"),
        _event(6, "membership_left", 20, "g", programme="club"),
        _event(7, "referral_made", 4, "g", referred_customer_id="h"),
        _event(8, "consent_changed", 5, "h", purpose="marketing", granted=False),
        _event(9, "contact", 6, "h", channel="chat", direction="inbound", topic="call me at +44 20 7946 0000"),
        _event(2, "visit", 8, "g", place="web"),  # a repeat: ignored, no second row
    ]
    source = tmp_path / "facts.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in events))
    assert lifecycle(settings, "publish", str(source), "--allow-future") == 0
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0

    query = partial(sql_rows, settings, capsys)
    # Visit frequency: visits per customer and the mean days between them.
    assert query("SELECT customer_id, count(*), count_if(place = 'store'), sum(duration_s), "
                 "round(date_diff('day', min(occurred_at), max(occurred_at)) / (count(*) - 1), 1) "
                 "FROM visits GROUP BY 1 HAVING count(*) > 1") == [("g", 3, 2, 900, 7.0)]
    assert query("SELECT customer_id, programme, joined FROM memberships ORDER BY occurred_at") == [
        ("g", "club", True), ("g", "club", False)]
    assert query("SELECT customer_id, referred_customer_id FROM referrals") == [("g", "h")]
    assert query("SELECT customer_id, purpose, granted FROM consents") == [("h", "marketing", False)]
    facts = query("SELECT * FROM customer_facts")
    assert len(facts) == 9
    assert not any("M-77" in str(row) or "7946" in str(row) for row in facts), "no member numbers, no free text"


def test_model_vs_rules_lists_where_the_value_model_and_the_rules_disagree():
    from projections.catalog import views

    connection = duckdb.connect()
    connection.execute("CREATE TABLE customers (customer_id VARCHAR, stage VARCHAR, activity VARCHAR, purchases INT, "
                       "last_purchase_at TIMESTAMPTZ, p_alive DOUBLE, value_model_id UUID)")
    connection.executemany("INSERT INTO customers VALUES (?, 'first_time', ?, 1, NULL, ?, NULL)", [
        ("a", "churned", 0.7), ("b", "churned", 0.3), ("c", "active", 0.2), ("d", "active", 0.9),
        ("e", "dormant", 0.1), ("f", "churned", None), ("g", "churned", 0.5), ("h", "active", 0.5),
    ])
    (ddl,) = [statement for statement in views.DDL if "VIEW model_vs_rules" in statement]
    connection.execute(ddl)
    assert connection.execute("SELECT customer_id, disagreement FROM model_vs_rules ORDER BY 1").fetchall() == [
        ("a", "churned_but_likely_alive"),  # a year without buying, yet even odds or better of buying again
        ("c", "active_but_likely_gone"),
        ("g", "churned_but_likely_alive"),  # 0.5 counts as likely alive
    ]  # b and d agree; e is neither active nor churned; f has no figures; h at 0.5 is not likely gone
