"""`KafkaEventLog` against a real Kafka-protocol broker (tansu on loopback)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kafka import KafkaProducer

from consumers.logs.event_log import Appended, RecordBatch
from consumers.logs.kafka_event_log import KafkaEventLog, KafkaPositionError
from schemas import AnyEvent, Clock, Contact, Purchase, Visit, encode_event
from tests.broker import TansuBroker

PARTITIONS = 4
START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def broker() -> Iterator[TansuBroker]:
    with TansuBroker() as running:
        yield running


@pytest.fixture
def topic() -> str:
    return f"events-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def log(broker: TansuBroker, topic: str, tmp_path: Path) -> Iterator[KafkaEventLog]:
    with KafkaEventLog(
        bootstrap=broker.bootstrap, name=topic, index_path=tmp_path / "index.sqlite"
    ) as opened:
        yield opened


def pair(event: AnyEvent) -> tuple[AnyEvent, bytes]:
    return event, encode_event(event)


def customer_events(customers: int, per_customer: int) -> list[tuple[AnyEvent, bytes]]:
    """Mixed events, interleaved across customers, in event-time order."""
    events = []
    for i in range(per_customer):
        for c in range(customers):
            at = START + timedelta(hours=i, minutes=c)
            common = {"event_id": uuid.uuid4(), "occurred_at": at, "source": "test"}
            customer = f"c{c:03d}"
            kind = (i + c) % 3
            if kind == 0:
                event: AnyEvent = Visit(**common, customer_id=customer, place="web")
            elif kind == 1:
                event = Purchase(
                    **common, customer_id=customer, order_id=f"o{c}-{i}",
                    amount_minor=100 * (i + 1), currency="EUR",
                )  # fmt: skip
            else:
                event = Contact(
                    **common, customer_id=customer, channel="email", direction="inbound"
                )
            events.append(pair(event))
    return events


def clock(at: datetime) -> tuple[AnyEvent, bytes]:
    return pair(Clock(event_id=uuid.uuid4(), occurred_at=at, source="test"))


def read_all(log: KafkaEventLog, max_records: int = 10_000) -> list[RecordBatch]:
    return list(log.read(lambda _name: None, max_records=max_records))


def by_partition(batches: list[RecordBatch]) -> dict[str, list[bytes]]:
    values: dict[str, list[bytes]] = defaultdict(list)
    for batch in batches:
        values[batch.tracking.application_name].extend(batch.values)
    return dict(values)


def test_partitions_are_named_topic_colon_partition(log: KafkaEventLog, topic: str) -> None:
    assert log.partitions() == [f"{topic}:{p}" for p in range(PARTITIONS)]


def test_round_trip_keeps_each_partition_in_order(log: KafkaEventLog) -> None:
    events = customer_events(customers=40, per_customer=5)

    assert log.append(events).appended == len(events)
    batches = read_all(log, max_records=17)

    # Positions: consecutive from offset 0 in each partition, tracking = after the batch.
    positions: dict[str, list[int]] = defaultdict(list)
    for batch in batches:
        assert batch.tracking.application_name in log.partitions()
        assert 1 <= len(batch.values) == len(batch.positions) <= 17
        assert batch.tracking.notification_id == batch.positions[-1]
        positions[batch.tracking.application_name].extend(batch.positions)
    for name, seen in positions.items():
        assert seen == list(range(1, len(seen) + 1)), name
    # Every event once; one customer's events all in one partition, in appended order.
    values = by_partition(batches)
    assert len(values) > 1
    assert sorted(v for vs in values.values() for v in vs) == sorted(raw for _, raw in events)
    for customer in {event.customer_id for event, _ in events}:
        appended = [raw for event, raw in events if event.customer_id == customer]
        holding = [vs for vs in values.values() if appended[0] in vs]
        assert len(holding) == 1
        mine = set(appended)
        assert [v for v in holding[0] if v in mine] == appended


def test_clock_goes_to_every_partition(log: KafkaEventLog) -> None:
    before = customer_events(customers=8, per_customer=1)
    tick = clock(START + timedelta(days=1))
    after = customer_events(customers=8, per_customer=1)

    appended = log.append([*before, tick, *after])

    assert appended.appended == len(before) + 1 + len(after)
    values = by_partition(read_all(log))
    assert sorted(values) == log.partitions()
    for partition_values in values.values():
        assert partition_values.count(tick[1]) == 1
    total = sum(len(vs) for vs in values.values())
    assert total == len(before) + PARTITIONS + len(after)


def test_appending_again_appends_nothing(
    broker: TansuBroker, log: KafkaEventLog, topic: str, tmp_path: Path
) -> None:
    events = [*customer_events(customers=10, per_customer=3), clock(START + timedelta(days=2))]
    assert (log.append(events).appended, log.append(events).appended) == (len(events), 0)
    assert log.append(events).duplicates == len(events)

    # A fresh machine: no index yet, so it must learn the ids from the topic itself.
    newcomer = customer_events(customers=2, per_customer=1)
    with KafkaEventLog(
        bootstrap=broker.bootstrap, name=topic, index_path=tmp_path / "fresh" / "index.sqlite"
    ) as fresh:
        appended = fresh.append([*events, *newcomer, newcomer[0]])

    assert (appended.appended, appended.duplicates) == (2, len(events) + 1)
    total = sum(len(batch.values) for batch in read_all(log))
    assert total == len(events) - 1 + PARTITIONS + 2


def test_ids_written_by_other_producers_count(
    broker: TansuBroker, log: KafkaEventLog, topic: str
) -> None:
    event, raw = customer_events(customers=1, per_customer=1)[0]
    # Another producer spells the same id in capitals: still the same event.
    shouted = raw.replace(str(event.event_id).encode(), str(event.event_id).upper().encode())
    assert shouted != raw
    produce_directly(broker, topic, [shouted])

    appended = log.append([(event, raw)])

    assert (appended.appended, appended.duplicates) == (0, 1)


def test_an_id_another_producer_wrote_with_other_content_is_a_conflict(
    broker: TansuBroker, log: KafkaEventLog, topic: str
) -> None:
    (event, raw), (other, other_raw) = customer_events(customers=2, per_customer=1)
    produce_directly(broker, topic, [raw.replace(b'"source":"test"', b'"source":"elsewhere"')])
    produce_directly(broker, topic, [b'{"type":"visit","event_id":"%s"}' % str(other.event_id).encode()])

    appended = log.append([(event, raw), (other, other_raw)])

    # The first is on the log saying something else; the second's id is held only by a
    # record that is not a valid event (the engine dead-letters it), so it is free.
    assert (appended.appended, appended.duplicates, appended.conflicts) == (1, 0, (0,))


def test_an_event_written_during_an_append_still_counts(
    broker: TansuBroker, log: KafkaEventLog, topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another producer writes between this log's catch-up and its own records, to
    # every partition: the index must not move past that event as if it were ours.
    (intruder, intruder_raw), *ours = customer_events(customers=9, per_customer=1)
    ours.append(clock(START + timedelta(days=1)))  # so that ours go to every partition
    produce = log._produce

    def intrude_then_produce(events):  # type: ignore[no-untyped-def]
        for partition in range(PARTITIONS):
            produce_directly(broker, topic, [intruder_raw], partition=partition)
        return produce(events)

    monkeypatch.setattr(log, "_produce", intrude_then_produce)
    assert log.append(ours).appended == len(ours)
    monkeypatch.undo()

    appended = log.append([(intruder, intruder_raw), *ours])

    assert (appended.appended, appended.duplicates) == (0, 1 + len(ours))


def test_reading_resumes_from_positions(log: KafkaEventLog) -> None:
    events = customer_events(customers=20, per_customer=6)
    log.append(events)
    everything = by_partition(read_all(log))

    # Stop after the first batch of each partition, as a processor that crashed would.
    first: dict[str, RecordBatch] = {}
    for batch in log.read(lambda _name: None, max_records=5):
        first.setdefault(batch.tracking.application_name, batch)
    position = {name: batch.tracking.notification_id for name, batch in first.items()}
    rest = list(log.read(position.get))

    assert rest
    for batch in rest:
        assert batch.positions[0] == position[batch.tracking.application_name] + 1
    resumed = by_partition(rest)
    for name, values in everything.items():
        assert first[name].values + resumed.get(name, []) == values


def test_reading_an_empty_topic_yields_nothing(log: KafkaEventLog) -> None:
    assert read_all(log) == []


def test_reading_from_the_end_yields_nothing(log: KafkaEventLog) -> None:
    log.append(customer_events(customers=6, per_customer=2))
    ends = {b.tracking.application_name: b.tracking.notification_id for b in read_all(log)}

    assert list(log.read(ends.get)) == []


def test_invalid_values_are_read_as_they_are(
    broker: TansuBroker, log: KafkaEventLog, topic: str
) -> None:
    invalid = [b"not json", b'{"type": "visit"}', b""]
    produce_directly(broker, topic, invalid)
    events = customer_events(customers=3, per_customer=1)

    # Appending reads past them (they carry no event id) ...
    assert log.append(events).appended == len(events)
    values = [value for batch in read_all(log) for value in batch.values]

    # ... and reading hands them on untouched, for the processor to dead-letter.
    assert sorted(values) == sorted(invalid + [raw for _, raw in events])


def test_a_position_past_the_end_is_an_error(log: KafkaEventLog) -> None:
    log.append(customer_events(customers=1, per_customer=1))

    with pytest.raises(KafkaPositionError, match="past the end"):
        list(log.read(lambda _name: 1_000))


def test_a_clock_that_reached_some_partitions_goes_to_the_others(
    broker: TansuBroker, topic: str, log: KafkaEventLog
) -> None:
    tick = clock(START + timedelta(days=2))
    # What an append that failed after its first send leaves behind.
    produce_directly(broker, topic, [tick[1]], partition=0)

    assert log.append([tick]) == Appended(appended=1, duplicates=0)
    assert log.append([tick]) == Appended(appended=0, duplicates=1)

    values = by_partition(read_all(log))
    assert sorted(values) == log.partitions()
    assert all(partition_values == [tick[1]] for partition_values in values.values())


def produce_directly(
    broker: TansuBroker, topic: str, values: list[bytes], partition: int = 0
) -> None:
    """Write as any other producer might, past `KafkaEventLog` and its index."""
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    try:
        for value in values:
            producer.send(topic, value, partition=partition).get(timeout=30)
    finally:
        producer.close()
