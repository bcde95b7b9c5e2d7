"""`lifecycle process` live: it keeps polling, appends clock events, publishes snapshots
that `lifecycle sql` reads while it runs (and refreshes them when idle), and stops
cleanly at a batch boundary on SIGTERM or Ctrl-C."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from consumers.logs.event_log import CUSTOMER_EVENTS
from consumers.logs import open_event_log
from consumers.publisher import publish_lines
from consumers.settings import Settings
from lifecycle.population import PopulationSpec, generate
from projections.stores.projection_store import DuckDBProjectionStore
from schemas import Clock, decode_event
from tests.cli import ROOT, lifecycle, lifecycle_command

MIXED = Path(__file__).parent / "fixtures" / "mixed_valid_invalid.jsonl"
CATCH_UP = PopulationSpec(customers=1_500, seed=13, days=200)


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
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
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


def _customers(settings: Settings, capsys) -> list[dict]:
    capsys.readouterr()
    assert lifecycle(settings, "sql", "SELECT * FROM customers ORDER BY customer_id", "--format", "json") == 0
    return json.loads(capsys.readouterr().out)


def _count(settings: Settings, capsys, sql: str) -> int | None:
    capsys.readouterr()
    if lifecycle(settings, "sql", sql, "--format", "json") != 0:
        return None
    return json.loads(capsys.readouterr().out)[0]["n"]


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_signal_mid_catch_up_stops_at_a_batch_boundary_and_a_rerun_completes(settings, tmp_path, capsys,
                                                                               signal_number):
    with open_event_log(settings, CUSTOMER_EVENTS) as log:
        publish_lines(generate(CATCH_UP), log, lambda n, reason: None)
    on_the_log = len(list(_records(settings)))
    process = subprocess.Popen(
        lifecycle_command(settings, "process", "--once", "--no-clock", "--verbose", "--batch-size", "500"),
        stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    assert process.stderr is not None
    for line in process.stderr:
        if line.startswith("committed "):
            process.send_signal(signal_number)
            break
    assert process.wait(timeout=120) == 0
    assert re.search(r"up to position \d+ of \d+$", line.strip()), f"-v tells how far the log goes: {line}"
    rest = process.stderr.read()
    assert "Traceback" not in rest
    done = int(rest.split("processed ")[1].split(" events")[0])
    assert 0 < done < on_the_log, "it stopped at a batch boundary, long before the end"

    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    resumed = _customers(settings, capsys)
    reference = Settings(home=tmp_path / "reference", kafka=settings.kafka)
    if settings.kafka is None:
        with open_event_log(reference, CUSTOMER_EVENTS) as log:
            publish_lines(generate(CATCH_UP), log, lambda n, reason: None)
    assert lifecycle(reference, "process", "--once", "--no-clock") == 0
    assert resumed == _customers(reference, capsys)


def _records(settings: Settings) -> list[bytes]:
    with open_event_log(settings, CUSTOMER_EVENTS) as log:
        return [bytes(raw) for batch in log.read(lambda _: None) for raw in batch.values]


def test_an_idle_engine_refreshes_a_stale_snapshot(settings, tmp_path, capsys):
    lifecycle(settings, "publish", str(MIXED))
    process = subprocess.Popen(
        # The new event is processed within the interval after the first snapshot, and
        # nothing comes after it: only a refresh while idle can show it.
        lifecycle_command(settings, "process", "--poll-interval", "0.1", "--snapshot-every", "2",
                          "--clock-every", "0"),
        stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    count = "SELECT count(*) AS n FROM customers"
    try:
        for _ in range(600):
            if _count(settings, capsys, count) == 3:
                break
            time.sleep(0.1)
        assert _count(settings, capsys, count) == 3
        more = tmp_path / "more.jsonl"
        more.write_text(
            '{"type":"visit","event_id":"00000000-0000-4000-8000-00000000c0de","customer_id":"c-new",'
            '"occurred_at":"2025-02-01T10:00:00Z","source":"web","place":"web"}\n'
        )
        assert lifecycle(settings, "publish", str(more)) == 0
        # Bounded wait: the new customer reaches the snapshot although the log is idle after it.
        for _ in range(600):
            if _count(settings, capsys, count) == 4:
                break
            time.sleep(0.1)
        assert _count(settings, capsys, count) == 4
    finally:
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=60)
    assert status == 0, process.stderr.read() if process.stderr else ""


def test_a_live_engine_rides_out_a_broker_pause(kafka_broker, tmp_path, capsys):
    """The broker frozen (SIGSTOP) for longer than the engine's reads wait: the live
    engine says the log is unreachable, waits and tries again with backoff, and goes on
    when the broker answers; nothing is lost."""
    settings = Settings(home=tmp_path / "home", kafka=kafka_broker.bootstrap, partitions=3)
    assert lifecycle(settings, "publish", str(MIXED)) == 1  # valid lines go through beside invalid ones
    process = subprocess.Popen(
        lifecycle_command(settings, "process", "--poll-interval", "0.1", "--clock-every", "0",
                          "--snapshot-every", "0"),
        stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    lines: list[str] = []
    try:
        assert process.stderr is not None
        _read_until(process, lines, "processed ")
        kafka_broker.pause()
        try:
            _read_until(process, lines, "the log is unreachable")
        finally:
            kafka_broker.resume()
        _read_until(process, lines, "the log is reachable again")
        assert process.poll() is None, "the engine gave up"
    finally:
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=60)
    assert status == 0, "".join(lines)
    assert "trying again in 1 s" in "".join(lines)
    capsys.readouterr()
    assert lifecycle(settings, "sql", "SELECT count(*) AS n FROM customers", "--format", "json") == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 3}]


def _read_until(process: subprocess.Popen, lines: list[str], text: str) -> None:  # type: ignore[type-arg]
    """Read the engine's stderr until a line holds `text` (the engine's own timeouts
    bound the wait; a process that ends first fails the test)."""
    assert process.stderr is not None
    for line in process.stderr:
        lines.append(line)
        if text in line:
            return
    raise AssertionError(f"the engine ended before saying {text!r}: {''.join(lines)}")
