"""Several processors in one consumer group on the real test broker (`process --group`):
what the group commits is what one engine derives from the same input, and a partition
that moves to a member with an empty disk is restored from the changelog."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import duckdb
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from consumers.group.changelog import CHECKPOINT_HEADER, changelog_topic, committed_checkpoints
from consumers.group.transactional_outputs import DEAD_LETTER_TOPIC
from consumers.home import current
from consumers.logs import open_event_log
from consumers.logs.event_log import CUSTOMER_EVENTS, CUSTOMER_LIFECYCLE
from consumers.logs.sqlite_event_log import SQLiteEventLog
from consumers.publisher import publish_lines
from consumers.settings import Settings
from lifecycle.population import PopulationSpec, generate
from schemas import Clock, decode_event
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


def _caught_up(settings: Settings, members: list[_Watched]) -> None:
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
            assert all(m.process.poll() is None for m in members), "a member exited early"
            time.sleep(0.2)
        pytest.fail(f"the group did not catch up: committed {committed}, ends {ends}")
    finally:
        group.close()


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
    single = Settings(home=home, kafka=settings.kafka, partitions=settings.partitions)
    assert lifecycle(single, "process", "--once", "--no-clock") == 0
    generation = current(home)
    assert generation is not None
    with SQLiteEventLog(home=generation, name=CUSTOMER_LIFECYCLE) as log:
        return [bytes(raw) for batch in log.read(lambda _: None) for raw in batch.values]


UNCOMPARED = ("engine_commits", "tracking")
"""What differs between the engines by design: when each committed, and what each read."""


PLACELESS = "COLUMNS(lambda c: c NOT LIKE '%position%' AND c NOT LIKE '%partition%')"
"""The columns of a table but where its rows sit on the log: the embedded log is one
partition, and Kafka writes each clock to every partition."""


def _tables(home: Path, columns: str = "*") -> dict[str, list]:  # type: ignore[type-arg]
    """Every projection table of a home's generation (the commit history and positions
    aside), `customers` and `lifecycle_transitions` too, in a fixed order."""
    generation = current(home)
    assert generation is not None
    with duckdb.connect(str(generation / "views.duckdb"), read_only=True) as connection:
        names = [name for (name,) in connection.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()").fetchall()
            if name not in UNCOMPARED]
        return {name: connection.execute(f'SELECT {columns} FROM "{name}" ORDER BY ALL').fetchall()
                for name in [*names, "customers", "lifecycle_transitions"]}


def _projected(settings: Settings, home: Path) -> dict[str, list]:  # type: ignore[type-arg]
    """What `lifecycle project` builds in `home` from the group's topics."""
    assert lifecycle(Settings(home=home, kafka=settings.kafka), "project", "--group", GROUP, "--once") == 0
    return _tables(home)


def _verified(settings: Settings, home: Path) -> None:
    """`lifecycle verify` of a projector's home: a replay of the log matches its
    projections and what the group committed to `customer-lifecycle`."""
    assert lifecycle(Settings(home=home, kafka=settings.kafka), "verify") == 0


def _committed_lifecycle_events(settings: Settings) -> dict[bytes, bytes]:
    """The lifecycle events the group committed, by id, each once.

    The test broker gives `read_committed` readers the records of aborted transactions
    too (Kafka does not), so the records are kept by the checkpoint they name, if the
    group committed it; the others must be what a fenced member derived the same."""
    records = _committed_topic(settings, CUSTOMER_LIFECYCLE)
    committed = _committed(settings)
    reader = KafkaConsumer(bootstrap_servers=settings.kafka, isolation_level="read_committed")
    try:
        checkpoints = committed_checkpoints(reader, changelog_topic(GROUP), committed)
    finally:
        reader.close()
    kept = [r for r in records if dict(r.headers)[CHECKPOINT_HEADER] in checkpoints]
    ids = [dict(record.headers)["ce_id"] for record in kept]
    assert len(ids) == len(set(ids)), "a lifecycle event was committed twice"
    events = dict(zip(ids, (record.value for record in kept), strict=True))
    for record in records:
        assert events[dict(record.headers)["ce_id"]] == record.value, "an aborted record differs from the committed"
    return events


def test_two_members_commit_exactly_what_one_engine_derives(kafka, tmp_path, capsys):
    """... and the projector builds from their topics what one engine writes, each
    checkpoint once across its restarts."""
    lines = list(generate(SPEC))
    _publish(kafka, lines[: len(lines) // 2])
    raw = KafkaProducer(bootstrap_servers=kafka.kafka)
    for partition in (0, 3):
        raw.send(CUSTOMER_EVENTS, b"not an event", partition=partition)
    raw.close()

    members = [_Watched(kafka, tmp_path / "a"), _Watched(kafka, tmp_path / "b")]
    projecting = subprocess.Popen(
        lifecycle_command(Settings(home=tmp_path / "projector", kafka=kafka.kafka), "project", "--group", GROUP,
                          "--poll-interval", "0.1", "--snapshot-every", "0.1"),
        stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        _caught_up(kafka, members)
        snapshot = tmp_path / "projector" / "derived-1" / "views.snapshot.duckdb"
        _wait_for(snapshot.exists, "the live projector's first snapshot", members)
        _publish(kafka, lines[len(lines) // 2 :])
        time.sleep(0.5)
        projecting.kill()  # most likely while it projects the second half
        _caught_up(kafka, members)
        capsys.readouterr()
        assert lifecycle(kafka, "status", "--group", GROUP, "--format", "json") == 0
        status = json.loads(capsys.readouterr().out)
        assert status["group"] == GROUP and status["lag"] == 0
        assert [p["committed"] for p in status["partitions"]] == [p["end"] for p in status["partitions"]]
        running = [m for m in status["members"] if not m["stopped"]]
        assert len(running) == 2 and sorted(p for m in running for p in m["partitions"]) == list(range(PARTITIONS))
        assert all(m["last_commit"] for m in running)
    finally:
        projecting.kill()
        projecting.wait()
        errors = _stopped(members)
    assert all("assigned customer-events partitions" in text for text in errors), errors
    capsys.readouterr()
    assert lifecycle(kafka, "status", "--group", GROUP) == 0
    assert len(re.findall(r"^  \S+:\d+ +stopped \d+ s ago$", capsys.readouterr().out, re.MULTILINE)) == 2

    committed = _committed_lifecycle_events(kafka)
    expected = _one_engine(kafka, tmp_path / "single")
    assert len(committed) == len(expected) > 100
    assert set(committed.values()) == set(expected)
    single = _tables(tmp_path / "single")
    assert _projected(kafka, tmp_path / "projector") == single
    assert len(single["customers"]) == SPEC.customers and len(single["lifecycle_transitions"]) == len(expected)
    assert len(single["dead_letters"]) == 2 and single["value_movements"] and single["customer_profiles"]
    capsys.readouterr()
    assert _projected(kafka, tmp_path / "projector") == single, "projected again, nothing changes"
    assert "projected 0 checkpoints" in capsys.readouterr().err
    assert lifecycle(Settings(home=tmp_path / "projector", kafka=kafka.kafka), "status", "--format", "json") == 0
    status = json.loads(capsys.readouterr().out)
    assert status["projector_of"] == GROUP and status["lag"] == 0 and status["engine_pid"] is None
    assert lifecycle(Settings(home=tmp_path / "projector", kafka=kafka.kafka), "status") == 0
    assert "the projections of the consumer group g (`lifecycle project`, not projecting)" in capsys.readouterr().out
    _verified(kafka, tmp_path / "projector")
    assert lifecycle(Settings(home=tmp_path / "projector", kafka=kafka.kafka), "verify", "--partition", "1") == 0
    customer = single["customers"][0][0]
    with duckdb.connect(str(current(tmp_path / "projector") / "views.duckdb")) as connection:
        connection.execute("UPDATE customer_rows SET stage = CASE stage WHEN 'advocate' THEN 'prospect' ELSE "
                           "'advocate' END WHERE customer_id = ?", [customer])
    projector = Settings(home=tmp_path / "projector", kafka=kafka.kafka)
    capsys.readouterr()
    assert lifecycle(projector, "verify") == 1
    assert f"customer {customer}: customers: differs in stage" in capsys.readouterr().out
    with duckdb.connect(str(current(tmp_path / "projector") / "views.duckdb")) as connection:
        (partition,), = connection.execute("SELECT log_partition FROM customer_rows WHERE customer_id = ?",
                                           [customer]).fetchall()
    others = [str(p) for p in range(PARTITIONS) if f"{CUSTOMER_EVENTS}:{p}" != partition]
    assert lifecycle(projector, "verify", *(f"--partition={p}" for p in others)) == 0

    dead = _committed_topic(kafka, DEAD_LETTER_TOPIC)
    assert sorted(record.value for record in dead) == [b"not an event"] * 2
    headers = dict(dead[0].headers)
    assert headers["__connect.errors.topic"] == b"customer-events"
    assert headers["__connect.errors.exception.class.name"] == b"invalid"
    assert headers["__connect.errors.exception.message"].startswith(b"malformed JSON")
    assert {headers["__connect.errors.partition"] for headers in map(dict, (r.headers for r in dead))} == {b"0", b"3"}
    assert _committed_topic(kafka, changelog_topic(GROUP)), "states went to the changelog"


def test_a_live_projector_waits_for_the_group_and_refuses_another_policy(kafka, tmp_path, capsys):
    _publish(kafka, list(generate(PopulationSpec(customers=20, seed=3, days=30))))
    live = Settings(home=tmp_path / "live", kafka=kafka.kafka)
    projecting = subprocess.Popen(lifecycle_command(live, "project", "--group", GROUP, "--poll-interval", "0.1",
                                                    "--snapshot-every", "0.1"),
                                  stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert projecting.stderr is not None
        assert "there is no topic g-projections: no member of the group g has run yet" in projecting.stderr.readline()
        member = _Watched(kafka, tmp_path / "a")
        try:
            _caught_up(kafka, [member])
            snapshot = tmp_path / "live" / "derived-1" / "views.snapshot.duckdb"
            _wait_for(snapshot.exists, "the live projector's first snapshot", [member])
        finally:
            _stopped([member])
    finally:
        projecting.send_signal(signal.SIGTERM)
        assert projecting.wait(timeout=60) == 0
    assert "projected " in projecting.stderr.read()
    projector = Settings(home=tmp_path / "projector", kafka=kafka.kafka)
    policy = tmp_path / "policy.toml"
    policy.write_text('version = "other-1"\n')
    capsys.readouterr()
    assert lifecycle(projector, "project", "--group", GROUP, "--once", "--policy", str(policy)) == 2
    assert "under policy version 'default-" in capsys.readouterr().err
    assert lifecycle(projector, "project", "--group", "nobody", "--once") == 2
    assert "holds the projections of the consumer group g: give the group nobody a home of its own" in \
        capsys.readouterr().err
    nobody = Settings(home=tmp_path / "nobody", kafka=kafka.kafka)
    assert lifecycle(nobody, "project", "--group", "nobody", "--once") == 2
    assert "there is no topic nobody-projections" in capsys.readouterr().err
    assert lifecycle(Settings(home=tmp_path / "p"), "project", "--once") == 2
    assert "project needs --kafka" in capsys.readouterr().err

    assert lifecycle(projector, "project", "--group", GROUP, "--once") == 0
    assert lifecycle(projector, "process", "--once") == 2
    assert "holds the projections of the consumer group g" in capsys.readouterr().err
    assert lifecycle(projector, "replay") == 2
    assert "`replay` needs an engine's home" in capsys.readouterr().err
    assert lifecycle(kafka, "project", "--group", GROUP, "--once") == 0, "the publisher's home has no engine's stores"
    engine = Settings(home=tmp_path / "engine", kafka=kafka.kafka)
    assert lifecycle(engine, "process", "--once", "--no-clock") == 0
    capsys.readouterr()
    assert lifecycle(engine, "project", "--group", GROUP, "--once") == 2
    assert "holds a single engine's stores" in capsys.readouterr().err


def test_a_partition_moved_to_an_empty_disk_is_restored_from_the_changelog(kafka, tmp_path):
    lines = list(generate(SPEC))
    half = len(lines) // 2
    _publish(kafka, lines[:half])
    first = [_Watched(kafka, tmp_path / "first")]
    try:
        _caught_up(kafka, first)
    finally:
        _stopped(first)

    _publish(kafka, lines[half:])
    second = [_Watched(kafka, tmp_path / "second", "--metrics-port", "0")]
    try:
        _caught_up(kafka, second)
        (address,) = re.findall(r"metrics for Prometheus at (\S+)", "".join(second[0].lines))
        with urllib.request.urlopen(address, timeout=10) as page:
            metrics = {sample.name: sample.value for family in text_string_to_metric_families(page.read().decode())
                       for sample in family.samples}
    finally:
        (told,) = _stopped(second)
    assert "restored" in told and "from g-states-changelog" in told, told
    assert metrics["lifecycle_partitions_assigned"] == PARTITIONS
    assert 0 < metrics["lifecycle_restored_states_total"] <= SPEC.customers
    assert metrics["lifecycle_restore_records_total"] >= metrics["lifecycle_restored_states_total"]

    committed = _committed_lifecycle_events(kafka)
    expected = _one_engine(kafka, tmp_path / "single")
    assert set(committed.values()) == set(expected)
    assert len(committed) == len(expected)


class _Watched:
    """A member whose stderr is read as it comes, to see what it did."""

    def __init__(self, settings: Settings, home: Path, *flags: str) -> None:
        self.process = _member(settings, home, "-v", *flags)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    def assigned(self) -> set[int]:
        told = [line for line in self.lines if "assigned customer-events partitions" in line]
        return set(map(int, re.findall(r"\d+", told[-1].rsplit("[", 1)[1]))) if told else set()

    def processed_to(self, partition: int) -> int:
        pattern = re.compile(rf"processed \d+ records of customer-events:{partition} up to position (\d+)")
        return max((int(m.group(1)) for line in self.lines if (m := pattern.search(line))), default=0)

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def stop(self) -> tuple[int, str]:
        """SIGTERM (after SIGCONT, if paused), waited for; its exit status and what it said.
        Killed if it does not stop, so that no member outlives its test."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
            self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            status = self.process.wait()
        self._reader.join(timeout=10)
        return status, "".join(self.lines)


def _stopped(members: list[_Watched]) -> list[str]:
    """Stop every member, then check each stopped cleanly; what each said."""
    ended = [member.stop() for member in members]
    for status, told in ended:
        assert status == 0, told
    return [told for _, told in ended]


def _wait_for(condition, what: str, members: list[_Watched]) -> None:  # type: ignore[no-untyped-def]
    for _ in range(900):
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"{what} did not happen; the members said:\n" + "\n---\n".join("".join(m.lines) for m in members))


def _ends(settings: Settings) -> dict[int, int]:
    with open_event_log(settings, CUSTOMER_EVENTS, create=False) as log:
        return {int(name.rsplit(":", 1)[1]): end for name, end in log.ends_from(lambda _: None).items()}


def _committed(settings: Settings) -> dict[int, int]:
    group = KafkaConsumer(bootstrap_servers=settings.kafka, group_id=GROUP, enable_auto_commit=False)
    try:
        return {p: group.committed(TopicPartition(CUSTOMER_EVENTS, p)) or 0 for p in range(settings.partitions)}
    finally:
        group.close()


SIX = 6


def test_a_killed_member_and_a_paused_one_leave_every_lifecycle_event_committed_once(kafka_broker, tmp_path):
    """Three members on six partitions: one SIGKILLed and one SIGSTOPped, most likely
    holding work not committed yet (they checkpoint every 4 batches or 3 s); the third
    takes their partitions over from the changelog; the paused one, resumed, is fenced
    and commits nothing of what it held, then rejoins the group. What a fenced member
    wrote in a transaction it never committed shows to the test broker's
    `read_committed` readers (not to Kafka's): `_committed_lifecycle_events` keeps the
    committed checkpoints, and checks the rest are copies."""
    settings = Settings(home=tmp_path / "publisher", kafka=kafka_broker.bootstrap, partitions=SIX)
    lines = list(generate(PopulationSpec(customers=300, seed=11, days=240)))
    thirds = [lines[: len(lines) // 3], lines[len(lines) // 3 : 2 * len(lines) // 3], lines[2 * len(lines) // 3 :]]
    with open_event_log(settings, CUSTOMER_EVENTS):
        pass  # the topic, with six partitions, before the members join
    holding = ("--batch-size", "60", "--checkpoint-batches", "4", "--checkpoint-seconds", "3")
    killed, paused = _Watched(settings, tmp_path / "x", *holding), _Watched(settings, tmp_path / "y", *holding)
    survivor = _Watched(settings, tmp_path / "z")
    members = [killed, paused, survivor]
    try:
        _wait_for(lambda: sorted(p for m in members for p in m.assigned()) == list(range(SIX)),
                  "an assignment of all six partitions, one set to each member", members)
        _publish(settings, thirds[0])
        ends = _ends(settings)
        held = {p: m for m in (killed, paused) for p in m.assigned()}
        _wait_for(lambda: all(held[p].processed_to(p) == ends[p] for p in held)
                  and all(_committed(settings)[p] == ends[p] for p in survivor.assigned()), "phase 1", members)
        assert any(_committed(settings)[p] for p in held), "the holding members committed a checkpoint"
        os.kill(paused.process.pid, signal.SIGSTOP)
        os.kill(killed.process.pid, signal.SIGKILL)

        _publish(settings, thirds[1])
        ends = _ends(settings)
        _wait_for(lambda: _committed(settings) == ends, "the survivor taking every partition over", members)
        assert survivor.said("restored"), "".join(survivor.lines)

        os.kill(paused.process.pid, signal.SIGCONT)
        _wait_for(lambda: paused.said("lost customer-events") or paused.said("fenced:"),
                  "the paused member learning it lost its partitions", members)
        _publish(settings, thirds[2])
        ends = _ends(settings)
        _wait_for(lambda: _committed(settings) == ends, "phase 3", members)
    finally:
        killed.process.kill()
        killed.process.wait()
        _stopped([paused, survivor])

    committed = _committed_lifecycle_events(settings)
    expected = _one_engine(settings, tmp_path / "single")
    assert len(committed) == len(expected)
    assert set(committed.values()) == set(expected)
    single = _tables(tmp_path / "single")
    assert _projected(settings, tmp_path / "projector") == single
    _verified(settings, tmp_path / "projector")
    embedded = Settings(home=tmp_path / "embedded", partitions=SIX)
    _publish(embedded, lines)
    assert lifecycle(embedded, "process", "--once", "--no-clock") == 0
    on_one, on_six = _tables(tmp_path / "embedded", PLACELESS), _tables(tmp_path / "single", PLACELESS)
    assert on_one.pop("partition_clocks") != on_six.pop("partition_clocks")
    assert on_one == on_six


def test_a_member_appends_clocks_as_a_live_engine_does(kafka, tmp_path):
    _publish(kafka, list(generate(SPEC))[:400])

    def clocks() -> int:
        with open_event_log(kafka, CUSTOMER_EVENTS, create=False) as log:
            return sum(type(decode_event(raw)) is Clock for batch in log.read(lambda _: None) for raw in batch.values)

    published = clocks()
    member = _Watched(kafka, tmp_path / "a", "--clock-every", "0.3")
    try:
        _wait_for(lambda: clocks() >= published + PARTITIONS, "a clock on every partition", [member])
    finally:
        _stopped([member])


def test_status_of_a_group_needs_kafka(tmp_path, capsys):
    assert lifecycle(Settings(home=tmp_path), "status", "--group", GROUP) == 2
    assert "--group needs --kafka" in capsys.readouterr().err


def test_a_group_member_needs_kafka_and_runs_until_stopped(tmp_path, capsys):
    assert lifecycle(Settings(home=tmp_path), "process", "--group", GROUP) == 2
    assert "--group needs --kafka" in capsys.readouterr().err
    settings = Settings(home=tmp_path, kafka="127.0.0.1:9")  # refused before any connection
    assert lifecycle(settings, "process", "--group", GROUP, "--once") == 2
    assert "--group runs until stopped" in capsys.readouterr().err


def test_a_changelog_that_lost_records_is_refused_rather_than_restored_in_part(kafka, tmp_path):
    """A changelog deleted and recreated while the group ran begins at a later checkpoint:
    restoring from it would give only the customers changed since. Refused, saying what to do."""
    from consumers.group.changelog import META_KEY, ChangelogBehind, CheckpointMeta, encode_meta, restore_partition
    from projections.stores.state_store import RocksDBStateStore

    topic = changelog_topic("recreated")
    producer = KafkaProducer(bootstrap_servers=kafka.kafka)
    producer.send(topic, b"state", key=b"c-1", partition=0)
    producer.send(topic, encode_meta(CheckpointMeta(500, 900, (None, None, []), [], 1)), key=META_KEY, partition=0)
    producer.flush()
    producer.close()
    store = RocksDBStateStore(tmp_path / "states", 1_000)
    reader = KafkaConsumer(bootstrap_servers=kafka.kafka)
    try:
        with pytest.raises(ChangelogBehind, match="goes from position 0 of customer-events:0 to a checkpoint that "
                                                  "starts at 500: the changelog lost records"):
            restore_partition(reader, topic, 0, "customer-events:0", store, 900, lambda _: None)
        assert store.positions() == {}, "nothing restored"
    finally:
        reader.close()
        store.close()
