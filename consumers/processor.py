"""The lifecycle processor: reads the log, folds each customer's events, commits per batch.

Exactly once with respect to the log: the effects of a batch and the position after
it are committed in one DuckDB transaction, and reading resumes from the recorded
position, so a crash anywhere repeats at most an uncommitted batch, never a committed
one. Records that are not valid events become dead letters in the same transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from consumers.event_log import EventLog, RecordBatch
from lifecycle.fold import fold
from lifecycle.state import CustomerState
from projections.dead_letters import DeadLetter
from projections.profiles import FIELDS as PROFILE_FIELDS
from projections.projection_store import BatchEffects, DuckDBProjectionStore
from schemas import Clock, CustomerErased, InvalidEvent, ProfileUpdated, decode_event
from schemas.events import AnyCustomerEvent

@dataclass(frozen=True)
class ProcessReport:
    """What one run of the processor did."""

    events: int
    dead_letters: int
    batches: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


class LifecycleProcessor:
    """Folds the events of one log into the projection store."""

    def __init__(self, log: EventLog, store: DuckDBProjectionStore, batch_size: int = 20_000):
        self.log = log
        self.store = store
        self.batch_size = batch_size
        self.states: dict[str, CustomerState] = store.load_states()

    def run_once(self, on_commit: Callable[[RecordBatch], None] | None = None) -> ProcessReport:
        """Process everything on the log past the recorded positions, then return.

        `on_commit` is told of each batch once it is committed (for progress output).
        """
        started = time.perf_counter()
        events = dead = batches = 0
        for batch in self.log.read(self.store.position_of, self.batch_size):
            effects = self.process(batch)
            try:
                self.store.commit(effects)
            except BaseException:
                # The in-memory states ran ahead of what was committed.
                self.states = self.store.load_states()
                raise
            events += len(batch.values)
            dead += len(effects.dead_letters)
            batches += 1
            if on_commit is not None:
                on_commit(batch)
        return ProcessReport(events, dead, batches, time.perf_counter() - started)

    def process(self, batch: RecordBatch) -> BatchEffects:
        """Fold one batch into the states; return what changed, to be committed."""
        effects = BatchEffects(batch.tracking)
        changed: dict[str, CustomerState] = {}
        partition = batch.tracking.application_name
        for raw, position in zip(batch.values, batch.positions):
            try:
                event = decode_event(raw)
            except InvalidEvent as error:
                effects.dead_letters.append(DeadLetter(partition, position, str(error), bytes(raw)))
                continue
            if type(event) is Clock:
                continue
            changed[event.customer_id] = self._fold(event)
            self._personal_data(event, effects)
        effects.states = list(changed.values())
        return effects

    def _fold(self, event: AnyCustomerEvent) -> CustomerState:
        state = self.states.get(event.customer_id)
        if state is None:
            state = self.states[event.customer_id] = CustomerState(customer_id=event.customer_id)
        fold(state, event)
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
