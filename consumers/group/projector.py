"""The projector: `lifecycle project --kafka ... --group NAME` builds the analysts'
projections of a consumer group (the DuckDB tables and views a single engine writes)
in its own home, from the group's projection topic (consumers/group/projection_topic.py).

With several members no one of them owns a DuckDB file: each commits what its
checkpoints change in the projections to the projection topic, inside the checkpoint's
transaction. The projector reads every partition of it, `read_committed`, and writes
each checkpoint with `DuckDBProjectionStore.prepare` and `write`, as a single engine
does, in one DuckDB transaction together with the checkpoint's input position and the
projection topic's offset after it. It reads on from that offset after a restart, and
skips what the projections hold: each checkpoint is applied exactly once.

A checkpoint is applied once the group's committed offset of its input partition has
reached its end. On Kafka a `read_committed` reader sees only committed checkpoints
anyway; a test broker (tansu) also shows those of aborted transactions, and this keeps
a projector from running ahead of the group there. Such a checkpoint, of a member
fenced while writing it, is a copy of what its successor derived again from the same
checkpoint (the derivation is deterministic; consumers/group/changelog.py), so
applying it then changes nothing the successor's would not.
"""

from __future__ import annotations

import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from eventsourcing.persistence import Tracking
from kafka import KafkaConsumer, TopicPartition

from consumers.errors import LifecycleError
from consumers.group.projection_topic import ChunkAssembler, projections_topic
from consumers.logs.event_log import CUSTOMER_EVENTS
from consumers.logs.kafka_event_log import drain
from lifecycle.policy import Policy
from projections.stores.effects_codec import CheckpointEffects, batch_effects, decode_effects
from projections.stores.projection_store import DuckDBProjectionStore

_READ_BATCH = 2_000


class ProjectorError(LifecycleError):
    """The projection topic cannot be projected as it stands."""


class NoProjectionTopic(ProjectorError):
    """The group's projection topic does not exist (yet): no member has run."""


@dataclass
class ProjectReport:
    """What a projector run did."""

    applied: int = 0
    """Checkpoints written to the projections."""
    skipped: int = 0
    """Checkpoints the projections held already (read again after a restart, or copies)."""
    waiting: int = 0
    """Checkpoints read whose end the group has not committed yet."""
    lifecycle_events: int = 0
    """Lifecycle events written to `lifecycle_transitions`."""
    seconds: float = 0.0


class GroupProjector:
    """Projects one group's projection topic into `store` (see the module text)."""

    def __init__(self, consumer: KafkaConsumer, offsets: KafkaConsumer, group: str, store: DuckDBProjectionStore,
                 policy: Policy) -> None:
        """`consumer` reads the topic (no group); `offsets` asks the group's committed offsets."""
        self.consumer, self.offsets, self.store = consumer, offsets, store
        self.topic = projections_topic(group)
        self.group = group
        partitions = consumer.partitions_for_topic(self.topic)
        if not partitions:
            raise NoProjectionTopic(f"there is no topic {self.topic}: no member of the group {group} has run yet "
                                 f"(start `lifecycle process --kafka ... --group {group}` first), or the group's "
                                 "name is another")
        store.adopt_policy(policy)
        self.policy = policy
        self.parts = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self.assemblers = {tp.partition: ChunkAssembler() for tp in self.parts}
        self.pending: dict[int, deque[tuple[CheckpointEffects, int]]] = {tp.partition: deque() for tp in self.parts}
        consumer.assign(self.parts)
        for tp in self.parts:
            consumer.seek(tp, store.position_of(self._name(tp.partition)) or 0)

    def _name(self, partition: int) -> str:
        return f"{self.topic}:{partition}"

    def step(self, report: ProjectReport, should_stop: Callable[[], bool]) -> None:
        """Project what the topic holds now, adding to `report`."""
        started = time.monotonic()
        self._read(report, should_stop)
        self._apply_ready(report)
        report.waiting = sum(len(queue) for queue in self.pending.values())
        report.seconds += time.monotonic() - started

    def _read(self, report: ProjectReport, should_stop: Callable[[], bool]) -> None:
        starts = {tp: self.consumer.position(tp) for tp in self.parts}
        for tp, records, _ in drain(self.consumer, starts, _READ_BATCH):
            assembler, queue = self.assemblers[tp.partition], self.pending[tp.partition]
            for record in records:
                try:
                    whole = assembler.add(record.value, record.headers)
                except zlib.error as error:
                    raise self._unreadable(tp.partition, record.offset, error) from error
                if whole is not None:
                    queue.append((self._decoded(tp.partition, record.offset, whole[1]), record.offset + 1))
            self._apply_ready(report)
            if should_stop():
                return

    def _decoded(self, partition: int, offset: int, data: bytes) -> CheckpointEffects:
        try:
            checkpoint = decode_effects(data)
        except ValueError as error:
            raise self._unreadable(partition, offset, error) from error
        if checkpoint.policy_version != self.policy.version:
            raise ProjectorError(f"the group {self.group} decided {checkpoint.partition} up to position "
                                 f"{checkpoint.end} under policy version {checkpoint.policy_version!r}, but this "
                                 f"projector was given version {self.policy.version!r}: give it the members' policy "
                                 "file (--policy)")
        return checkpoint

    def _unreadable(self, partition: int, offset: int, error: Exception) -> ProjectorError:
        return ProjectorError(f"{self._name(partition)} at offset {offset} holds a checkpoint this projector cannot "
                              f"read ({error}): was it written by a newer engine? Run the same version as the "
                              "group's members")

    def _apply_ready(self, report: ProjectReport) -> None:
        """Apply, in order, the checkpoints read whose end the group has committed."""
        waiting = [partition for partition, queue in self.pending.items() if queue]
        for partition in waiting:
            committed = self.offsets.committed(TopicPartition(CUSTOMER_EVENTS, partition)) or 0
            queue = self.pending[partition]
            while queue and queue[0][0].end <= committed:
                checkpoint, offset = queue.popleft()
                self._apply(checkpoint, Tracking(self._name(partition), offset), report)

    def _apply(self, checkpoint: CheckpointEffects, read: Tracking, report: ProjectReport) -> None:
        """Write `checkpoint` with `read`, the topic's offset after it."""
        held = self.store.position_of(checkpoint.partition)
        if held is not None and held >= checkpoint.end:
            report.skipped += 1
            return
        if (held or 0) < checkpoint.start:
            raise ProjectorError(f"the projections hold {checkpoint.partition} up to position {held or 0}, but the "
                                 f"next checkpoint in {self.topic} starts at {checkpoint.start}: the topic lost "
                                 "records (was it deleted or recreated?). Project again into an empty home, or run "
                                 "a single engine's `lifecycle replay`")
        prepared = self.store.prepare(batch_effects(checkpoint), written=held)
        self.store.write(prepared, also=read)
        report.applied += 1
        report.lifecycle_events += 0 if prepared.transitions is None else prepared.transitions.num_rows
