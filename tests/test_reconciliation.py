"""Money and counts reconcile across the projections, on seeded populations and random
streams: per customer the value movements sum to the historical value (a refund takes
back what its order brought, margin share included) and a repeat is no second row; the
stage funnel counts the customers; the value pyramid's shares sum to 100%; each
dimension's latest lifecycle event ends where the customer stands; and the daily
counts on the last day are today's."""

from __future__ import annotations

import json
import random

import pytest
from eventsourcing.persistence import Tracking

from consumers.logs.event_log import CUSTOMER_EVENTS
from consumers.logs import open_event_log
from consumers.settings import Settings
from lifecycle.population import PopulationSpec, generate
from schemas import encode_event
from tests.cli import lifecycle
from tests.test_determinism import INITIAL, build_stream

CHECKS = {
    "movements sum to the historical value": """
        SELECT c.customer_id, c.historical_value_minor, m.value FROM customers c
        LEFT JOIN (SELECT customer_id, sum(value_minor) AS value FROM value_movements GROUP BY 1) m USING (customer_id)
        WHERE coalesce(m.value, 0) <> c.historical_value_minor""",
    "movements without a customer": """
        SELECT customer_id FROM value_movements EXCEPT SELECT customer_id FROM customers""",
    "one movement per event": """
        SELECT event_id, count(*) FROM value_movements GROUP BY 1 HAVING count(*) > 1""",
    "the funnel counts every customer on their stage": """
        SELECT f.stage, f.customers_now, coalesce(c.n, 0) FROM stage_funnel f
        LEFT JOIN (SELECT stage, count(*) AS n FROM customers GROUP BY 1) c USING (stage)
        WHERE f.customers_now <> coalesce(c.n, 0)
        UNION ALL SELECT 'reached prospect', reached, (SELECT count(*) FROM customers) FROM stage_funnel
        WHERE rung = (SELECT min(rung) FROM stage_funnel) AND reached <> (SELECT count(*) FROM customers)""",
    "the pyramid's shares sum to 100%": """
        SELECT sum(share), max(cumulative_share) FROM value_pyramid
        HAVING sum(value_minor) FILTER (WHERE value_minor > 0) > 0
           AND (abs(sum(share) - 1) > 1e-9 OR abs(max(cumulative_share) - 1) > 1e-9)""",
    "the latest lifecycle event of each dimension ends where the customer stands": " UNION ALL ".join(f"""
        SELECT c.customer_id, '{dimension}', c.{dimension}, t.to_value FROM customers c LEFT JOIN (
            SELECT customer_id, arg_max(to_value, sequence) AS to_value FROM lifecycle_transitions
            WHERE dimension = '{dimension}' GROUP BY 1) t USING (customer_id)
        WHERE c.{dimension} <> coalesce(t.to_value, '{initial}')""" for dimension, initial in INITIAL.items()),
    "the daily counts on the last day are where the customers stand": " UNION ALL ".join(f"""
        SELECT d.value, d.customers, coalesce(c.n, 0) FROM daily_lifecycle_counts d
        LEFT JOIN (SELECT {dimension} AS value, count(*) AS n FROM customers GROUP BY 1) c USING (value)
        WHERE d.dimension = '{dimension}' AND d.day = (SELECT max(day) FROM daily_lifecycle_counts)
          AND d.customers <> coalesce(c.n, 0)""" for dimension in ("stage", "activity")),
    "each change starts where the one before ended": """
        SELECT customer_id, dimension, sequence FROM (
            SELECT *, lag(to_value) OVER (PARTITION BY customer_id, dimension ORDER BY sequence) AS before
            FROM lifecycle_transitions) WHERE before IS NOT NULL AND from_value <> before""",
}


def _query(settings: Settings, capsys, sql: str) -> list[dict]:
    capsys.readouterr()
    assert lifecycle(settings, "sql", sql, "--format", "json") == 0
    return json.loads(capsys.readouterr().out)


def check_reconciled(settings: Settings, capsys) -> None:
    for name, sql in CHECKS.items():
        assert _query(settings, capsys, sql) == [], name
    customers = _query(settings, capsys, "SELECT count(*) AS n, sum(historical_value_minor) AS v FROM customers")[0]
    moved = _query(settings, capsys, "SELECT sum(value_minor) AS v FROM value_movements")[0]
    assert customers["n"] > 0 and moved["v"] == customers["v"]


def test_a_seeded_population_reconciles(settings, tmp_path, capsys):
    source = tmp_path / "population.jsonl"
    source.write_bytes(b"".join(line + b"\n" for line in generate(PopulationSpec(customers=600, seed=19, days=500))))
    assert lifecycle(settings, "publish", str(source)) == 0
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    refunds = _query(settings, capsys, "SELECT count(*) AS n FROM value_movements WHERE kind = 'refund'")
    margins = _query(settings, capsys, "SELECT count(*) AS n FROM customers WHERE historical_value_minor > 0 "
                                       "AND relationship_level IN ('accountable', 'partnership')")
    assert refunds[0]["n"] > 20 and margins[0]["n"] > 0, "the population should refund orders that had margins"
    check_reconciled(settings, capsys)


@pytest.mark.parametrize("seed", range(6))
def test_random_streams_reconcile_with_repeats_on_the_log(tmp_path, capsys, seed):
    """Late events, refunds before and beyond their purchases, unpriced currencies, quiet
    years and far-ahead records; and every tenth record written twice (two producers
    racing), which the engine ignores and `value_movements` does not repeat."""
    rng = random.Random(seed)
    stream = build_stream(rng.randint, f"r{seed}", customers=5, events=300, late=True, gaps=seed % 2 == 1)
    raws = [encode_event(event) for event in stream]
    raws = [copy for n, raw in enumerate(raws) for copy in ([raw, raw] if n % 10 == 3 else [raw])]
    settings = Settings(home=tmp_path / "home")
    with open_event_log(settings, CUSTOMER_EVENTS) as log:
        for number, start in enumerate(range(0, len(raws), 40), start=1):
            log.recorder.record(raws[start : start + 40], Tracking("racing-producers", number))
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    repeats = _query(settings, capsys, "SELECT sum(duplicates_ignored) AS n FROM customers")[0]["n"]
    assert repeats > 0
    check_reconciled(settings, capsys)
