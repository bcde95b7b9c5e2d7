"""`lifecycle replay` derives exactly what live processing derives, in bulk, and never
leaves a home without usable projections."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from eventsourcing.persistence import Tracking
from hypothesis import Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from consumers.logs.event_log import CUSTOMER_EVENTS
from consumers.home import current, engine_lock
from consumers.logs import open_event_log
from consumers.publisher import publish_lines
from consumers.settings import Settings
from lifecycle.population import PopulationSpec, generate
from schemas import decode_lifecycle_event, encode_event
from tests.cli import ROOT, lifecycle, lifecycle_command
from tests.test_determinism import build_stream

SPEC = PopulationSpec(customers=1_200, seed=29, days=200)

# Every table a replay writes, with every column; in an order that does not depend on
# how the rows were written.
TABLES = {
    "customers": "SELECT * FROM customers ORDER BY customer_id",
    "transitions": "SELECT * FROM lifecycle_transitions ORDER BY event_id",
    "profiles": "SELECT * FROM customer_profiles ORDER BY customer_id",
    "value movements": "SELECT * FROM value_movements ORDER BY ALL",
    "customer facts": "SELECT * FROM customer_facts ORDER BY ALL",
    "dead letters": "SELECT * FROM dead_letters ORDER BY partition, position, reason",
    "waiting": "SELECT * FROM held_records ORDER BY ALL",
    "positions": "SELECT * FROM tracking ORDER BY 1",
    "clocks": "SELECT * FROM partition_clocks ORDER BY 1",
    "policies": "SELECT * FROM policies ORDER BY 1",
}


def _query(settings: Settings, capsys: pytest.CaptureFixture[str], sql: str) -> list[dict]:
    capsys.readouterr()
    assert lifecycle(settings, "sql", sql, "--format", "json") == 0
    return json.loads(capsys.readouterr().out)


def _everything(settings: Settings, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    tables: dict[str, object] = {name: _query(settings, capsys, sql) for name, sql in TABLES.items()}
    capsys.readouterr()
    assert lifecycle(settings, "tail") == 0
    by_customer: dict[str, list[str]] = {}
    for line in capsys.readouterr().out.splitlines():
        by_customer.setdefault(decode_lifecycle_event(line).customer_id, []).append(line)
    tables["lifecycle log, per customer"] = by_customer
    return tables


def _publish(settings: Settings, lines) -> None:  # type: ignore[no-untyped-def]
    with open_event_log(settings, CUSTOMER_EVENTS) as log:
        publish_lines(lines, log, lambda n, reason: None)


def test_a_replay_derives_what_live_processing_derived(settings, capsys):
    _publish(settings, generate(SPEC))
    assert lifecycle(settings, "process", "--once", "--no-clock", "--batch-size", "3000") == 0
    live = _everything(settings, capsys)
    assert all(live[table] for table in ("customers", "transitions", "value movements"))
    assert lifecycle(settings, "replay", "--workers", "2") == 0
    assert "replayed" in capsys.readouterr().err
    assert _everything(settings, capsys) == live
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    assert "processed 0 events" in capsys.readouterr().err


def test_a_replay_then_more_events_and_process_equals_process_all_along(settings, tmp_path, capsys):
    lines = list(generate(SPEC))
    cut = len(lines) // 2
    _publish(settings, lines[:cut])
    assert lifecycle(settings, "replay", "--workers", "2") == 0
    _publish(settings, lines[cut:])
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    replayed_first = _everything(settings, capsys)

    all_along = Settings(home=tmp_path / "all-along", kafka=settings.kafka, partitions=settings.partitions)
    if settings.kafka is None:  # published in the same two appends, so in the same segments
        _publish(all_along, lines[:cut])
        _publish(all_along, lines[cut:])
    assert lifecycle(all_along, "process", "--once", "--no-clock") == 0
    assert _everything(all_along, capsys) == replayed_first


# Derandomized, as in tests/test_determinism.py; fewer examples: each one processes and
# replays a log.
REPLAYS = hypothesis_settings(max_examples=25, deadline=None, derandomize=True,
                              phases=(Phase.explicit, Phase.reuse, Phase.generate))
FAR_CLOCK = b'{"type":"clock","event_id":"00000000-0000-4000-8000-0000000f0001","occurred_at":"2090-01-01T00:00:00Z","source":"x"}'
INVALID = b'{"type":"purchase","customer_id":"h-c0"}'


@REPLAYS
@given(st.data(), st.integers(1, 25), st.booleans())
def test_on_random_streams_a_replay_derives_what_the_processor_derived(tmp_path_factory, data, batch_size, gaps):
    """Late events, clocks, a clock far ahead and an invalid record among them; with
    `gaps`, quiet years without clocks and a customer whose records are dated decades
    ahead, so that records wait for time and are taken later, across batches."""
    stream = build_stream(lambda lo, hi: data.draw(st.integers(lo, hi)), "h", customers=data.draw(st.integers(1, 6)),
                          events=data.draw(st.integers(1, 60)), late=True, gaps=gaps)
    raws = [encode_event(event) for event in stream]
    for poison in (FAR_CLOCK, INVALID):
        raws.insert(data.draw(st.integers(0, len(raws))), poison)
    settings = Settings(home=tmp_path_factory.mktemp("replay"))
    with open_event_log(settings, CUSTOMER_EVENTS) as log:
        for number, start in enumerate(range(0, len(raws), batch_size), start=1):
            log.recorder.record(raws[start : start + batch_size], Tracking("a-test-producer", number))
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    live = _tables(settings)
    assert lifecycle(settings, "replay", "--workers", "1") == 0
    assert _tables(settings) == live


def _tables(settings: Settings) -> dict[str, object]:
    from projections.reading.query import run_query

    return {name: run_query(settings.views_path, sql).rows for name, sql in TABLES.items()}


def test_a_killed_replay_leaves_the_projections_in_use_whole_and_a_rerun_completes(settings, capsys):
    _publish(settings, generate(SPEC))
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    before = _everything(settings, capsys)
    in_use = current(settings.home)
    replaying = subprocess.Popen(lifecycle_command(settings, "replay", "--workers", "2"), cwd=ROOT,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
    # Bounded wait until the replay has written parts of the new generation.
    for _ in range(600):
        if any(settings.home.glob("derived-*/replay-parts/scan-*/bucket-*.bin")):
            break
        time.sleep(0.05)
    os.killpg(replaying.pid, signal.SIGKILL)
    replaying.wait(timeout=60)
    assert current(settings.home) == in_use
    assert _everything(settings, capsys) == before
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0

    assert lifecycle(settings, "replay", "--workers", "2") == 0
    assert current(settings.home) != in_use and not in_use.exists()
    assert [p.name for p in settings.home.glob("derived-*")] == [current(settings.home).name]
    assert _everything(settings, capsys) == before


def test_a_replay_waits_for_no_one_and_refuses_while_an_engine_works(tmp_path, capsys):
    settings = Settings(home=tmp_path / "home")
    _publish(settings, generate(PopulationSpec(customers=20, seed=1, days=10)))
    with engine_lock(settings.home):
        assert lifecycle(settings, "replay", "--workers", "1") == 2
    assert "an engine is already working on" in capsys.readouterr().err


def test_a_home_of_the_older_layout_is_refused_until_replayed(tmp_path, capsys):
    settings = Settings(home=tmp_path / "home")
    _publish(settings, generate(PopulationSpec(customers=20, seed=1, days=10)))
    (settings.home / "views.duckdb").write_bytes(b"")  # what an older engine left at the top
    assert lifecycle(settings, "process", "--once", "--no-clock") == 2
    assert "run `lifecycle replay` once" in capsys.readouterr().err
    assert lifecycle(settings, "replay", "--workers", "1") == 0
    assert not (settings.home / "views.duckdb").exists()
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    assert _query(settings, capsys, "SELECT count(*) AS n FROM customers") == [{"n": 20}]


def test_a_replay_under_another_policy_keeps_the_versions_used_before(tmp_path, capsys):
    settings = Settings(home=tmp_path / "home")
    _publish(settings, generate(PopulationSpec(customers=200, seed=3, days=120)))
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    policy = tmp_path / "strict.toml"
    policy.write_text('version = "strict-1"\n[stage]\nloyal_min_purchases = 2\n')
    assert lifecycle(settings, "replay", "--workers", "1", "--policy", str(policy)) == 0
    versions = _query(settings, capsys, "SELECT DISTINCT policy_version AS v FROM lifecycle_transitions")
    assert versions == [{"v": "strict-1"}]
    assert [row["version"] for row in _query(settings, capsys, TABLES["policies"])] == [
        "default-2026.12.07", "strict-1"]
    policy.write_text('version = "strict-1"\n[stage]\nloyal_min_purchases = 3\n')
    assert lifecycle(settings, "replay", "--workers", "1", "--policy", str(policy)) == 2
    assert "was used before with other thresholds" in capsys.readouterr().err


def test_the_writes_beside_the_projections_hand_their_error_over_and_stop_with_the_projections():
    import threading

    from consumers.replay import ReplayStopped, _Beside, _until

    def failing() -> None:
        raise OSError(28, "No space left on device")

    beside = _Beside(failing)
    with pytest.raises(OSError, match="No space left"):
        beside.join()

    stop, written = threading.Event(), []

    def writing() -> None:
        for item in _until(stop, iter(range(1_000_000))):
            written.append(item)
            if item == 10:
                stop.set()  # as the projections' error or a Ctrl-C sets it

    beside = _Beside(writing)
    with pytest.raises(ReplayStopped):
        beside.join()
    assert written == list(range(11)), "it stops at its next item"
