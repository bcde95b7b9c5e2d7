"""The lifecycle processor: reads the log, runs the lifecycle engine, commits per batch.

Exactly once with respect to the input log, in two stores, in this order:
1. the lifecycle events a batch caused go to the `customer-lifecycle` log (an
   eventsourcing process recorder) with the input position after the batch, in one
   transaction;
2. the batch's effects on the DuckDB projections go there with the same position, in
   one transaction.
After a crash between the two, the batch is processed again from the projections'
position; the derivation is deterministic, so it causes the same lifecycle events, and
those already recorded (by position) are not recorded again. Records that are not
valid events become dead letters in the same DuckDB transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from consumers.errors import LifecycleError
from consumers.event_log import EventLog, RecordBatch
from consumers.sqlite_event_log import SQLiteEventLog
from lifecycle.deadlines import DeadlineQueue
from lifecycle.engine import LifecycleEngine
from lifecycle.state import CustomerState, epoch_seconds
from projections.dead_letters import DeadLetter
from projections.profiles import FIELDS as PROFILE_FIELDS
from projections.projection_store import BatchEffects, DuckDBProjectionStore
from schemas import Clock, CustomerErased, InvalidEvent, ProfileUpdated, decode_event, encode_event
from schemas.events import AnyCustomerEvent


@dataclass(frozen=True)
class ProcessReport:
    """What one run of the processor did."""

    events: int
    dead_letters: int
    lifecycle_events: int
    batches: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


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
        store.adopt_policy(engine.policy)
        self._load()

    def _load(self) -> None:
        self.states, self.partition_of = self.store.load_states()
        self.clocks = self.store.load_clocks()
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

    def run_once(self, on_commit: Callable[[RecordBatch], None] | None = None) -> ProcessReport:
        """Process everything on the log past the recorded positions, then return.

        `on_commit` is told of each batch once it is committed (for progress output).
        """
        started = time.perf_counter()
        events = dead = derived = batches = 0
        for batch in self.log.read(self.store.position_of, self.batch_size):
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
            batches += 1
            if on_commit is not None:
                on_commit(batch)
        return ProcessReport(events, dead, derived, batches, time.perf_counter() - started)

    def _commit(self, effects: BatchEffects) -> None:
        tracking = effects.tracking
        recorded = self.lifecycle_log.recorded_position(tracking.application_name)
        if recorded is None or recorded < tracking.notification_id:
            fresh = [e for position, e in effects.lifecycle_events if recorded is None or position > recorded]
            self.lifecycle_log.record([encode_event(e) for e in fresh], tracking)
        self.store.commit(effects)

    def process(self, batch: RecordBatch) -> BatchEffects:
        """Run one batch through the engine; return what changed, to be committed."""
        partition = batch.tracking.application_name
        effects = BatchEffects(batch.tracking)
        queue = self.queues.setdefault(partition, DeadlineQueue())
        changed: dict[str, CustomerState] = {}
        derived = effects.lifecycle_events
        for raw, position in zip(batch.values, batch.positions):
            try:
                event = decode_event(raw)
            except InvalidEvent as error:
                effects.dead_letters.append(DeadLetter(partition, position, str(error), bytes(raw)))
                continue
            if type(event) is Clock:
                at = epoch_seconds(event.occurred_at)
                if at > self.clocks.get(partition, at - 1):
                    self.clocks[partition] = effects.clock_at = at
                for state in queue.due(at, self.states):
                    derived.extend((position, e) for e in self.engine.on_clock(state, event))
                    queue.push(state)
                    changed[state.customer_id] = state
                continue
            state = self._state(event.customer_id, partition)
            deadline = state.next_deadline
            derived.extend((position, e) for e in self.engine.on_event(state, event))
            if state.next_deadline != deadline:
                queue.push(state)
            changed[event.customer_id] = state
            self._personal_data(event, effects)
        effects.states = list(changed.values())
        effects.partitions = {customer_id: self.partition_of[customer_id] for customer_id in changed}
        return effects

    def _state(self, customer_id: str, partition: str) -> CustomerState:
        """The customer's state, with their time moved to the partition's latest clock.

        A clock reaches every customer of its partition; for one whose deadline it has
        not passed it changes only their time, so that is done here, when they are next
        seen, instead of visiting every customer at every clock.
        """
        state = self.states.get(customer_id)
        if state is None:
            state = self.states[customer_id] = CustomerState(customer_id=customer_id)
            self.partition_of[customer_id] = partition
        clock = self.clocks.get(partition)
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
