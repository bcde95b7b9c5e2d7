"""A member of a consumer group: `GroupMember` runs `lifecycle process --group NAME`.

The member subscribes to `customer-events` in the group; Kafka assigns it partitions.
For each, a task holds the partition's state store (`HOME/group-NAME/<partition>/`),
its transactional producer, the records polled since its last checkpoint and a
`LifecycleProcessor` over them. A partition newly assigned is opened before its
records are processed: its producer is initialised first (which fences any earlier
owner and ends its open transaction), then its store is restored from the changelog
up to the group's committed offset (consumers/group/changelog.py). A partition revoked
is checkpointed (committed) and closed; one lost (this member was evicted, say after
a pause) is closed without committing anything. The member says where it stands on
the group's members topic (consumers/group/member_reports.py) for `lifecycle status`.

The restore runs between polls, so the consumer's heartbeats go on while it runs, but a
restore longer than the poll interval (`max_poll_interval_ms`, set to 10 minutes)
would make the group take the partitions away; a member reuses its store when it is
current, and reads the changelog on from where its store stands otherwise.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from eventsourcing.persistence import Tracking
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from consumers.group.changelog import changelog_topic, restore_partition
from consumers.group.member_reports import MemberReporter, members_topic
from consumers.group.polled_log import PolledLog
from consumers.group.projection_topic import projections_topic
from consumers.group.transactional_outputs import (
    DEAD_LETTER_TOPIC,
    PartitionLost,
    PartitionPlace,
    TransactionalOutputs,
)
from consumers.logs.event_log import CUSTOMER_EVENTS, CUSTOMER_LIFECYCLE, RecordBatch
from consumers.logs.kafka_event_log import KafkaEventLog, KafkaUnavailable
from consumers.privacy.key_store import destroy_keys
from consumers.processing.checkpoint import CheckpointPolicy
from consumers.processing.engine_metrics import EngineMetrics, both
from consumers.processing.engine_session import due_clocks
from consumers.processing.process_report import ProcessReport
from consumers.processing.processor import LifecycleProcessor
from consumers.settings import Settings
from lifecycle.engine import LifecycleEngine
from projections.stores.state_store import RocksDBStateStore
from schemas import encode_event

DEFAULT_GROUP = "lifecycle"
"""The group `process --group` joins when given no name."""
_POLL_MS = 200
_MAX_POLL_INTERVAL_MS = 600_000


@dataclass(frozen=True)
class GroupSettings:
    """How a member takes part in its group."""

    name: str = DEFAULT_GROUP
    session_timeout_s: float = 10.0
    """How long the group waits for a silent member before moving its partitions."""
    clock_every_s: float = 3600.0
    """How often a member appends a clock event dated now (0: never), as a live engine does."""


class _Task:
    """One assigned partition of this member (see the module text)."""

    def __init__(self, processor: LifecycleProcessor, log: PolledLog, producer: KafkaProducer,
                 states: RocksDBStateStore, outputs: TransactionalOutputs) -> None:
        self.processor, self.log, self.producer, self.states = processor, log, producer, states
        self.outputs = outputs

    def feed(self, records: list, end: int | None) -> None:  # type: ignore[type-arg]
        """Records polled for the partition; those it has already (fetched before a seek) are dropped."""
        taken = self.log.last or self.states.positions().get(self.log.name, 0)
        records = [record for record in records if record.offset >= taken]
        if not records:
            return
        positions = [record.offset + 1 for record in records]
        values = [record.value if record.value is not None else b"" for record in records]
        self.log.add(RecordBatch(Tracking(self.log.name, positions[-1]), values, positions, end))

    def step(self, on_commit: Callable[[RecordBatch], None] | None) -> ProcessReport:
        """Process what was polled; a checkpoint when due."""
        report = self.processor.run_once(on_commit, checkpoint=False)
        self._trim()
        return report

    def waiting(self) -> int:
        return sum(len(times.held) for times in self.processor.times.values())

    def finish(self) -> None:
        """A checkpoint of everything processed (the partition is given up, or the member stops)."""
        self.processor.checkpoint()
        self._trim()

    def _trim(self) -> None:
        written = self.states.positions().get(self.log.name)
        if written is not None:
            self.log.checkpointed(written)

    def close(self) -> None:
        try:
            self.producer.close(timeout=0)
        except KafkaError:
            # A fenced producer still holds records no broker will take; kafka-python's
            # close flushes first and gives up on them with an error.
            self.producer._sender.force_close()
        self.states.close()


class GroupMember(ConsumerRebalanceListener):
    """One member of the group (see the module text); `run` until `should_stop()`."""

    def __init__(self, settings: Settings, group: GroupSettings, engine: LifecycleEngine, batch_size: int,
                 checkpoints: CheckpointPolicy, say: Callable[[str], None], verbose: bool = False,
                 metrics: EngineMetrics | None = None) -> None:
        """`say` is told what happens to partitions (and, `verbose`, each batch and
        commit); `metrics`, of each batch and each partition's runs."""
        assert settings.kafka is not None, "a consumer group needs Kafka"
        self.settings, self.group, self.engine = settings, group, engine
        self.batch_size, self.checkpoints, self.say = batch_size, checkpoints, say
        self.verbose, self.metrics = verbose, metrics
        self.on_commit = both(self._told if verbose else None, metrics and metrics.batch_committed)
        self.directory = settings.home / f"group-{group.name}"
        self.changelog = changelog_topic(group.name)
        self.projections = projections_topic(group.name)
        self.tasks: dict[int, _Task] = {}
        self._assigned: set[int] = set()
        self.report = ProcessReport(0, 0, 0, 0, 0.0)
        self.reporter: MemberReporter | None = None
        self.last_commit: float | None = None

    def run(self, should_stop: Callable[[], bool]) -> ProcessReport:
        events = self._ensure_topics()
        consumer = self._consumer(group_id=self.group.name)
        consumer.subscribe([CUSTOMER_EVENTS], listener=self)
        reports = self._connect(KafkaProducer, acks=1, max_block_ms=5_000)
        self.reporter = MemberReporter(reports, self.group.name)
        last_clock = time.monotonic()
        try:
            while not should_stop():
                if self.group.clock_every_s and time.monotonic() - last_clock >= self.group.clock_every_s:
                    self._tick(events)
                    last_clock = time.monotonic()
                polled = consumer.poll(timeout_ms=_POLL_MS, max_records=self.batch_size)
                opened = self._open_assigned(consumer)
                if opened or self.reporter.due():
                    self._report()
                for tp, records in polled.items():
                    task = self.tasks.get(tp.partition)
                    # What was fetched before a partition was opened is fetched again from
                    # where its store was restored to (`_open` seeks there).
                    if task is not None and records and tp.partition not in opened:
                        task.feed(records, consumer.highwater(tp))
                for partition in list(self.tasks):
                    self._step(partition)
                if self.metrics is not None:
                    self.metrics.partitions.set(len(self.tasks))
        finally:
            for partition in list(self.tasks):
                self._give_up(partition, commit=True)
            self._report(stopped=True)
            reports.close(timeout=5)
            consumer.close(autocommit=False)
            events.close()
        return self.report

    def _report(self, restoring: dict[int, tuple[int, int]] | None = None, stopped: bool = False) -> None:
        """Tell the group's members topic where this member stands (consumers/group/member_reports.py)."""
        if self.reporter is None:
            return
        commits = [task.outputs.committed_at for task in self.tasks.values() if task.outputs.committed_at]
        self.last_commit = max([*commits, self.last_commit or 0.0]) or None
        self.reporter.report(sorted(self.tasks), restoring, self.last_commit, stopped)

    def _tick(self, events: KafkaEventLog) -> None:
        """A clock dated now to every partition, moved from this member's partitions'
        times (consumers/processing/engine_session.py); another member's clock of the
        same moment has the same id and is skipped, or ignored by the engine if both
        race to append it."""
        times = [times for task in self.tasks.values() for times in task.processor.times.values()]
        clocks = due_clocks(self.engine.policy, times, None, "lifecycle-process")
        for clock in clocks:  # one append a clock, as `EngineSession.tick` says why
            events.append([(clock, encode_event(clock))])

    # -- rebalances: called by the consumer within poll() -------------------------------

    def on_partitions_revoked(self, revoked) -> None:  # type: ignore[no-untyped-def]
        for tp in revoked:
            self._assigned.discard(tp.partition)
            if tp.partition in self.tasks:
                self._give_up(tp.partition, commit=True)
        self._report()

    def on_partitions_lost(self, lost) -> None:  # type: ignore[no-untyped-def]
        for tp in lost:
            self._assigned.discard(tp.partition)
            if tp.partition in self.tasks:
                self.say(f"lost {CUSTOMER_EVENTS}:{tp.partition}: this member was evicted from the group; "
                         "nothing since its last checkpoint is committed (its new owner derives it again)")
                self._give_up(tp.partition, commit=False)
        self._report()

    def on_partitions_assigned(self, assigned) -> None:  # type: ignore[no-untyped-def]
        self._assigned = {tp.partition for tp in assigned}
        if assigned:
            self.say(f"assigned {CUSTOMER_EVENTS} partitions {sorted(self._assigned)}")

    # -- tasks ------------------------------------------------------------------------

    def _told(self, batch: RecordBatch) -> None:
        self.say(f"processed {len(batch.values)} records of {batch.tracking.application_name} up to position "
                 f"{batch.tracking.notification_id} (committed at its next checkpoint)")

    def _step(self, partition: int) -> None:
        if self.metrics is not None:
            self.metrics.run_started()
        try:
            report = self.tasks[partition].step(self.on_commit)
            self.report = self.report + report
            if self.metrics is not None:
                self.metrics.run_done(report, sum(task.waiting() for task in self.tasks.values()))
        except PartitionLost as lost:
            self.say(f"fenced: {lost}")
            self._give_up(partition, commit=False)

    def _give_up(self, partition: int, commit: bool) -> None:
        task = self.tasks.pop(partition)
        try:
            if commit:
                task.finish()
        except PartitionLost as lost:
            self.say(f"fenced: {lost}")
        finally:
            task.close()

    def _open_assigned(self, consumer: KafkaConsumer) -> set[int]:
        """Open the partitions assigned and not open yet; which were opened."""
        opened = set()
        for partition in sorted(self._assigned - set(self.tasks)):
            self.tasks[partition] = self._open(TopicPartition(CUSTOMER_EVENTS, partition), consumer)
            opened.add(partition)
        return opened

    def _open(self, tp: TopicPartition, consumer: KafkaConsumer) -> _Task:
        """The partition's producer first (fencing any earlier owner, so that the group's
        committed offset cannot move any more), then its store restored to that offset,
        then its processor, and the consumer set to read on from there."""
        name = f"{tp.topic}:{tp.partition}"
        producer = self._producer(f"lifecycle-{self.group.name}-{tp.topic}-{tp.partition}")
        committed = consumer.committed(tp) or 0
        directory = self.directory / f"{tp.topic}-{tp.partition}"
        states = self._store(directory, name, committed)
        reader = self._consumer(group_id=None)
        try:
            restored = restore_partition(reader, self.changelog, tp.partition, name, states, committed, self.say,
                                         lambda read, of: self._report({tp.partition: (read, of)}))
        finally:
            reader.close()
        if self.metrics is not None:
            self.metrics.restored(restored.states, restored.records, restored.seconds)
        if restored.records:
            self.say(f"restored {restored.states:,} states of {name} from {self.changelog} ({restored.records:,} "
                     f"records read in {restored.seconds:.1f} s, {restored.records / max(restored.seconds, 1e-3):,.0f}"
                     " records/s)")
        place = PartitionPlace(self.group.name, tp, self.changelog, self.projections)
        outputs = TransactionalOutputs(producer, place, consumer.group_metadata, states, committed,
                                       self.say if self.verbose else None)
        log = PolledLog(name)
        processor = LifecycleProcessor(log, outputs, states, self.engine, self.batch_size, self.checkpoints)
        processor.on_erased = partial(destroy_keys, self.settings)
        consumer.seek(tp, committed)
        return _Task(processor, log, producer, states, outputs)

    def _store(self, directory: Path, name: str, committed: int) -> RocksDBStateStore:
        """The partition's store; one ahead of the group's committed offset (the offsets
        were reset by hand) is dropped and restored whole."""
        states = RocksDBStateStore(directory, self.settings.state_cache)
        if states.positions().get(name, 0) > committed:
            states.close()
            shutil.rmtree(directory)
            self.say(f"the store of {name} was ahead of the group's committed offset {committed}: restored anew")
            states = RocksDBStateStore(directory, self.settings.state_cache)
        return states

    # -- Kafka clients ----------------------------------------------------------------

    def _ensure_topics(self) -> KafkaEventLog:
        """The input (as `process` makes it when nothing was published yet, and opened for
        the member's clocks), the changelog and the projection topic with as many
        partitions as the input, and the outputs' topics."""
        index = self.directory / "ids"
        events = KafkaEventLog(bootstrap=self.settings.kafka, name=CUSTOMER_EVENTS, index_path=index / "events",  # type: ignore[arg-type]
                               partitions=self.settings.partitions)
        partitions = len(events.partitions())
        for topic, count in ((self.changelog, partitions), (self.projections, partitions),
                             (members_topic(self.group.name), 1),
                             (CUSTOMER_LIFECYCLE, self.settings.partitions),
                             (DEAD_LETTER_TOPIC, self.settings.partitions)):
            KafkaEventLog(bootstrap=self.settings.kafka, name=topic, index_path=index / topic,  # type: ignore[arg-type]
                          partitions=count).close()
        return events

    def _consumer(self, group_id: str | None) -> KafkaConsumer:
        session_ms = int(self.group.session_timeout_s * 1000)
        config = dict(group_id=group_id, enable_auto_commit=False, auto_offset_reset="earliest",
                      isolation_level="read_committed", fetch_max_wait_ms=100,
                      max_partition_fetch_bytes=8 * 1024 * 1024, max_poll_records=self.batch_size)
        if group_id is not None:
            config.update(session_timeout_ms=session_ms, heartbeat_interval_ms=max(500, session_ms // 3),
                          max_poll_interval_ms=_MAX_POLL_INTERVAL_MS)
        return self._connect(KafkaConsumer, **config)

    def _producer(self, transactional_id: str) -> KafkaProducer:
        producer = self._connect(KafkaProducer, transactional_id=transactional_id, acks="all",
                                 enable_idempotence=True, linger_ms=5, batch_size=256 * 1024, max_block_ms=30_000)
        producer.init_transactions()
        return producer

    def _connect(self, client, **config):  # type: ignore[no-untyped-def]
        try:
            return client(bootstrap_servers=self.settings.kafka, client_id=f"lifecycle-{self.group.name}", **config)
        except KafkaError as error:
            raise KafkaUnavailable(f"cannot reach Kafka at {self.settings.kafka} ({error}): is the broker running?") \
                from error
