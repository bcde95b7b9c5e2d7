"""`lifecycle process` killed with SIGKILL mid-way, then run again, ends as if never killed."""

from __future__ import annotations

import json

from consumers.event_log import CUSTOMER_EVENTS
from consumers.logs import open_event_log
from consumers.publisher import publish_lines
from consumers.settings import Settings
from lifecycle.population import PopulationSpec, generate
from tests.cli import kill_processor_after_commits, lifecycle

SPEC = PopulationSpec(customers=1_500, seed=11, days=200)
COMMITS_BEFORE_KILL = 3


def _customers(settings: Settings, capsys) -> list[dict]:
    capsys.readouterr()
    assert lifecycle(settings, "sql", "SELECT * FROM customers ORDER BY customer_id", "--format", "json") == 0
    return json.loads(capsys.readouterr().out)


def test_killed_processor_resumes_to_the_same_customers(settings, tmp_path, capsys):
    with open_event_log(settings, CUSTOMER_EVENTS) as log:
        report = publish_lines(generate(SPEC), log, lambda n, reason: None)
    assert report.invalid == 0 and report.appended > 10 * 500

    kill_processor_after_commits(settings, batch_size=500, commits=COMMITS_BEFORE_KILL)
    assert lifecycle(settings, "process", "--once") == 0
    recovered = _customers(settings, capsys)

    # An uninterrupted run over the same log, into projections of its own.
    reference = Settings(home=tmp_path / "reference", kafka=settings.kafka)
    if settings.kafka is None:
        with open_event_log(reference, CUSTOMER_EVENTS) as log:
            publish_lines(generate(SPEC), log, lambda n, reason: None)
    assert lifecycle(reference, "process", "--once") == 0
    assert recovered == _customers(reference, capsys)
    assert len(recovered) == SPEC.customers
