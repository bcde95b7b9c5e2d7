"""The log of record on Kafka: `KafkaEventLog`, through kafka-python.

This module owns everything the engine does with the topic itself: creating it, producing
events (keyed by customer id; a clock or a fit to every partition), the local event-id index
that makes appends idempotent, and reading partitions by manual assignment (no consumer
group: positions live with the effects, in `Tracking` records, not in Kafka).

Idempotent appends: before producing, the index (an SQLite file) is caught up from the
topic itself, so ids written by any producer, on any machine, count. A clock is
indexed per partition, so one that reached only some partitions before a failure is
sent to the others when appended again. Two producers racing to append the same new
event at the same moment can still both write it; the lifecycle engine ignores such a
repeat (see `lifecycle.engine`).

How the end of a partition is found: see `drain`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from eventsourcing.persistence import Tracking
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError, OffsetOutOfRangeError, TopicAlreadyExistsError
from kafka.producer.future import RecordMetadata

from consumers.logs import record_headers
from consumers.errors import LifecycleError, LogUnavailable
from consumers.logs.event_id_index import IndexEntry, SQLiteEventIdIndex, sort_out
from consumers.logs.event_log import Appended, EventLog, PositionOf, RecordBatch
from schemas import AnyEvent, InvalidEvent, LogWideEvent, decode_event, event_digest

# A broker that is down should fail a command in seconds, not in kafka-python's 30 s.
_BOOTSTRAP_TIMEOUT_MS = 10_000
# How long the broker may hold a fetch when it has nothing new: this bounds the cost of
# learning that a partition is empty or already read. Measured on tansu, time to learn
# that an empty partition is empty: 500 ms (kafka-python's default) -> 0.52 s,
# 100 ms -> 0.10 s, 10 ms -> 0.02 s; read throughput was the same for all, since a
# fetch returns as soon as there is any data (fetch_min_bytes=1). Not 0: tansu answers a
# fetch with max_wait 0 with no partitions at all, not even their high-water marks.
_FETCH_MAX_WAIT_MS = 10
# With no records, poll() fetches again and again until its whole timeout is spent, so
# keep it short: `drain` looks at the high-water marks between polls.
_POLL_TIMEOUT_MS = 5
_STALL_TIMEOUT_S = 30.0
_CATCH_UP_BATCH = 20_000
_FLUSH_TIMEOUT_S = 120.0
_UNREACHABLE_HINT = "is the broker running? set LIFECYCLE_KAFKA or --kafka"


class KafkaUnavailable(LogUnavailable):
    """The broker could not be reached, or stopped answering."""


class KafkaAppendFailed(LogUnavailable):
    """Some events could not be written; appending them all again is safe (idempotent)."""


class KafkaPositionError(LifecycleError):
    """A stored position lies beyond the end of its partition."""


class KafkaIndexError(LifecycleError):
    """The event-id index file belongs to another topic."""


def _log_wide_key(event_id: str, partition: int) -> str:
    """A log-wide event goes to every partition, so the index knows it per partition: an append
    that failed part-way sends it again to the partitions it did not reach."""
    return f"{event_id}@{partition}"


Decode = Callable[[bytes], Any]
"""The topic's contract: raw events (`decode_event`) or lifecycle events."""


def _index_entries(records: Sequence[ConsumerRecord], partition: int, decode: Decode) -> list[IndexEntry]:
    """The index entries of the records that are valid events of the topic's contract;
    anything else is not an event on the log (the engine dead-letters it), so its id
    stays free for a valid one."""
    entries: list[IndexEntry] = []
    for record in records:
        try:
            event = decode(record.value if record.value is not None else b"")
        except InvalidEvent:
            continue
        event_id = str(event.event_id)
        key = _log_wide_key(event_id, partition) if isinstance(event, LogWideEvent) else event_id
        entries.append((key, event_digest(event)))
    return entries


def _offsets_written(sent: Iterable[RecordMetadata]) -> dict[int, list[int]]:
    spans: dict[int, list[int]] = {}
    for metadata in sent:
        span = spans.get(metadata.partition)
        if span is None:
            spans[metadata.partition] = [metadata.offset, metadata.offset, 1]
        else:
            span[0], span[1] = min(span[0], metadata.offset), max(span[1], metadata.offset)
            span[2] += 1
    return spans


def drain(
    consumer: KafkaConsumer, starts: dict[TopicPartition, int], max_records: int
) -> Iterator[tuple[TopicPartition, list[ConsumerRecord], int]]:
    """Records of the assigned partitions, per partition, up to the end when reading
    began, with that end.

    The end of a partition is the first high-water mark a fetch response brings for it.
    Not `end_offsets()`: tansu answers ListOffsets(latest) wrongly (1 for a partition of
    10 records). A fetch answers for every partition it asks about, empty ones included,
    so one fetch round tells which partitions are empty or already read: they are done
    as soon as `highwater(tp)` is known and the position is there. Only when nothing at
    all is left does a round cost `_FETCH_MAX_WAIT_MS`: reading an empty topic took
    25-30 ms on tansu, most of it connecting the consumer. Records past that first end
    (appended while reading) are cut off and left for the next read. A topic written in
    transactions ends with a marker no record stands at: the consumer's position tells
    that the end is reached.
    """
    nexts, ends = dict(starts), {}
    last_answer = time.monotonic()
    while nexts:
        polled = consumer.poll(timeout_ms=_POLL_TIMEOUT_MS, max_records=max_records)
        for tp, records in polled.items():
            records = _before(records, ends.setdefault(tp, consumer.highwater(tp)))
            if tp in nexts and records:
                nexts[tp] = records[-1].offset + 1
                yield tp, records, ends[tp]
        for tp in list(nexts):
            if tp not in ends and consumer.highwater(tp) is not None:
                ends[tp] = consumer.highwater(tp)
            if tp in ends and nexts[tp] < ends[tp]:
                # A transaction's commit or abort marker takes an offset but is never
                # returned: the consumer's position steps over it, the records do not.
                nexts[tp] = max(nexts[tp], min(consumer.position(tp), ends[tp]))
            if tp in ends and nexts[tp] >= ends[tp]:
                _check_not_past_end(tp, nexts.pop(tp), ends[tp])
                consumer.pause(tp)
                last_answer = time.monotonic()
        if polled:
            last_answer = time.monotonic()
        elif time.monotonic() - last_answer > _STALL_TIMEOUT_S:
            raise KafkaUnavailable(_stalled(consumer, sorted(tp.partition for tp in nexts)))


def _before(records: list[ConsumerRecord], end: int) -> list[ConsumerRecord]:
    if records[-1].offset < end:
        return records
    return [record for record in records if record.offset < end]


def _check_not_past_end(tp: TopicPartition, position: int, end: int) -> None:
    # Kafka would answer OFFSET_OUT_OF_RANGE; tansu answers an empty fetch instead, so
    # without this check a recreated topic would look merely "caught up" forever.
    if position > end:
        message = (
            f"position {position} of {tp.topic}:{tp.partition} is past the end of the "
            f"partition ({end}): the topic was recreated or truncated since that position "
            "was recorded (a tansu test broker keeps nothing across restarts); start "
            "again from an empty store of positions"
        )
        raise KafkaPositionError(message)


def _stalled(consumer: KafkaConsumer, partitions: list[int]) -> str:
    servers = consumer.config["bootstrap_servers"]
    return (
        f"Kafka at {servers} sent nothing for partitions {partitions} in "
        f"{_STALL_TIMEOUT_S:.0f} s: {_UNREACHABLE_HINT}"
    )


def committed_offsets(bootstrap: str, group: str, partitions: list[str]) -> dict[str, int]:
    """The offsets consumer group `group` committed for `partitions` ("<topic>:<n>");
    a partition it committed nothing for is left out. The reader does not join the group."""
    try:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                                 bootstrap_timeout_ms=_BOOTSTRAP_TIMEOUT_MS)
    except KafkaError as error:
        raise KafkaUnavailable(f"cannot reach Kafka at {bootstrap} ({error}): {_UNREACHABLE_HINT}") from error
    try:
        found = {}
        for name in partitions:
            topic, _, number = name.rpartition(":")
            offset = consumer.committed(TopicPartition(topic, int(number)))
            if offset is not None:
                found[name] = offset
        return found
    finally:
        consumer.close()


class KafkaEventLog(EventLog):
    """One Kafka topic as the log of record, with a local SQLite index of its event ids."""

    def __init__(
        self,
        *,
        bootstrap: str,
        name: str,
        index_path: Path,
        partitions: int = 4,
        client_id: str = "lifecycle",
        create: bool = True,
        decode: Decode = decode_event,
    ) -> None:
        """`create`: make the topic if it is missing; otherwise (a reader) a missing
        topic is an error, and nothing is created. The index file is opened only when
        the log is first appended to. `decode`: the contract of the topic's events, by
        which the index tells events written by others from records that are not."""
        super().__init__(name)
        self._decode = decode
        self.bootstrap = bootstrap
        self.client_id = client_id
        self.index_path = Path(index_path)
        self._index = SQLiteEventIdIndex()
        self._producer: KafkaProducer | None = None
        self._partition_ids = self._ensure_topic(partitions) if create else self._existing_topic()
        self._index_db: sqlite3.Connection | None = None

    # -- setup -------------------------------------------------------------------------

    def _connect(self, client: Any, **config: Any) -> Any:
        try:
            return client(
                bootstrap_servers=self.bootstrap,
                client_id=self.client_id,
                bootstrap_timeout_ms=_BOOTSTRAP_TIMEOUT_MS,
                **config,
            )
        except KafkaError as error:
            message = f"cannot reach Kafka at {self.bootstrap} ({error}): {_UNREACHABLE_HINT}"
            raise KafkaUnavailable(message) from error

    def _ensure_topic(self, partitions: int) -> list[int]:
        """Create the topic if missing; its partition ids, as the cluster reports them."""
        admin = self._connect(KafkaAdminClient)
        try:
            try:
                # -1: the cluster's default replication factor (KIP-464).
                admin.create_topics([NewTopic(self.name, partitions, -1)])
            except TopicAlreadyExistsError:
                pass
            return self._wait_for_partitions(admin)
        finally:
            admin.close()

    def _existing_topic(self) -> list[int]:
        admin = self._connect(KafkaAdminClient)
        try:
            (topic,) = admin.describe_topics([self.name])
        except KafkaError as error:
            raise KafkaUnavailable(f"cannot describe topic {self.name!r} at {self.bootstrap}: {error}") from error
        finally:
            admin.close()
        if topic["error_code"] != 0 or not topic["partitions"]:
            message = f"there is no topic {self.name!r} at Kafka {self.bootstrap} yet: nothing was published to it"
            raise KafkaUnavailable(message)
        return sorted(p["partition_index"] for p in topic["partitions"])

    def _wait_for_partitions(self, admin: KafkaAdminClient) -> list[int]:
        # A new topic can take a moment to reach every broker's metadata.
        deadline = time.monotonic() + _BOOTSTRAP_TIMEOUT_MS / 1000
        while True:
            try:
                (topic,) = admin.describe_topics([self.name])
                if topic["error_code"] == 0 and topic["partitions"]:
                    return sorted(p["partition_index"] for p in topic["partitions"])
            except KafkaError:
                pass
            if time.monotonic() > deadline:
                message = f"topic {self.name!r} has no partitions at Kafka {self.bootstrap}"
                raise KafkaUnavailable(f"{message}: {_UNREACHABLE_HINT}")
            time.sleep(0.1)

    @property
    def _db(self) -> sqlite3.Connection:
        if self._index_db is None:
            self._index_db = self._open_index()
        return self._index_db

    def _open_index(self) -> sqlite3.Connection:
        self.index_path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.index_path)
        db.execute("PRAGMA journal_mode=WAL")
        # The index is a cache of the topic: losing the last commits on power loss only
        # means reading those records again, so no fsync per batch.
        db.execute("PRAGMA synchronous=NORMAL")
        with db:
            self._index.create_table(db.cursor())
            db.execute(
                "CREATE TABLE IF NOT EXISTS next_offsets (topic TEXT NOT NULL, "
                "partition INTEGER NOT NULL, next_offset INTEGER NOT NULL, "
                "PRIMARY KEY (topic, partition))"
            )
        row = db.execute("SELECT topic FROM next_offsets WHERE topic <> ?", (self.name,)).fetchone()
        if row is not None:
            db.close()
            message = (
                f"the event-id index {self.index_path} belongs to topic {row[0]!r}, not "
                f"{self.name!r}: give each topic its own index file"
            )
            raise KafkaIndexError(message)
        return db

    def _consumer(self) -> KafkaConsumer:
        return self._connect(
            KafkaConsumer,
            group_id=None,
            enable_auto_commit=False,
            # Every partition is sought explicitly; an offset Kafka does not have is an
            # error to report, not a reason to skip to either end silently.
            auto_offset_reset="none",
            fetch_min_bytes=1,
            fetch_max_wait_ms=_FETCH_MAX_WAIT_MS,
            fetch_max_bytes=64 * 1024 * 1024,
            # 8 MiB per partition read ~30% faster than the 1 MiB default on tansu.
            max_partition_fetch_bytes=8 * 1024 * 1024,
            max_poll_records=10_000,
        )

    # -- reading -----------------------------------------------------------------------

    def partitions(self) -> list[str]:
        return [f"{self.name}:{p}" for p in self._partition_ids]

    def _read_from(
        self, starts: dict[int, int], max_records: int
    ) -> Iterator[tuple[int, list[ConsumerRecord], int]]:
        # A new consumer per read: kafka-python keeps a partition's last high-water
        # mark across seek() and re-assign(), and a stale one would end a read early.
        # It costs ~6 ms to connect on loopback.
        consumer = self._consumer()
        try:
            tps = {TopicPartition(self.name, p): offset for p, offset in starts.items()}
            consumer.assign(list(tps))
            for tp, offset in tps.items():
                consumer.seek(tp, offset)
            for tp, records, end in drain(consumer, tps, max_records):
                yield tp.partition, records, end
        except OffsetOutOfRangeError as error:
            message = f"reading {self.name} at {self.bootstrap}: {error}; the records are gone"
            raise KafkaPositionError(message) from error
        finally:
            consumer.close()

    def read(
        self,
        position_of: PositionOf,
        max_records: int = 10_000,
        *,
        partitions: Collection[str] | None = None,
        until: Mapping[str, int] | None = None,
    ) -> Iterator[RecordBatch]:
        if max_records < 1:
            raise ValueError(f"max_records must be at least 1, not {max_records}")
        names = {p: f"{self.name}:{p}" for p in self._partition_ids}
        wanted = [p for p in self._partition_ids if partitions is None or names[p] in partitions]
        starts = {p: position_of(names[p]) or 0 for p in wanted}
        stops = {p: until[names[p]] for p in wanted if until is not None and names[p] in until}
        for partition, records, end in self._read_from(starts, max_records):
            stop = stops.get(partition)
            if stop is not None:
                records = [record for record in records if record.offset < stop]
                if not records:
                    continue
            positions = [record.offset + 1 for record in records]
            # A tombstone (no value) is as invalid an event as any other bad value.
            values = [record.value if record.value is not None else b"" for record in records]
            tracking = Tracking(names[partition], positions[-1])
            yield RecordBatch(tracking=tracking, values=values, positions=positions, end=end)

    def ends_from(self, position_of: PositionOf) -> dict[str, int]:
        """The high-water mark of each partition, from fetches at `position_of` (the
        broker answers a fetch of an empty or read partition too); a partition that
        does not answer within the stall timeout is left out."""
        names = {p: f"{self.name}:{p}" for p in self._partition_ids}
        consumer = self._consumer()
        try:
            tps = [TopicPartition(self.name, p) for p in self._partition_ids]
            consumer.assign(tps)
            for tp in tps:
                consumer.seek(tp, position_of(names[tp.partition]) or 0)
            deadline = time.monotonic() + _STALL_TIMEOUT_S
            while any(consumer.highwater(tp) is None for tp in tps) and time.monotonic() < deadline:
                consumer.poll(timeout_ms=_POLL_TIMEOUT_MS, max_records=1)
            return {names[tp.partition]: consumer.highwater(tp) for tp in tps if consumer.highwater(tp) is not None}
        finally:
            consumer.close()

    # -- appending ---------------------------------------------------------------------

    def append(self, events: Sequence[tuple[AnyEvent, bytes]]) -> Appended:
        if not events:
            return Appended(appended=0, duplicates=0)
        caught_up = self._catch_up()
        keys = [self._keys(event) for event, _ in events]
        digests = [event_digest(event) for event, _ in events]
        known = self._index.known(self._db.cursor(), [key for event_keys in keys for key in event_keys])
        sorted_out = sort_out(keys, digests, known)
        fresh = [(events[index], self._partitions_of(events[index][0], missing)) for index, missing in sorted_out.fresh]
        written = self._produce(fresh)
        entries = [(key, digests[index]) for index, missing in sorted_out.fresh for key in missing]
        self._remember(entries, caught_up, written)
        return Appended(len(fresh), sorted_out.duplicates, tuple(sorted_out.conflicts))

    def _catch_up(self) -> dict[int, int]:
        """Index the ids of every record written since the last catch-up; the new ends."""
        rows = self._db.execute(
            "SELECT partition, next_offset FROM next_offsets WHERE topic = ?", (self.name,)
        )
        stored = dict(rows.fetchall())
        nexts = {p: stored.get(p, 0) for p in self._partition_ids}
        try:
            for partition, records, _ in self._read_from(nexts, _CATCH_UP_BATCH):
                # Ids and the position after them in one transaction: a crash between
                # the two would skip ids (position first) or re-read them (ids first).
                with self._db:
                    cursor = self._db.cursor()
                    self._index.add(cursor, _index_entries(records, partition, self._decode))
                    nexts[partition] = records[-1].offset + 1
                    self._store_next_offset(cursor, partition, nexts[partition])
        except KafkaPositionError as error:
            hint = f"if the topic was recreated, delete the event-id index {self.index_path}"
            raise KafkaPositionError(f"{error}; {hint}") from error
        return nexts

    def _store_next_offset(self, cursor: sqlite3.Cursor, partition: int, offset: int) -> None:
        cursor.execute(
            "INSERT INTO next_offsets (topic, partition, next_offset) VALUES (?, ?, ?) "
            "ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
            (self.name, partition, offset),
        )

    def _keys(self, event: AnyEvent) -> list[str]:
        """A customer event is on the log once its id is; a log-wide one (a clock, a
        fit), in each partition that has it, so it goes to the partitions that miss it."""
        event_id = str(event.event_id)
        if isinstance(event, LogWideEvent):
            return [_log_wide_key(event_id, partition) for partition in self._partition_ids]
        return [event_id]

    @staticmethod
    def _partitions_of(event: AnyEvent, missing: list[str]) -> list[int] | None:
        """The partitions a log-wide event goes to (those missing it); None for a customer event."""
        if not isinstance(event, LogWideEvent):
            return None
        return [int(key.rpartition("@")[2]) for key in missing]

    def _remember(
        self, entries: list[IndexEntry], caught_up: dict[int, int], written: dict[int, list[int]]
    ) -> None:
        """Index the ids just written, and move the index past them where it can.

        Where our records follow the caught-up end without a gap, no other producer wrote
        in between, so the next catch-up need not read them back (that re-read cost as
        much as a third of the time of producing them). Elsewhere it will read them.
        """
        with self._db:
            cursor = self._db.cursor()
            self._index.add(cursor, entries)
            for partition, (first, last, count) in written.items():
                if first == caught_up[partition] and last - first + 1 == count:
                    self._store_next_offset(cursor, partition, last + 1)

    def _produce(
        self, events: list[tuple[tuple[AnyEvent, bytes], list[int] | None]]
    ) -> dict[int, list[int]]:
        """Write the events, each clock to the partitions given with it; per partition
        written to: [first offset, last offset, count]."""
        producer = self._get_producer()
        sent = []
        try:
            for (event, raw), partitions in events:
                timestamp = record_headers.timestamp_ms(event)
                headers = record_headers.headers(self.name, event)
                if partitions is not None:
                    for partition in partitions:
                        sent.append(producer.send(self.name, raw, partition=partition, timestamp_ms=timestamp, headers=headers))
                else:
                    key = event.customer_id.encode()
                    sent.append(producer.send(self.name, raw, key=key, timestamp_ms=timestamp, headers=headers))
            producer.flush(timeout=_FLUSH_TIMEOUT_S)
        except KafkaError as error:
            self._append_failed([error])
        unacknowledged = [future for future in sent if not future.succeeded()]
        self._append_failed([f.exception or KafkaError("not acknowledged") for f in unacknowledged])
        return _offsets_written(future.value for future in sent)

    def _append_failed(self, failures: list[BaseException]) -> None:
        if failures:
            message = (
                f"{len(failures)} record(s) could not be written to {self.name} at "
                f"{self.bootstrap}, first: {failures[0]!r}; append the same events again "
                "(ids already written are skipped)"
            )
            raise KafkaAppendFailed(message) from failures[0]

    def _get_producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = self._connect(
                KafkaProducer,
                acks="all",
                # Idempotent: a retried batch is not written twice, nor out of order.
                enable_idempotence=True,
                linger_ms=5,
                batch_size=256 * 1024,
            )
        return self._producer

    def delete(self) -> None:
        """Delete the topic and this log's event-id index, and wait until the topic is
        gone, so that the next `KafkaEventLog` of this name starts an empty one. For
        derived topics only (a replay's `--republish`): the log of record is never deleted."""
        self.close()
        self.index_path.unlink(missing_ok=True)
        for suffix in ("-wal", "-shm"):
            self.index_path.with_name(self.index_path.name + suffix).unlink(missing_ok=True)
        admin = self._connect(KafkaAdminClient)
        try:
            admin.delete_topics([self.name])
            deadline = time.monotonic() + _BOOTSTRAP_TIMEOUT_MS / 1000
            while self.name in admin.list_topics():
                if time.monotonic() > deadline:
                    raise KafkaUnavailable(f"topic {self.name!r} is still there after deleting it: try again")
                time.sleep(0.1)
        except KafkaError as error:
            raise KafkaUnavailable(f"cannot delete topic {self.name!r} at {self.bootstrap}: {error}") from error
        finally:
            admin.close()

    def close(self) -> None:
        # The admin client and consumers live only as long as the call that needs them.
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.close(timeout=_FLUSH_TIMEOUT_S)
        if self._index_db is not None:
            self._index_db.close()
