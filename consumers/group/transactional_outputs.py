"""A group member's outputs for one partition: one Kafka transaction per checkpoint.

The transaction holds, for the batches since the partition's last checkpoint: their
lifecycle events (`customer-lifecycle`, keyed by customer, with the same CloudEvents
headers as the relay writes), their dead letters (`customer-events-dlq`, after Kafka
Connect's convention: the original record as its value, where it came from and why in
`__connect.errors.*` headers), the states they changed and the checkpoint's meta
record (the group's changelog, consumers/group/changelog.py), what they changed in
the projections (the group's projection topic, for the projector:
consumers/group/projection_topic.py), and the input offset reached, committed for the
group (`send_offsets_to_transaction`). Subscribers read the
topics `read_committed`. Each lifecycle event and dead letter also names its checkpoint
in a `lifecycle_checkpoint` header, so that a reader can keep the committed checkpoints
alone where a broker does not filter aborted transactions (`committed_checkpoints`).

The producer's transactional id is the group's and the partition's, so a member that
takes the partition over fences the one before: a member paused while its partition
moved commits nothing when it wakes. Nothing is sent before the checkpoint, so a
transaction is open only while it is written.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from eventsourcing.persistence import Tracking
from kafka import KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from consumers.errors import LifecycleError
from consumers.group.changelog import CHECKPOINT_HEADER, META_KEY, CheckpointMeta, checkpoint_id, encode_meta, mark_name
from consumers.group.projection_topic import CHUNK_HEADER, chunks
from consumers.logs import record_headers
from consumers.logs.event_log import CUSTOMER_EVENTS, CUSTOMER_LIFECYCLE
from consumers.processing.checkpoint import SinceCheckpoint
from consumers.processing.outputs import ProcessorOutputs
from lifecycle.partition_time import PartitionTime
from lifecycle.policy import Policy
from lifecycle.state import encode_state
from projections.catalog.dead_letters import DeadLetter
from projections.stores.effects_codec import encode_effects
from projections.stores.projection_store import BatchEffects
from projections.stores.state_store import RocksDBStateStore, StateBatch

DEAD_LETTER_TOPIC = f"{CUSTOMER_EVENTS}-dlq"
COMMIT_TIMEOUT_S = 30.0
"""The longest a transaction's end may take: past it the member takes the partition for
lost (a fenced producer's commit is refused; some brokers never answer it at all)."""


class PartitionLost(LifecycleError):
    """A partition's transaction could not be committed: it moved to another member (this
    one is fenced), or the broker did not answer. Nothing of it is visible."""


@dataclass(frozen=True)
class PartitionPlace:
    """Where one input partition's outputs go."""

    group: str
    topic_partition: TopicPartition
    changelog: str
    projections: str


class TransactionalOutputs(ProcessorOutputs):
    """One partition's outputs through its transactional producer (see the module text)."""

    def __init__(self, producer: KafkaProducer, place: PartitionPlace, group_metadata, states: RocksDBStateStore,  # type: ignore[no-untyped-def]
                 start: int, say: Callable[[str], None] | None = None) -> None:
        self.producer = producer
        self.say = say
        """Told of each checkpoint committed, if given."""
        self.place = place
        self.group_metadata = group_metadata
        """Called for the consumer's group metadata at each commit."""
        self.states = states
        self.start = start
        """The input position of the last committed checkpoint."""
        self.policy_version = ""
        self.committed_at: float | None = None
        """When the last checkpoint was committed, in epoch seconds."""

    def adopt_policy(self, policy: Policy) -> None:
        self.policy_version = policy.version

    def check(self, positions: Mapping[str, int]) -> None:
        """The state store was restored to the group's committed offset before this."""

    def batch(self, tracking: Tracking, effects: BatchEffects, start: int) -> None:
        """Nothing is sent per batch: a transaction is open only while a checkpoint is written."""

    def checkpoint(self, since: Mapping[str, SinceCheckpoint], times: Mapping[str, PartitionTime],
                   batches: list[StateBatch]) -> None:
        (name, changes), = since.items()
        end = changes.effects.tracking.notification_id
        producer, place = self.producer, self.place
        checkpoint = (CHECKPOINT_HEADER, checkpoint_id(name, self.start, end))
        try:
            producer.begin_transaction()
            self._send_lifecycle_events(changes.effects, checkpoint)
            for letter in changes.effects.dead_letters:
                producer.send(DEAD_LETTER_TOPIC, letter.payload, headers=[*_connect_headers(letter), checkpoint])
            meta = self._send_changelog(name, changes, times[name], end)
            for chunk, place_of in chunks(encode_effects(changes.effects, self.start, self.policy_version)):
                producer.send(place.projections, chunk, partition=place.topic_partition.partition,
                              headers=[checkpoint, (CHUNK_HEADER, place_of)])
            producer.flush(timeout=COMMIT_TIMEOUT_S)
            offsets = {place.topic_partition: OffsetAndMetadata(end, "", -1)}
            self._wait(producer._transaction_manager.send_offsets_to_transaction(offsets, self.group_metadata()))
            self._wait(producer._transaction_manager.begin_commit())
            mark = meta.get(timeout=COMMIT_TIMEOUT_S).offset + 1
        except (KafkaError, PartitionLost) as error:
            raise PartitionLost(f"{name}'s checkpoint at position {end} was not committed ({error!r}): the "
                                "partition moved to another member, or the broker did not answer") from error
        self.start, self.committed_at = end, time.time()
        if self.say is not None:
            self.say(f"committed {name} up to position {end} ({len(changes.effects.lifecycle_events)} lifecycle "
                     f"events, {len(changes.changed)} states)")
        for batch in batches:
            batch.marks[mark_name(place.changelog, place.topic_partition.partition)] = mark

    def _send_lifecycle_events(self, effects: BatchEffects, checkpoint: tuple[str, bytes]) -> None:
        send = self.producer.send
        for (_, event, _), payload in zip(effects.lifecycle_events, effects.payloads, strict=True):
            send(CUSTOMER_LIFECYCLE, payload, key=event.customer_id.encode(),
                 headers=[*record_headers.headers(CUSTOMER_LIFECYCLE, event), checkpoint],
                 timestamp_ms=record_headers.timestamp_ms(event))

    def _send_changelog(self, name: str, changes: SinceCheckpoint, times: PartitionTime, end: int):  # type: ignore[no-untyped-def]
        """The changed states, then the meta record; the meta record's send future."""
        send, topic, partition = self.producer.send, self.place.changelog, self.place.topic_partition.partition
        for state in changes.changed.values():
            send(topic, encode_state(state), key=state.customer_id.encode(), partition=partition)
        held = []
        for record in times.held:
            waited = changes.held.get(record.seq)
            raw = waited[1] if waited is not None else self.states.held_bytes(name, record.seq)
            held.append((record.seq, record.at, record.kind, record.customer, raw))
        meta = CheckpointMeta(self.start, end, times.state(), held, len(changes.changed))
        return send(topic, encode_meta(meta), key=META_KEY, partition=partition)

    def _wait(self, result) -> None:  # type: ignore[no-untyped-def]
        # kafka-python's own commit waits without end, and a broker may never answer a
        # fenced producer (tansu drops its connection; the client retries forever).
        self.producer._sender.wakeup()
        if not result.wait(timeout_ms=COMMIT_TIMEOUT_S * 1000):
            raise PartitionLost(f"no answer in {COMMIT_TIMEOUT_S:.0f} s")


def _connect_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    """Kafka Connect's dead-letter headers, and the engine's kind and the record's size."""
    topic, _, partition = letter.partition.rpartition(":")
    return [
        ("__connect.errors.topic", topic.encode()),
        ("__connect.errors.partition", partition.encode()),
        ("__connect.errors.offset", str(letter.position - 1).encode()),
        ("__connect.errors.exception.class.name", letter.kind.encode()),
        ("__connect.errors.exception.message", letter.reason.encode()),
        ("lifecycle.dead_letter.bytes", str(letter.payload_bytes).encode()),
    ]
