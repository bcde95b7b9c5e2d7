"""Running the engine: `process --metrics-port` serves its figures to Prometheus while it
works, and `lifecycle status` tells whether it runs and how far behind the log it is,
beside it, on both logs."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from eventsourcing.persistence import Tracking
from prometheus_client.parser import text_string_to_metric_families

from consumers.commands.status import EngineStatus, PartitionStatus
from consumers.commands.status import as_json as status_json
from consumers.commands.status import render_text as render_status
from consumers.group.member_reports import MemberReport
from consumers.logs import open_event_log
from consumers.logs.event_log import CUSTOMER_EVENTS, RecordBatch
from consumers.processing.engine_metrics import EngineMetrics
from consumers.processing.process_report import ProcessReport
from consumers.publisher import publish_lines
from lifecycle.population import PopulationSpec, generate
from tests.cli import ROOT, lifecycle, lifecycle_command

MIXED = Path(__file__).parent / "fixtures" / "mixed_valid_invalid.jsonl"


def _samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _ends(settings) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with open_event_log(settings, CUSTOMER_EVENTS, create=False) as log:
        ends: dict[str, int] = {}
        records = 0
        for batch in log.read(lambda _: None):
            ends[batch.tracking.application_name] = batch.tracking.notification_id
            records += len(batch.values)
        ends["records"] = records
        return ends


def _refused(line: int, reason: str) -> None:
    raise AssertionError(f"line {line}: {reason}")


def _status(settings, capsys) -> dict:  # type: ignore[no-untyped-def, type-arg]
    capsys.readouterr()
    assert lifecycle(settings, "status", "--format", "json") == 0
    return json.loads(capsys.readouterr().out)


def test_a_live_engine_serves_its_metrics_and_status_sees_it_run(settings, capsys):
    lifecycle(settings, "publish", str(MIXED))
    ends = _ends(settings)
    process = subprocess.Popen(
        lifecycle_command(settings, "process", "--poll-interval", "0.1", "--clock-every", "0", "--metrics-port", "0"),
        stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    try:
        assert process.stderr is not None
        first = process.stderr.readline()
        assert "metrics for Prometheus at http://127.0.0.1:" in first, first
        url = first.rsplit(" ", 1)[1].strip()
        samples: dict = {}  # type: ignore[type-arg]
        for _ in range(600):  # bounded wait for the first run to be told; nothing is timed
            samples = _samples(url)
            if samples[("lifecycle_records_total", ())] == ends["records"]:
                break
            time.sleep(0.1)
        assert samples[("lifecycle_records_total", ())] == ends["records"]
        assert samples[("lifecycle_batches_total", ())] >= 1
        assert samples[("lifecycle_batch_seconds_count", ())] == samples[("lifecycle_batches_total", ())]
        assert samples[("lifecycle_log_reachable", ())] == 1
        assert samples[("lifecycle_lifecycle_events_total", ())] > 0
        for partition, end in ends.items():
            if partition != "records":
                assert samples[("lifecycle_position", (("partition", partition),))] == end
                assert samples[("lifecycle_consumer_lag", (("partition", partition),))] == 0
        assert samples[("process_resident_memory_bytes", ())] > 0

        status = _status(settings, capsys)
        assert status["engine_pid"] == process.pid
        assert status["lag"] == 0
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    assert _status(settings, capsys)["engine_pid"] is None


def test_status_shows_the_lag_of_what_is_published_and_not_processed(settings, capsys):
    spec = PopulationSpec(customers=60, seed=3, days=60)
    lines = list(generate(spec))
    half = len(lines) // 2
    with open_event_log(settings, CUSTOMER_EVENTS) as log:
        publish_lines(lines[:half], log, _refused)
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    caught_up = _status(settings, capsys)
    assert caught_up["lag"] == 0 and caught_up["engine_pid"] is None
    assert caught_up["last_commit"] is not None
    if settings.kafka:
        assert caught_up["relay_behind"] == 0

    before = _ends(settings)
    with open_event_log(settings, CUSTOMER_EVENTS) as log:
        publish_lines(lines[half:], log, _refused)
    after = _ends(settings)
    behind = _status(settings, capsys)
    by_partition = {p["partition"]: p for p in behind["partitions"]}
    for partition, end in after.items():
        if partition != "records":
            assert by_partition[partition]["end"] == end
            assert by_partition[partition]["lag"] == end - before.get(partition, 0)
    assert behind["lag"] > 0

    capsys.readouterr()
    assert lifecycle(settings, "status") == 0
    text = capsys.readouterr().out
    assert "engine not running" in text and f"{behind['lag']:,}" in text


def test_status_before_anything_is_published_says_so(tmp_path, capsys):
    from consumers.settings import Settings

    assert lifecycle(Settings(home=tmp_path), "status") == 2
    assert "nothing was published" in capsys.readouterr().err


def test_metrics_port_refusals_say_what_to_do(settings, capsys):
    lifecycle(settings, "publish", str(MIXED))
    assert lifecycle(settings, "process", "--once", "--metrics-port", "70000") == 2
    assert "not a port" in capsys.readouterr().err
    metrics = EngineMetrics()
    address = metrics.serve("127.0.0.1", 0)
    try:
        taken = address.rsplit(":", 1)[1].split("/")[0]
        assert lifecycle(settings, "process", "--once", "--metrics-port", taken) == 2
        assert "pick another --metrics-port" in capsys.readouterr().err
    finally:
        metrics.close()


def test_metrics_count_a_run_once_and_lag_against_the_end_read():
    metrics = EngineMetrics()
    metrics.batch_committed(RecordBatch(Tracking("p:0", 40), [b"{}"] * 3, [38, 39, 40], end=100))
    metrics.batch_committed(RecordBatch(Tracking("p:1", 7), [b"{}"], [7], end=None))
    metrics.run_done(ProcessReport(4, 1, 2, 2, 0.5, waiting=3, checkpoints=1))
    registry = metrics.registry
    assert registry.get_sample_value("lifecycle_consumer_lag", {"partition": "p:0"}) == 60
    assert registry.get_sample_value("lifecycle_consumer_lag", {"partition": "p:1"}) is None
    assert registry.get_sample_value("lifecycle_position", {"partition": "p:1"}) == 7
    assert registry.get_sample_value("lifecycle_records_total") == 4
    assert registry.get_sample_value("lifecycle_dead_letters_total") == 1
    assert registry.get_sample_value("lifecycle_records_waiting") == 3
    assert registry.get_sample_value("lifecycle_checkpoints_total") == 1
    assert registry.get_sample_value("lifecycle_batch_seconds_count") == 2


def test_status_tells_each_member_of_a_group_as_it_last_reported():
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    at = now.timestamp()
    members = [
        MemberReport("a:1", at - 2, [0, 2], last_commit=at - 4),
        MemberReport("b:2", at - 1, [1], restoring={3: (12_000, 40_000)}),
        MemberReport("c:3", at - 120, [], stopped=True),
        MemberReport("d:4", at - 95, [3]),
    ]
    status = EngineStatus("h", None, None, [PartitionStatus("customer-events:0", 5, 5)], None, None, "g", members)
    lines = render_status(status, now).splitlines()
    assert lines[-5:] == [
        "members, as each last reported itself (every 10 s):",
        "  a:1  partitions 0, 2; last commit 4 s ago (reported 2 s ago)",
        "  b:2  partitions 1; restoring customer-events:3 (12,000 of ~40,000 changelog records) (reported 1 s ago)",
        "  c:3  stopped 120 s ago",
        "  d:4  silent for 95 s: stopped without saying so, or paused (the group moves its partitions after its "
        "session timeout)",
    ]
    assert status_json(status)["members"][1]["restoring"] == {"3": {"read": 12_000, "of": 40_000}}
    assert render_status(replace(status, members=[]), now).endswith("members: none has reported yet "
                                                                   "(`lifecycle process --kafka ... --group NAME` "
                                                                   "starts one)")
