"""A consumer group's state changelog: the topic `<group>-states-changelog`, with as
many partitions as `customer-events`; its partition N holds the states of the customers
of input partition N, as Kafka Streams' changelog topics do.

Each checkpoint of a partition writes, inside its transaction, every state it changed
(key: the customer id; value: the state as the state store encodes it) and then one
`CheckpointMeta` record (key `META_KEY`): the input positions it goes from and to, the
partition's time rule and every record then waiting for time, whole. A restore applies
the checkpoints in order up to the group's committed offset of the partition, each
checkpoint's states only once its meta record is read.

Why the meta record marks the end, and not the broker alone: a test broker (tansu)
gives `read_committed` readers the records of aborted transactions too. What a fenced
member wrote lies after the last committed checkpoint it started from, and ends past
the committed offset unless its successor committed past it; the successor derived
the same records again from the same checkpoint (the derivation is deterministic), so
each customer it touched is written again after it. Applying checkpoints in order up to
the committed offset therefore gives the successor's states either way, and the meta
record carries the waiting records whole rather than as changes.

Without compaction (the test broker has none) a restore reads every state written
since the partition began; a member that had the partition before reads on from the
changelog offset its store last reflected.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import msgspec
from kafka import KafkaConsumer, TopicPartition

from consumers.errors import LifecycleError
from consumers.logs.event_log import CUSTOMER_EVENTS
from consumers.logs.kafka_event_log import drain
from lifecycle.partition_time import Held
from projections.stores.state_store import RocksDBStateStore

META_KEY = b"\x00checkpoint"
"""The key of a checkpoint's meta record: no customer id starts with NUL."""
_READ_BATCH = 20_000


CHECKPOINT_HEADER = "lifecycle_checkpoint"
"""The header naming the checkpoint of each record a group member commits."""


def checkpoint_id(partition: str, start: int, end: int) -> bytes:
    """A checkpoint, as its records name it: `<input partition>@<start>-<end>`."""
    return f"{partition}@{start}-{end}".encode()


def changelog_topic(group: str) -> str:
    return f"{group}-states-changelog"


def mark_name(topic: str, partition: int) -> str:
    """The name under which a partition's store records its changelog offset."""
    return f"changelog:{topic}:{partition}"


class CheckpointMeta(msgspec.Struct, array_like=True, frozen=True):
    """The end of one checkpoint of a partition in its changelog (see the module text)."""

    start: int
    end: int
    rule: tuple[int | None, int | None, list[tuple[int, int]]]
    held: list[tuple[int, int, int, int, bytes]]
    """Every record waiting for time at `end`: (seq, time, kind, customer key, bytes)."""
    states: int


_meta_encoder = msgspec.msgpack.Encoder()
_meta_decoder = msgspec.msgpack.Decoder(CheckpointMeta)


def encode_meta(meta: CheckpointMeta) -> bytes:
    return _meta_encoder.encode(meta)


class ChangelogBehind(LifecycleError):
    """The changelog does not reach the group's committed offset of a partition."""


@dataclass(frozen=True)
class Restored:
    """What restoring one partition did: states written, changelog records read."""

    states: int
    records: int
    seconds: float


def restore_partition(consumer: KafkaConsumer, topic: str, partition: int, name: str, store: RocksDBStateStore,
                      committed: int, say: Callable[[str], None],
                      progress: Callable[[int, int], None] | None = None) -> Restored:
    """Bring `store` to the group's committed offset `committed` of input partition
    `name` (changelog partition `partition`), reading on from the changelog offset it
    reflects; nothing to do when it stands there already. Every few seconds it says
    how far it is, and tells `progress` (records read, of about how many)."""
    started = time.monotonic()
    positions = store.positions()
    if positions.get(name, 0) == committed:
        return Restored(0, 0, 0.0)
    start = positions.get(mark_name(topic, partition), 0)
    tp = TopicPartition(topic, partition)
    consumer.assign([tp])
    consumer.seek(tp, start)
    pending: dict[str, bytes] = {}
    restored: dict[str, bytes] = {}
    applied: CheckpointMeta | None = None
    records, mark, told, reached = 0, start, started, positions.get(name, 0)
    for _, chunk, end in drain(consumer, {tp: start}, _READ_BATCH):
        for record in chunk:
            if record.key == META_KEY:
                meta = _meta_decoder.decode(record.value)
                if meta.end <= committed:
                    if meta.start > reached:
                        raise ChangelogBehind(_gap(topic, name, reached, meta.start))
                    restored.update(pending)
                    applied, mark, reached = meta, record.offset + 1, max(reached, meta.end)
                pending = {}  # past the committed offset: a checkpoint a fenced member never committed
            else:
                pending[record.key.decode()] = record.value
        records += len(chunk)
        if time.monotonic() - told >= 5:
            say(f"restoring {name} from {topic}: {records:,} records read of about {end - start:,}")
            if progress is not None:
                progress(records, end - start)
            told = time.monotonic()
    if applied is None or applied.end != committed:
        held = "nothing" if applied is None else f"position {applied.end}"
        raise ChangelogBehind(f"the changelog {topic} holds {held} for {name}, but the group committed position "
                              f"{committed}: {_LOST}")
    held = [(Held(seq, at, kind, customer), raw) for seq, at, kind, customer, raw in applied.held]
    store.restore(name, restored, applied.rule, held, {mark_name(topic, partition): mark, name: committed})
    return Restored(len(restored), records, time.monotonic() - started)


_LOST = ("the changelog lost records (was it deleted or recreated?), so the partition's states cannot be restored. "
         "Stop the group's members, delete the changelog, reset the group's offsets of customer-events to the "
         "earliest (kafka-consumer-groups --reset-offsets --to-earliest) and start them again: they derive "
         "everything again from the log (the same lifecycle events, with the same ids)")


def _gap(topic: str, name: str, reached: int, start: int) -> str:
    return (f"the changelog {topic} goes from position {reached} of {name} to a checkpoint that starts at {start}: "
            f"{_LOST}")


def committed_checkpoints(consumer: KafkaConsumer, topic: str, committed: dict[int, int]) -> set[bytes]:
    """The ids (`checkpoint_id`) of the checkpoints a group committed, from the meta
    records of its changelog `topic` and its committed offset of each input partition
    (`committed`: partition number -> offset).

    The committed checkpoints of a partition are a chain from 0 to the committed offset.
    A checkpoint a fenced member began was written before its successor was given the
    partition, so walking back from the committed offset, the latest meta record that
    ends where the walk stands is the committed one. This is what `read_committed`
    means where the broker does not filter aborted transactions (a test broker)."""
    ids: set[bytes] = set()
    for partition, offset in committed.items():
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        ending: dict[int, CheckpointMeta] = {}
        for _, chunk, _ in drain(consumer, {tp: 0}, _READ_BATCH):
            for record in chunk:
                if record.key == META_KEY:
                    meta = _meta_decoder.decode(record.value)
                    ending[meta.end] = meta  # a later one ending at the same place replaces it
        name = f"{CUSTOMER_EVENTS}:{partition}"
        at = offset
        while at > 0 and at in ending:
            ids.add(checkpoint_id(name, ending[at].start, at))
            at = ending[at].start
        if at != 0:
            raise ChangelogBehind(f"the changelog {topic} holds no committed checkpoint of {name} ending at {at}")
    return ids
