"""`lifecycle process` live: it keeps polling, appends clock events, publishes snapshots
that `lifecycle sql` reads while it runs, and stops on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from consumers.event_log import CUSTOMER_EVENTS
from consumers.logs import open_event_log
from consumers.settings import Settings
from projections.projection_store import DuckDBProjectionStore
from schemas import Clock, decode_event
from tests.cli import ROOT, lifecycle, lifecycle_command

MIXED = Path(__file__).parent / "fixtures" / "mixed_valid_invalid.jsonl"


def _clocks_on_the_log(settings) -> int:
    with open_event_log(settings, CUSTOMER_EVENTS) as log:
        return sum(
            isinstance(decode_event(raw), Clock)
            for batch in log.read(lambda _: None)
            for raw in batch.values
        )


def test_live_processing_appends_clocks_and_stops_on_sigterm(settings, capsys):
    lifecycle(settings, "publish", str(MIXED))
    process = subprocess.Popen(
        lifecycle_command(settings, "process", "--poll-interval", "0.1", "--clock-every", "0.2"),
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        # Bounded wait for the first clock: the test asserts what happened, not how fast.
        for _ in range(300):
            if _clocks_on_the_log(settings):
                break
            time.sleep(0.1)
        assert _clocks_on_the_log(settings) >= 1
        # The engine holds views.duckdb; analysts get its snapshot, and are told so.
        capsys.readouterr()
        assert lifecycle(settings, "sql", "SELECT count(*) AS n FROM customers", "--format", "json") == 0
        read = capsys.readouterr()
        assert json.loads(read.out) == [{"n": 3}]
        assert "answered from its snapshot" in read.err
    finally:
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=60)
    assert status == 0, process.stderr.read() if process.stderr else ""
    # After it stopped, every record on the log (the clocks included) was processed.
    assert lifecycle(settings, "process", "--once") == 0
    capsys.readouterr()
    assert lifecycle(settings, "sql", "SELECT count(*) AS n FROM partition_clocks", "--format", "json") == 0
    assert json.loads(capsys.readouterr().out)[0]["n"] >= 1


def test_a_held_database_without_a_snapshot_is_a_clear_error(tmp_path, capsys):
    settings = Settings(home=tmp_path)
    store = DuckDBProjectionStore(settings.views_path)
    try:
        assert lifecycle(settings, "sql", "SELECT 1") == 2
        assert "holds it and has published no snapshot yet" in capsys.readouterr().err
        store.publish_snapshot()
        assert lifecycle(settings, "sql", "SELECT count(*) FROM customers", "--format", "csv") == 0
        assert capsys.readouterr().out.splitlines()[1:] == ["0"]
    finally:
        store.close()
