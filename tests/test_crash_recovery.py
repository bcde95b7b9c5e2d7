"""`lifecycle process` killed with SIGKILL mid-way, or with its states lost, then run
again, ends as if never interrupted."""

from __future__ import annotations

import json
import shutil

import pytest

from consumers.logs.event_log import CUSTOMER_EVENTS
from consumers.home import STATES, current
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


@pytest.mark.parametrize("checkpoint_batches", ["10", "2"], ids=["before-a-checkpoint", "between-checkpoints"])
def test_killed_processor_resumes_to_the_same_customers(settings, tmp_path, capsys, checkpoint_batches):
    """Killed before its first checkpoint, or after one with the lifecycle log of a
    batch past it: either way the batches since are derived again, each once."""
    with open_event_log(settings, CUSTOMER_EVENTS) as log:
        report = publish_lines(generate(SPEC), log, lambda n, reason: None)
    assert report.invalid == 0 and report.appended > 10 * 500

    kill_processor_after_commits(settings, 500, COMMITS_BEFORE_KILL, "--checkpoint-batches", checkpoint_batches)
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    recovered = _customers(settings, capsys)

    # An uninterrupted run over the same log, into projections of its own.
    reference = Settings(home=tmp_path / "reference", kafka=settings.kafka)
    if settings.kafka is None:
        with open_event_log(reference, CUSTOMER_EVENTS) as log:
            publish_lines(generate(SPEC), log, lambda n, reason: None)
    assert lifecycle(reference, "process", "--once", "--no-clock") == 0
    assert recovered == _customers(reference, capsys)
    assert len(recovered) == SPEC.customers


def test_states_behind_the_other_stores_are_derived_again_and_nothing_is_written_twice(settings, capsys):
    """The state store is written last, so after a crash it may be behind the lifecycle
    log and the projections. Here it is as far behind as it can be: gone."""
    with open_event_log(settings, CUSTOMER_EVENTS) as log:
        publish_lines(generate(SPEC), log, lambda n, reason: None)
    assert lifecycle(settings, "process", "--once", "--no-clock", "--batch-size", "2000") == 0
    before = _customers(settings, capsys)
    transitions = _rows(settings, capsys, "SELECT * FROM lifecycle_transitions ORDER BY event_id")
    movements = _rows(settings, capsys, "SELECT * FROM value_movements ORDER BY ALL")
    lifecycle_log = _tail(settings, capsys)

    shutil.rmtree(current(settings.home) / STATES)
    assert lifecycle(settings, "process", "--once", "--no-clock", "--batch-size", "3000") == 0
    assert _customers(settings, capsys) == before
    assert _rows(settings, capsys, "SELECT * FROM lifecycle_transitions ORDER BY event_id") == transitions
    assert _rows(settings, capsys, "SELECT * FROM value_movements ORDER BY ALL") == movements != []
    assert _tail(settings, capsys) == lifecycle_log


def _rows(settings: Settings, capsys, sql: str) -> list[dict]:
    capsys.readouterr()
    assert lifecycle(settings, "sql", sql, "--format", "json") == 0
    return json.loads(capsys.readouterr().out)


def _tail(settings: Settings, capsys) -> list[str]:
    capsys.readouterr()
    assert lifecycle(settings, "tail") == 0
    return capsys.readouterr().out.splitlines()
