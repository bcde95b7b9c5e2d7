"""`lifecycle process` killed with SIGKILL mid-way, then run again, ends as if never killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from consumers.event_log import CUSTOMER_EVENTS
from consumers.logs import open_event_log
from consumers.publisher import publish_lines
from consumers.settings import Settings
from lifecycle.population import PopulationSpec, generate
from tests.cli import lifecycle

SPEC = PopulationSpec(customers=1_500, seed=11, days=200)
COMMITS_BEFORE_KILL = 3


def _command(settings: Settings, *args: str) -> list[str]:
    flags = ["--home", str(settings.home)]
    if settings.kafka:
        flags += ["--kafka", settings.kafka]
    return [sys.executable, "-m", "consumers.cli", *args, *flags]


def _kill_after_commits(settings: Settings) -> None:
    """Start the processor with small batches; SIGKILL it after a few commits."""
    process = subprocess.Popen(
        _command(settings, "process", "--once", "--verbose", "--batch-size", "500"),
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    commits = 0
    assert process.stderr is not None
    for line in process.stderr:
        commits += line.startswith("committed ")
        if commits == COMMITS_BEFORE_KILL:
            os.kill(process.pid, signal.SIGKILL)
            break
    assert process.wait() == -signal.SIGKILL, "the processor finished before it was killed"


def _customers(settings: Settings, capsys) -> list[dict]:
    capsys.readouterr()
    assert lifecycle(settings, "sql", "SELECT * FROM customers ORDER BY customer_id", "--format", "json") == 0
    return json.loads(capsys.readouterr().out)


def test_killed_processor_resumes_to_the_same_customers(settings, tmp_path, capsys):
    with open_event_log(settings, CUSTOMER_EVENTS) as log:
        report = publish_lines(generate(SPEC), log, lambda n, reason: None)
    assert report.invalid == 0 and report.appended > 10 * 500

    _kill_after_commits(settings)
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
