"""The lifecycle processor: reads the log, runs the lifecycle engine, commits per batch.

Exactly once with respect to the input log, in three stores, in this order, each with
the input position after the batch:
1. the lifecycle events the batch caused go to the `customer-lifecycle` log (an
   eventsourcing process recorder), in one transaction;
2. the batch's rows go to the DuckDB projections, in one transaction;
3. the engine's states, deadline index and partition times go to the state store
   (RocksDB), in one write.
All three are built before any is written, so a batch whose data cannot be stored
records nothing. Reading resumes where the state store stands, which is never past the
others; after a crash the batches in between are derived again (the derivation is
deterministic, so identically), and each store skips what it already holds.

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
from lifecycle.deadlines import DeadlineQueue, due
from lifecycle.engine import LifecycleEngine
from lifecycle.errors import FactOutOfRange
from lifecycle.partition_time import PartitionTime
from lifecycle.state import CustomerState, epoch_seconds
from projections.dead_letters import DeadLetter
from projections.projection_store import BatchEffects, DuckDBProjectionStore
from projections.state_store import RocksDBStateStore, StateBatch
from schemas import Clock, InvalidEvent, Purchase, ValueModelFitted, decode_event, encode_event


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


class _Batch:
    """The customers one batch has touched, and what it changed."""

    def __init__(self, partition: str) -> None:
        self.partition = partition
        self.touched: dict[str, CustomerState] = {}
        self.deadlines_before: dict[str, int | None] = {}
        self.changed: dict[str, CustomerState] = {}
        self.pending = DeadlineQueue()
        self.unpriced: Counter[str] = Counter()


class LifecycleProcessor:
    """Derives the lifecycle of the customers of one log into the projections."""

    def __init__(
        self,
        log: EventLog,
        store: DuckDBProjectionStore,
        lifecycle_log: SQLiteEventLog,
        states: RocksDBStateStore,
        engine: LifecycleEngine,
        batch_size: int = 20_000,
    ) -> None:
        self.log = log
        self.store = store
        self.lifecycle_log = lifecycle_log
        self.states = states
        self.engine = engine
        self.batch_size = batch_size
        store.adopt_policy(engine.policy)
        self._batch = _Batch("")
        self._load()

    def _load(self) -> None:
        """Where the state store stands: its positions and partition times."""
        self.positions = self.states.positions()
        policy = self.engine.policy
        written = self.states.partition_times()
        self.times = {p: PartitionTime(policy, *times) for p, times in written.items()}
        self._written_clock = {p: clock_at for p, (_, clock_at) in written.items()}
        self._check_positions()

    def _check_positions(self) -> None:
        views = self.store.positions()
        for partition, position in self.positions.items():
            if views.get(partition, 0) < position:
                msg = (
                    f"the projections are behind the engine's states for {partition} "
                    f"({views.get(partition, 0)} < {position}): they were removed or replaced. "
                    "Run `lifecycle replay` to derive everything again from the log."
                )
                raise LifecycleError(msg)
        for partition, position in views.items():
            recorded = self.lifecycle_log.recorded_position(partition) or 0
            if recorded < position:
                msg = (
                    f"the lifecycle log {self.lifecycle_log.path} is behind the projections "
                    f"for {partition} ({recorded} < {position}): it was removed or replaced. "
                    "Run `lifecycle replay` to derive everything again from the log."
                )
                raise LifecycleError(msg)

    def position_of(self, application_name: str) -> int | None:
        """Where reading resumes in a partition: where the state store stands."""
        return self.positions.get(application_name)

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
        with closing(self.log.read(self.position_of, self.batch_size)) as reading:
            for batch in reading:
                effects = self.process(batch)
                try:
                    self._commit(effects)
                except BaseException:
                    # The cached states ran ahead of what was written.
                    self._discard()
                    raise
                events += len(batch.values)
                dead += len(effects.dead_letters)
                derived += len(effects.lifecycle_events)
                unpriced.update(self._batch.unpriced)
                batches += 1
                if on_commit is not None:
                    on_commit(batch)
                if should_stop is not None and should_stop():
                    break
        return ProcessReport(events, dead, derived, batches, time.perf_counter() - started, unpriced)

    def _commit(self, effects: BatchEffects) -> None:
        tracking = effects.tracking
        name, position = tracking.application_name, tracking.notification_id
        in_views = self.store.position_of(name)
        prepared = self.store.prepare(effects, written=in_views)
        batch = self._batch
        state_batch = StateBatch(tracking, name, list(batch.changed.values()), batch.deadlines_before,
                                 effects.partition_times or (None, None))
        recorded = self.lifecycle_log.recorded_position(name)
        if recorded is None or recorded < position:
            fresh = [encode_event(e) for at, e in effects.lifecycle_events if recorded is None or at > recorded]
            self.lifecycle_log.record(fresh, tracking)
        if in_views is None or in_views < position:
            self.store.write(prepared)
        self.states.write(state_batch)
        self.positions[name] = position
        self._written_clock[name] = state_batch.partition_times[1]

    def _discard(self) -> None:
        """Forget what the batch in hand changed: states are read again as written."""
        self.states.forget(self._batch.touched)
        self._load()

    def process(self, batch: RecordBatch) -> BatchEffects:
        """Run one batch through the engine; return what changed, to be committed.

        The batch must follow the last committed one: if the engine fails on a record,
        the written states are read again and the batch is done again with that record
        dead-lettered.
        """
        refused: dict[int, str] = {}
        while True:
            try:
                return self._process(batch, refused)
            except _FoldFailed as failed:
                refused[failed.index] = failed.reason
                self._discard()

    def _process(self, records: RecordBatch, refused: dict[int, str]) -> BatchEffects:
        partition = records.tracking.application_name
        effects = BatchEffects(records.tracking)
        times = self.times.get(partition)
        if times is None:
            times = self.times[partition] = PartitionTime(self.engine.policy)
        self._batch = _Batch(partition)
        limit = self.engine.policy.input.max_event_bytes
        for index, (raw, position) in enumerate(zip(records.values, records.positions)):
            if len(raw) > limit:
                reason = f"{len(raw):,} bytes, over the policy's limit of {limit:,} ([input] max_event_bytes)"
            else:
                reason = self._take(raw, position, index, times, effects, refused.get(index))
            if reason is not None:
                effects.dead_letters.append(DeadLetter(partition, position, reason, bytes(raw)[:limit], len(raw)))
        effects.states = list(self._batch.changed.values())
        effects.partition_times = (times.event_time, times.clock_at)
        return effects

    def _take(
        self, raw: bytes, position: int, index: int, times: PartitionTime, effects: BatchEffects, failed: str | None
    ) -> str | None:
        """Fold one record in; or why it is refused. `failed`: the engine failed on this
        record before; it still moves its partition's time, and is refused."""
        try:
            event = decode_event(raw)
        except InvalidEvent as error:
            return str(error)
        if type(event) is ValueModelFitted:
            # A fit moves no one's time: its figures go to the projections (projections/value_estimates.py).
            effects.value_fits.append((position, event))
            return failed
        at = epoch_seconds(event.occurred_at)
        if type(event) is Clock:
            reason, moves = times.take_clock(at)
            if not moves or failed is not None:
                return reason or failed
            try:
                self._clock(event, at, position, effects)
            except Exception as error:
                raise _fold_failed(index, error) from error
            return None
        reason = times.event_refusal(at)
        if reason is not None:
            return reason
        # The partition's time moves with every event the rule takes, whatever the
        # fold makes of it: so it follows from the log alone, as a replay computes it.
        times.saw_event(at)
        if failed is not None:
            return failed
        state = self._touch(event.customer_id, times.clock_at)
        deadline = state.next_deadline
        try:
            derived = self.engine.on_event(state, event, at)
        except FactOutOfRange as error:
            return str(error)
        except Exception as error:
            raise _fold_failed(index, error) from error
        batch = self._batch
        effects.lifecycle_events.extend((position, e) for e in derived)
        if state.next_deadline != deadline:
            batch.pending.push(state)
        batch.changed[event.customer_id] = state
        if type(event) is Purchase and event.currency not in self.engine.policy.value.rates_to_base:
            batch.unpriced[event.currency] += 1
        effects.profiles.take(event)
        effects.movements.take(event, batch.partition, position, self.engine.policy)
        return None

    def _clock(self, clock: Clock, at: int, position: int, effects: BatchEffects) -> None:
        """Decide again the customers of the partition whose deadline the clock has passed."""
        batch = self._batch
        written = self.states.due(batch.partition, self._written_clock.get(batch.partition), at)
        derived = effects.lifecycle_events
        for state in due(written, batch.pending, at, self._due_state):
            derived.extend((position, e) for e in self.engine.on_clock(state, clock))
            batch.pending.push(state)
            batch.changed[state.customer_id] = state

    def _due_state(self, customer_id: str) -> CustomerState:
        return self._touch(customer_id, None)

    def _touch(self, customer_id: str, clock_at: int | None) -> CustomerState:
        """The customer's state, noted as touched by the batch in hand (a new one if
        unknown), with their time moved to the partition's latest clock `clock_at`.

        A clock reaches every customer of its partition; for one whose deadline it has
        not passed it changes only their time, so that is done here, when they are next
        seen, instead of visiting every customer at every clock.
        """
        batch = self._batch
        state = batch.touched.get(customer_id)
        if state is None:
            state = self.states.get(customer_id)
            if state is None:
                state = CustomerState(customer_id=customer_id)
                self.states.add(state)
            batch.touched[customer_id] = state
            batch.deadlines_before[customer_id] = state.next_deadline
        if clock_at is not None and clock_at > state.now:
            state.now = clock_at
        return state
