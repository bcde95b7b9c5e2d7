"""The lifecycle processor: reads the log, runs the lifecycle engine, commits per batch.

Exactly once with respect to the input log, in two stores, in this order:
1. the lifecycle events a batch caused go to the `customer-lifecycle` log (an
   eventsourcing process recorder) with the input position after the batch, in one
   transaction;
2. the batch's effects on the DuckDB projections go there with the same position, in
   one transaction.
Both are built before either is written, so a batch whose data cannot be stored
records nothing. After a crash between the two, the batch is processed again from the
projections' position; the derivation is deterministic, so it causes the same
lifecycle events, and those already recorded (by position) are not recorded again.

No record stops the engine. A record that is not a valid event, is larger than the
policy allows, is dated implausibly far ahead of its partition's time, or that the
engine cannot fold becomes a dead letter with its reason, in the same DuckDB
transaction as its batch; every record read is either processed or dead-lettered.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field

from consumers.errors import LifecycleError
from consumers.event_log import EventLog, RecordBatch
from consumers.sqlite_event_log import SQLiteEventLog
from lifecycle.deadlines import DeadlineQueue
from lifecycle.engine import LifecycleEngine
from lifecycle.errors import FactOutOfRange
from lifecycle.partition_time import PartitionTime
from lifecycle.state import CustomerState, epoch_seconds
from projections.dead_letters import DeadLetter
from projections.profiles import FIELDS as PROFILE_FIELDS
from projections.projection_store import BatchEffects, DuckDBProjectionStore
from schemas import Clock, CustomerErased, InvalidEvent, ProfileUpdated, Purchase, decode_event, encode_event
from schemas.events import AnyCustomerEvent


@dataclass(frozen=True)
class ProcessReport:
    """What one run of the processor did: `events` records were read, of which
    `dead_letters` were refused; `unpriced` counts purchases by currency the policy
    has no rate for (they count no value)."""

    events: int
    dead_letters: int
    lifecycle_events: int
    batches: int
    seconds: float
    unpriced: Counter[str] = field(default_factory=Counter)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


class _FoldFailed(Exception):
    """The engine failed on the record at `index` of a batch: not a rule, a bug or an
    input nobody foresaw. The batch is done again with that record dead-lettered."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(reason)
        self.index = index
        self.reason = reason


def _fold_failed(index: int, error: Exception) -> Exception:
    if isinstance(error, MemoryError):
        return error
    return _FoldFailed(index, f"the engine could not fold this event ({type(error).__name__}: {error})")


class LifecycleProcessor:
    """Derives the lifecycle of the customers of one log into the projections."""

    def __init__(
        self,
        log: EventLog,
        store: DuckDBProjectionStore,
        lifecycle_log: SQLiteEventLog,
        engine: LifecycleEngine,
        batch_size: int = 20_000,
    ) -> None:
        self.log = log
        self.store = store
        self.lifecycle_log = lifecycle_log
        self.engine = engine
        self.batch_size = batch_size
        self._unpriced: Counter[str] = Counter()
        store.adopt_policy(engine.policy)
        self._load()

    def _load(self) -> None:
        """The committed states, partition times and deadline queues: where the log's
        recorded positions stand."""
        self.states, self.partition_of = self.store.load_states()
        policy = self.engine.policy
        self.times = {p: PartitionTime(policy, *times) for p, times in self.store.load_partition_times().items()}
        self.queues: dict[str, DeadlineQueue] = {}
        by_partition: dict[str, list[CustomerState]] = {}
        for customer_id, state in self.states.items():
            by_partition.setdefault(self.partition_of[customer_id], []).append(state)
        for partition, states in by_partition.items():
            self.queues[partition] = DeadlineQueue(states)
        self._check_positions()

    def _check_positions(self) -> None:
        for partition, position in self.store.recorder.positions().items():
            recorded = self.lifecycle_log.recorded_position(partition) or 0
            if recorded < position:
                msg = (
                    f"the lifecycle log {self.lifecycle_log.path} is behind the projections "
                    f"for {partition} ({recorded} < {position}): it was removed or replaced. "
                    "Remove the projections (views.duckdb) too, to derive both again from the start."
                )
                raise LifecycleError(msg)

    def run_once(
        self,
        on_commit: Callable[[RecordBatch], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> ProcessReport:
        """Process everything on the log past the recorded positions, then return; or
        sooner, after the first batch committed once `should_stop()` is true.

        `on_commit` is told of each batch once it is committed (for progress output).
        """
        started = time.perf_counter()
        events = dead = derived = batches = 0
        unpriced: Counter[str] = Counter()
        with closing(self.log.read(self.store.position_of, self.batch_size)) as reading:
            for batch in reading:
                effects = self.process(batch)
                try:
                    self._commit(effects)
                except BaseException:
                    # The in-memory states ran ahead of what was committed.
                    self._load()
                    raise
                events += len(batch.values)
                dead += len(effects.dead_letters)
                derived += len(effects.lifecycle_events)
                unpriced.update(self._unpriced)
                batches += 1
                if on_commit is not None:
                    on_commit(batch)
                if should_stop is not None and should_stop():
                    break
        return ProcessReport(events, dead, derived, batches, time.perf_counter() - started, unpriced)

    def _commit(self, effects: BatchEffects) -> None:
        tracking = effects.tracking
        prepared = self.store.prepare(effects)
        recorded = self.lifecycle_log.recorded_position(tracking.application_name)
        if recorded is None or recorded < tracking.notification_id:
            fresh = [encode_event(e) for position, e in effects.lifecycle_events if recorded is None or position > recorded]
            self.lifecycle_log.record(fresh, tracking)
        self.store.write(prepared)

    def process(self, batch: RecordBatch) -> BatchEffects:
        """Run one batch through the engine; return what changed, to be committed.

        The batch must follow the last committed one: if the engine fails on a record,
        the committed states are loaded again and the batch is done again with that
        record dead-lettered.
        """
        refused: dict[int, str] = {}
        while True:
            try:
                return self._process(batch, refused)
            except _FoldFailed as failed:
                refused[failed.index] = failed.reason
                self._load()

    def _process(self, batch: RecordBatch, refused: dict[int, str]) -> BatchEffects:
        partition = batch.tracking.application_name
        effects = BatchEffects(batch.tracking)
        times = self.times.get(partition)
        if times is None:
            times = self.times[partition] = PartitionTime(self.engine.policy)
        changed: dict[str, CustomerState] = {}
        self._unpriced = Counter()
        limit = self.engine.policy.input.max_event_bytes
        for index, (raw, position) in enumerate(zip(batch.values, batch.positions)):
            reason = refused.get(index)
            if reason is None:
                if len(raw) > limit:
                    reason = f"{len(raw):,} bytes, over the policy's limit of {limit:,} ([input] max_event_bytes)"
                else:
                    reason = self._take(raw, position, index, partition, times, effects, changed)
            if reason is not None:
                effects.dead_letters.append(DeadLetter(partition, position, reason, bytes(raw)[:limit], len(raw)))
        effects.states = list(changed.values())
        effects.partitions = {customer_id: self.partition_of[customer_id] for customer_id in changed}
        effects.partition_times = (times.event_time, times.clock_at)
        return effects

    def _take(
        self,
        raw: bytes,
        position: int,
        index: int,
        partition: str,
        times: PartitionTime,
        effects: BatchEffects,
        changed: dict[str, CustomerState],
    ) -> str | None:
        """Fold one record in; or why it is refused."""
        try:
            event = decode_event(raw)
        except InvalidEvent as error:
            return str(error)
        at = epoch_seconds(event.occurred_at)
        if type(event) is Clock:
            try:
                return self._clock(event, at, position, partition, times, effects, changed)
            except Exception as error:
                raise _fold_failed(index, error) from error
        reason = times.event_refusal(at)
        if reason is not None:
            return reason
        state = self._state(event.customer_id, partition, times)
        deadline = state.next_deadline
        try:
            derived = self.engine.on_event(state, event, at)
        except FactOutOfRange as error:
            return str(error)
        except Exception as error:
            raise _fold_failed(index, error) from error
        times.saw_event(at)
        effects.lifecycle_events.extend((position, e) for e in derived)
        if state.next_deadline != deadline:
            self.queues.setdefault(partition, DeadlineQueue()).push(state)
        changed[event.customer_id] = state
        if type(event) is Purchase and event.currency not in self.engine.policy.value.rates_to_base:
            self._unpriced[event.currency] += 1
        self._personal_data(event, effects)
        return None

    def _clock(
        self,
        clock: Clock,
        at: int,
        position: int,
        partition: str,
        times: PartitionTime,
        effects: BatchEffects,
        changed: dict[str, CustomerState],
    ) -> str | None:
        reason, moves = times.take_clock(at)
        if not moves:
            return reason
        queue = self.queues.setdefault(partition, DeadlineQueue())
        derived = effects.lifecycle_events
        for state in queue.due(at, self.states):
            derived.extend((position, e) for e in self.engine.on_clock(state, clock))
            queue.push(state)
            changed[state.customer_id] = state
        return None

    def _state(self, customer_id: str, partition: str, times: PartitionTime) -> CustomerState:
        """The customer's state, with their time moved to the partition's latest clock.

        A clock reaches every customer of its partition; for one whose deadline it has
        not passed it changes only their time, so that is done here, when they are next
        seen, instead of visiting every customer at every clock.
        """
        state = self.states.get(customer_id)
        if state is None:
            state = self.states[customer_id] = CustomerState(customer_id=customer_id)
            self.partition_of[customer_id] = partition
        clock = times.clock_at
        if clock is not None and clock > state.now:
            state.now = clock
        return state

    @staticmethod
    def _personal_data(event: AnyCustomerEvent, effects: BatchEffects) -> None:
        kind = type(event)
        if kind is ProfileUpdated:
            row = effects.profile_updates.setdefault(event.customer_id, {})
            for name in PROFILE_FIELDS:
                value = getattr(event, name)
                if value is not None:
                    row[name] = value
            row["updated_at"] = event.occurred_at
        elif kind is CustomerErased:
            effects.erased.append(event.customer_id)
            effects.profile_updates.pop(event.customer_id, None)
