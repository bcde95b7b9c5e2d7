"""The lifecycle processor: reads the log, runs the lifecycle engine, commits per batch.

Exactly once with respect to the input log, in three stores, in this order, each with
the input position after the batch:
1. the lifecycle events the batch caused go to the `customer-lifecycle` log (an
   eventsourcing process recorder), in one transaction;
2. the batch's rows go to the DuckDB projections, in one transaction;
3. the engine's states, deadline index, partitions' time rules and the records waiting
   for time go to the state store (RocksDB), in one write.
All three are built before any is written, so a batch whose data cannot be stored
records nothing. Reading resumes where the state store stands, which is never past the
others; after a crash the batches in between are derived again (the derivation is
deterministic, so identically), and each store skips what it already holds.

No record stops the engine. A record that is not a valid event, is larger than the
policy allows, or that the engine cannot fold becomes a dead letter with its reason
and kind, in the same DuckDB transaction as its batch. A record dated far ahead of its
partition's confirmed time waits (lifecycle/partition_time.py): its bytes are kept in
the state store and listed in `held_records` until time confirms it, and it is then
taken at the place of the record that released it. Every record read is processed,
waiting, or dead-lettered.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field

from consumers.errors import LifecycleError
from consumers.logs.event_log import EventLog, RecordBatch
from consumers.logs.sqlite_event_log import SQLiteEventLog
from lifecycle.deadlines import DeadlineQueue, due
from lifecycle.engine import LifecycleEngine
from lifecycle.errors import FactOutOfRange
from lifecycle.partition_time import CLOCK, REFUSE, TAKE, WAIT, Held, PartitionTime, customer_key, waiting_reason
from lifecycle.state import CustomerState, epoch_seconds
from projections.catalog.dead_letters import ENGINE_FAILED, INVALID, OUT_OF_RANGE, TIME, TOO_LARGE, DeadLetter, HeldRecord
from projections.stores.projection_store import BatchEffects, DuckDBProjectionStore
from projections.stores.state_store import RocksDBStateStore, StateBatch
from schemas import AnyEvent, Clock, InvalidEvent, Purchase, ValueModelFitted, decode_event
from schemas.events import AnyCustomerEvent


@dataclass(frozen=True)
class ProcessReport:
    """What one run of the processor did: `events` records were read, of which
    `dead_letters` were refused; `waiting` records (of this run or before) wait for
    time now; `unpriced` counts purchases by currency the policy has no rate for (they
    count no value)."""

    events: int
    dead_letters: int
    lifecycle_events: int
    batches: int
    seconds: float
    unpriced: Counter[str] = field(default_factory=Counter)
    waiting: int = 0

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def __add__(self, later: ProcessReport) -> ProcessReport:
        """Two runs told as one; what waits is as of the later."""
        return ProcessReport(
            self.events + later.events, self.dead_letters + later.dead_letters,
            self.lifecycle_events + later.lifecycle_events, self.batches + later.batches,
            self.seconds + later.seconds, self.unpriced + later.unpriced, later.waiting,
        )


FAILURES_PER_BATCH = 20
"""Records of one batch the engine may fail on (each dead-lettered, the batch done again)
before the run stops: more is no odd record, but a bug or a policy nobody foresaw."""


class EngineFailing(LifecycleError):
    """The engine failed on too many records of one batch."""

    def __init__(self, partition: str, failures: int, reason: str) -> None:
        super().__init__(
            f"the engine failed on {failures} records of one batch of {partition} (the last: {reason}): a bug, or a "
            "policy nobody foresaw. Nothing of this batch was committed (what came before it was); report it with "
            "this message, and once fixed, `lifecycle process` goes on from here"
        )


class _FoldFailed(Exception):
    """The engine failed on the record numbered `seq`: not a rule, a bug or an input
    nobody foresaw. The batch is done again with that record dead-lettered."""

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(reason)
        self.seq = seq
        self.reason = reason


def _fold_failed(seq: int, error: Exception) -> Exception:
    if isinstance(error, MemoryError):
        return error
    return _FoldFailed(seq, f"the engine could not fold this event ({type(error).__name__}: {error})")


class _Batch:
    """The customers one batch has touched, what it changed, and the records it set
    waiting for time (with their bytes) or took out of waiting."""

    def __init__(self, partition: str, clock_at: int | None = None, index_read_to: int | None = None) -> None:
        self.partition = partition
        # The latest clock taken so far, as the customers see it: the time rule's own
        # runs ahead of it while the clocks it released wait to be taken.
        self.clock_at = clock_at
        # The written deadline index has been read up to here: each customer due by then
        # was decided and their deadline moved past it (into `pending`), so a later clock
        # of the batch reads on from here instead of from the written clock again.
        self.index_read_to = index_read_to
        self.touched: dict[str, CustomerState] = {}
        self.deadlines_before: dict[str, int | None] = {}
        self.changed: dict[str, CustomerState] = {}
        self.pending = DeadlineQueue()
        self.unpriced: Counter[str] = Counter()
        self.held: dict[int, tuple[Held, bytes]] = {}
        self.released: list[int] = []


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
        self.on_erased: Callable[[list[str]], None] | None = None
        """Told the customers each committed batch erased (to destroy their keys)."""
        store.adopt_policy(engine.policy)
        self._batch = _Batch("")
        self._load()

    def _load(self) -> None:
        """Where the state store stands: its positions and partitions' time rules."""
        self.positions = self.states.positions()
        policy = self.engine.policy
        self.times = {
            partition: PartitionTime(policy, clock_at, witnesses, self.states.held(partition), latest)
            for partition, (clock_at, latest, witnesses) in self.states.partition_rules().items()
        }
        self._written_clock = {p: t.clock_at for p, t in self.times.items()}
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
                effects = self.process(batch, should_stop)
                if effects is None:
                    break
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
        waiting = sum(len(times.held) for times in self.times.values())
        return ProcessReport(events, dead, derived, batches, time.perf_counter() - started, unpriced, waiting)

    def _commit(self, effects: BatchEffects) -> None:
        tracking = effects.tracking
        name, position = tracking.application_name, tracking.notification_id
        in_views = self.store.position_of(name)
        prepared = self.store.prepare(effects, written=in_views)
        batch = self._batch
        state_batch = StateBatch(tracking, name, list(batch.changed.values()), batch.deadlines_before,
                                 self.times[name].state(), list(batch.held.values()), batch.released)
        recorded = self.lifecycle_log.recorded_position(name)
        if recorded is None or recorded < position:
            fresh = [payload for (at, _, _), payload in zip(effects.lifecycle_events, effects.payloads, strict=True)
                     if recorded is None or at > recorded]
            self.lifecycle_log.record(fresh, tracking)
        if in_views is None or in_views < position:
            self.store.write(prepared)
        self.states.write(state_batch)
        self.positions[name] = position
        self._written_clock[name] = self.times[name].clock_at
        if effects.profiles.erased and self.on_erased is not None:
            self.on_erased(effects.profiles.erased)

    def _discard(self) -> None:
        """Forget what the batch in hand changed: states are read again as written."""
        self.states.forget(self._batch.touched)
        self._load()

    def process(self, batch: RecordBatch, should_stop: Callable[[], bool] | None = None) -> BatchEffects | None:
        """Run one batch through the engine; return what changed, to be committed.

        The batch must follow the last committed one: if the engine fails on a record,
        the written states are read again and the batch is done again with that record
        dead-lettered. A storm of such failures stops the run (`EngineFailing`) instead
        of redoing the batch record by record; asked to stop meanwhile, None: nothing of
        the batch is committed.
        """
        refused: dict[int, str] = {}
        while True:
            try:
                return self._process(batch, refused)
            except _FoldFailed as failed:
                refused[failed.seq] = failed.reason
                self._discard()
                if len(refused) >= FAILURES_PER_BATCH:
                    raise EngineFailing(batch.tracking.application_name, len(refused), failed.reason) from None
                if should_stop is not None and should_stop():
                    return None

    def _process(self, records: RecordBatch, refused: dict[int, str]) -> BatchEffects:
        partition = records.tracking.application_name
        effects = BatchEffects(records.tracking)
        times = self.times.get(partition)
        if times is None:
            times = self.times[partition] = PartitionTime(self.engine.policy)
        self._batch = _Batch(partition, times.clock_at, self._written_clock.get(partition))
        limit = self.engine.policy.input.max_event_bytes
        for seq, position, raw in records.numbered():
            if len(raw) > limit:
                reason = f"{len(raw):,} bytes, over the policy's limit of {limit:,} ([input] max_event_bytes)"
                effects.dead_letters.append(DeadLetter(partition, position, reason, bytes(raw)[:limit], len(raw),
                                                       TOO_LARGE))
            else:
                self._offer(raw, seq, position, times, effects, refused)
        effects.states = list(self._batch.changed.values())
        effects.partition_times = (times.latest, times.clock_at)
        return effects

    def _offer(
        self, raw: bytes, seq: int, position: int, times: PartitionTime, effects: BatchEffects,
        refused: dict[int, str],
    ) -> None:
        """Offer one record to the time rule and take it, or set it waiting, or refuse
        it; then take what its arrival released."""
        try:
            event = decode_event(raw)
        except InvalidEvent as error:
            effects.dead_letters.append(DeadLetter(self._batch.partition, position, str(error), bytes(raw), len(raw),
                                                   INVALID))
            return
        if type(event) is ValueModelFitted:
            # A fit moves no one's time: its figures go to the projections (projections/catalog/value_estimates.py).
            effects.value_fits.append((position, event))
            return
        at = epoch_seconds(event.occurred_at)
        if type(event) is Clock:
            verdict = times.offer_clock(seq, at)
        else:
            verdict = times.offer_event(seq, at, customer_key(event.customer_id))
        if verdict == TAKE:
            self._take(event, at, seq, position, position, effects, refused, raw)
        elif verdict == WAIT:
            self._wait(times, times.held[seq], event, raw, effects)
        elif verdict == REFUSE:
            assert times.refusal is not None
            effects.dead_letters.append(DeadLetter(self._batch.partition, position, times.refusal, bytes(raw),
                                                   len(raw), TIME))
        for record in times.released():
            self._release(record, position, effects, refused)

    def _wait(self, times: PartitionTime, record: Held, event: AnyEvent, raw: bytes, effects: BatchEffects) -> None:
        batch = self._batch
        batch.held[record.seq] = (record, bytes(raw))
        customer = None if type(event) is Clock else event.customer_id  # type: ignore[union-attr]
        kind = "clock" if record.kind == CLOCK else "event"
        reason = waiting_reason(record, times.confirmed, self.engine.policy)
        effects.held.append(HeldRecord(batch.partition, record.seq, kind, customer, record.at, reason))

    def _release(self, record: Held, position: int, effects: BatchEffects, refused: dict[int, str]) -> None:
        """Take a record that waited for time, at `position`, where its release came."""
        batch = self._batch
        waited = batch.held.pop(record.seq, None)
        raw = waited[1] if waited is not None else self.states.held_bytes(batch.partition, record.seq)
        batch.released.append(record.seq)
        effects.released.append((batch.partition, record.seq))
        self._take(decode_event(raw), record.at, record.seq, record.seq >> 10, position, effects, refused, raw)

    def _take(
        self, event: AnyEvent, at: int, seq: int, own: int, position: int, effects: BatchEffects,
        refused: dict[int, str], raw: bytes,
    ) -> None:
        """Take a record (at log position `own`) at `position` of the batch; a record the
        engine failed on before (in `refused`) is dead-lettered instead."""
        partition = self._batch.partition
        if seq in refused:
            effects.dead_letters.append(DeadLetter(partition, own, refused[seq], bytes(raw), len(raw), ENGINE_FAILED,
                                                   position))
            return
        try:
            if type(event) is Clock:
                self._clock(event, at, position, effects)
            else:
                self._fold(event, at, own, position, effects)  # type: ignore[arg-type]
        except FactOutOfRange as error:
            effects.dead_letters.append(DeadLetter(partition, own, str(error), bytes(raw), len(raw), OUT_OF_RANGE,
                                                   position))
        except Exception as error:
            raise _fold_failed(seq, error) from error

    def _fold(self, event: AnyCustomerEvent, at: int, own: int, position: int, effects: BatchEffects) -> None:
        batch = self._batch
        state = self._touch(event.customer_id, batch.clock_at)
        deadline = state.next_deadline
        derived = self.engine.on_event(state, event, at)
        # Where the cause sits, if elsewhere: for the changes the event itself caused.
        cause = None if own == position else own
        effects.lifecycle_events.extend((position, e, cause if e.caused_by else None) for e in derived)
        effects.payloads.extend(self.engine.payloads)
        if state.next_deadline != deadline:
            batch.pending.push(state)
        batch.changed[event.customer_id] = state
        if type(event) is Purchase and event.currency not in self.engine.policy.value.rates_to_base:
            batch.unpriced[event.currency] += 1
        effects.profiles.take(event)
        effects.movements.take(event, batch.partition, own, self.engine.booked, position)

    def _clock(self, clock: Clock, at: int, position: int, effects: BatchEffects) -> None:
        """Decide again the customers of the partition whose deadline the clock has passed."""
        batch = self._batch
        if batch.clock_at is None or at > batch.clock_at:
            batch.clock_at = at
        read_to = batch.index_read_to
        written = self.states.due(batch.partition, read_to, at)
        if read_to is None or at > read_to:
            batch.index_read_to = at
        derived = effects.lifecycle_events
        for state in due(written, batch.pending, at, self._due_state):
            derived.extend((position, e, None) for e in self.engine.on_clock(state, clock))
            effects.payloads.extend(self.engine.payloads)
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
