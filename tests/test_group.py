"""Several processors in one consumer group on the real test broker (`process --group`):
what the group commits is what one engine derives from the same input, and a partition
that moves to a member with an empty disk is restored from the changelog."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from consumers.group.changelog import changelog_topic
from consumers.group.transactional_outputs import DEAD_LETTER_TOPIC
from consumers.home import current
from consumers.logs import open_event_log
from consumers.logs.event_log import CUSTOMER_EVENTS, CUSTOMER_LIFECYCLE
from consumers.logs.sqlite_event_log import SQLiteEventLog
from consumers.publisher import publish_lines
from consumers.settings import Settings
from lifecycle.population import PopulationSpec, generate
from tests.cli import ROOT, lifecycle, lifecycle_command

GROUP = "g"
SPEC = PopulationSpec(customers=240, seed=5, days=200)
PARTITIONS = 4


@pytest.fixture
def kafka(kafka_broker, tmp_path: Path) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(home=tmp_path / "publisher", kafka=kafka_broker.bootstrap, partitions=PARTITIONS)


def _publish(settings: Settings, lines: list[bytes]) -> None:
    with open_event_log(settings, CUSTOMER_EVENTS) as log:
        report = publish_lines(lines, log, lambda n, reason: pytest.fail(f"line {n}: {reason}"))
    assert report.appended == len(lines)


def _member(settings: Settings, home: Path, *flags: str) -> subprocess.Popen[str]:
    member = Settings(home=home, kafka=settings.kafka)
    return subprocess.Popen(
        lifecycle_command(member, "process", "--group", GROUP, "--session-timeout", "4", "--clock-every", "0",
                          "--batch-size", "400", "--checkpoint-batches", "2", *flags),
        stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )


def _caught_up(settings: Settings, members: list[subprocess.Popen[str]]) -> None:
    """Wait (bounded) until the group's committed offsets reach the end of every partition."""
    with open_event_log(settings, CUSTOMER_EVENTS, create=False) as log:
        ends = log.ends_from(lambda _: None)
    group = KafkaConsumer(bootstrap_servers=settings.kafka, group_id=GROUP, enable_auto_commit=False)
    try:
        for _ in range(600):
            committed = {f"{CUSTOMER_EVENTS}:{p}": group.committed(TopicPartition(CUSTOMER_EVENTS, p)) or 0
                         for p in range(PARTITIONS)}
            if committed == ends:
                return
            assert all(m.poll() is None for m in members), "a member exited early"
            time.sleep(0.2)
        pytest.fail(f"the group did not catch up: committed {committed}, ends {ends}")
    finally:
        group.close()


def _stop(members: list[subprocess.Popen[str]]) -> list[str]:
    for member in members:
        member.send_signal(signal.SIGTERM)
    errors = []
    for member in members:
        assert member.wait(timeout=60) == 0
        errors.append(member.stderr.read() if member.stderr else "")
    return errors


def _committed_topic(settings: Settings, topic: str) -> list:  # type: ignore[type-arg]
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka, isolation_level="read_committed",
                             auto_offset_reset="earliest", consumer_timeout_ms=3_000)
    consumer.subscribe([topic])
    try:
        return list(consumer)
    finally:
        consumer.close()


def _one_engine(settings: Settings, home: Path) -> list[bytes]:
    """The lifecycle events one engine (not in a group) derives from the same topic."""
    single = Settings(home=home, kafka=settings.kafka, partitions=PARTITIONS)
    assert lifecycle(single, "process", "--once", "--no-clock") == 0
    generation = current(home)
    assert generation is not None
    with SQLiteEventLog(home=generation, name=CUSTOMER_LIFECYCLE) as log:
        return [bytes(raw) for batch in log.read(lambda _: None) for raw in batch.values]


def _lifecycle_events(records: list) -> dict[bytes, bytes]:  # type: ignore[type-arg]
    ids = [dict(record.headers)["ce_id"] for record in records]
    assert len(ids) == len(set(ids)), "a lifecycle event was committed twice"
    return dict(zip(ids, (record.value for record in records), strict=True))


def test_two_members_commit_exactly_what_one_engine_derives(kafka, tmp_path):
    _publish(kafka, list(generate(SPEC)))
    raw = KafkaProducer(bootstrap_servers=kafka.kafka)
    for partition in (0, 3):
        raw.send(CUSTOMER_EVENTS, b"not an event", partition=partition)
    raw.close()

    members = [_member(kafka, tmp_path / "a"), _member(kafka, tmp_path / "b")]
    try:
        _caught_up(kafka, members)
    finally:
        errors = _stop(members)
    assert all("assigned customer-events partitions" in text for text in errors), errors

    committed = _lifecycle_events(_committed_topic(kafka, CUSTOMER_LIFECYCLE))
    expected = _one_engine(kafka, tmp_path / "single")
    assert len(committed) == len(expected) > 100
    assert set(committed.values()) == set(expected)

    dead = _committed_topic(kafka, DEAD_LETTER_TOPIC)
    assert sorted(record.value for record in dead) == [b"not an event"] * 2
    headers = dict(dead[0].headers)
    assert headers["__connect.errors.topic"] == b"customer-events"
    assert headers["__connect.errors.exception.class.name"] == b"invalid"
    assert headers["__connect.errors.exception.message"].startswith(b"malformed JSON")
    assert {headers["__connect.errors.partition"] for headers in map(dict, (r.headers for r in dead))} == {b"0", b"3"}
    assert _committed_topic(kafka, changelog_topic(GROUP)), "states went to the changelog"


def test_a_partition_moved_to_an_empty_disk_is_restored_from_the_changelog(kafka, tmp_path):
    lines = list(generate(SPEC))
    half = len(lines) // 2
    _publish(kafka, lines[:half])
    first = [_member(kafka, tmp_path / "first")]
    try:
        _caught_up(kafka, first)
    finally:
        _stop(first)

    _publish(kafka, lines[half:])
    second = [_member(kafka, tmp_path / "second")]
    try:
        _caught_up(kafka, second)
    finally:
        (told,) = _stop(second)
    assert "restored" in told and "from g-states-changelog" in told, told

    committed = _lifecycle_events(_committed_topic(kafka, CUSTOMER_LIFECYCLE))
    expected = _one_engine(kafka, tmp_path / "single")
    assert set(committed.values()) == set(expected)
    assert len(committed) == len(expected)
