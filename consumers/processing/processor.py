"""The lifecycle processor: reads the log, runs the lifecycle engine, commits per batch.

Exactly once with respect to the input log, in three stores, in this order, each with
the input position it reflects (for one engine owning a home; a member of a consumer
group has other outputs: consumers/processing/outputs.py):
1. the lifecycle events each batch caused go to the `customer-lifecycle` log (an
   eventsourcing process recorder), in one transaction per batch, as it is committed;
2. at a checkpoint (consumers/processing/checkpoint.py: every few batches or seconds,
   and at the end of a batch run), the rows of the batches since the last one go to
   the DuckDB projections, in one transaction a partition;
3. then the engine's states, deadline index, partitions' time rules and the records
   waiting for time go to the state store (RocksDB), in one write.
Reading resumes where the state store stands, which is never past the others; after a
crash the batches in between are derived again (the derivation is deterministic, so
identically), and each store skips what it already holds.

No record stops the engine. A record that is not a valid event, is larger than the
policy allows, or that the engine cannot fold becomes a dead letter with its reason
and kind, in the same DuckDB transaction as its batch. A record dated far ahead of its
partition's confirmed time waits (lifecycle/partition_time.py): its bytes are kept in
the state store and listed in `held_records` until time confirms it, and it is then
taken at the place of the record that released it. Every record read is processed,
waiting, or dead-lettered.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from itertools import islice

from eventsourcing.persistence import Tracking

from consumers.errors import LifecycleError
from consumers.logs.event_log import LogReader, RecordBatch, record_seq
from consumers.processing.checkpoint import CheckpointClock, CheckpointPolicy, SinceCheckpoint
from consumers.processing.gc_pause import gc_paused
from consumers.processing.outputs import ProcessorOutputs
from consumers.processing.process_report import ProcessReport, RunCount
from lifecycle.deadlines import due
from lifecycle.engine import LifecycleEngine
from lifecycle.errors import FactOutOfRange
from lifecycle.partition_time import CLOCK, REFUSE, TAKE, WAIT, Held, PartitionTime, customer_key, waiting_reason
from lifecycle.state import CustomerState, epoch_seconds
from projections.catalog.dead_letters import ENGINE_FAILED, INVALID, OUT_OF_RANGE, TIME, TOO_LARGE, DeadLetter, HeldRecord
from projections.stores.projection_store import BatchEffects
from projections.stores.state_store import RocksDBStateStore, StateBatch
from schemas import AnyEvent, Clock, InvalidEvent, Purchase, ValueModelFitted, decode_event
from schemas.events import AnyCustomerEvent, CustomerEvent


FAILURES_PER_BATCH = 20
"""Records of one batch the engine may fail on (each dead-lettered, the batch done again)
before the run stops: more is no odd record, but a bug or a policy nobody foresaw."""
_PREFETCH = 2_000
"""Records, or customers due at a clock, whose states are read in one multi-get."""


class EngineFailing(LifecycleError):
    """The engine failed on too many records of one batch."""

    def __init__(self, partition: str, failures: int, reason: str) -> None:
        super().__init__(
            f"the engine failed on {failures} records of one batch of {partition} (the last: {reason}): a bug, or a "
            "policy nobody foresaw. Nothing of this batch was committed (what came before it was); report it with "
            "this message, and once fixed, `lifecycle process` goes on from here"
        )


class _Rewind(Exception):
    """A batch failed, and what the batches since the last checkpoint changed was
    forgotten: reading starts again from the checkpoint."""


class _FoldFailed(Exception):
    """The engine failed on the record numbered `seq`: not a rule, a bug or an input
    nobody foresaw. The batch is done again with that record dead-lettered."""

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(reason)
        self.seq = seq
        self.reason = reason


def _decoded(raw: bytes) -> AnyEvent | InvalidEvent:
    """The record's event, or why it is not one (it is dead-lettered where it stands)."""
    try:
        return decode_event(raw)
    except InvalidEvent as error:
        return error


def _fold_failed(seq: int, error: Exception) -> Exception:
    if isinstance(error, MemoryError):
        return error
    return _FoldFailed(seq, f"the engine could not fold this event ({type(error).__name__}: {error})")


class _Batch:
    """The batch in hand: its partition, the latest clock its customers have seen, the
    currencies it met with no rate, and where its changes go (with those of the
    batches before it since the last checkpoint)."""

    def __init__(self, partition: str, clock_at: int | None, since: SinceCheckpoint,
                 refused: dict[int, str]) -> None:
        self.partition = partition
        # The latest clock taken so far, as the customers see it: the time rule's own
        # runs ahead of it while the clocks it released wait to be taken.
        self.clock_at = clock_at
        self.since = since
        self.refused = refused
        """Records of the partition the engine failed on, by seq: dead-lettered instead."""
        self.unpriced: Counter[str] = Counter()
        self.clocked = False
        """A clock was taken at the record in hand."""
        self.cut: int | None = None
        """Records taken, if fewer than the batch's: the rest is a batch of its own."""
        self.rest: RecordBatch | None = None

    def taken(self, records: RecordBatch) -> RecordBatch:
        """The records of `records` this batch took; the rest, if any, waits in `rest`."""
        if self.cut is None:
            return records
        cut, positions = self.cut, records.positions
        self.rest = RecordBatch(records.tracking, records.values[cut:], positions[cut:], records.end)
        return RecordBatch(Tracking(records.tracking.application_name, positions[cut - 1]), records.values[:cut],
                           positions[:cut], records.end)


def _cut(reading: Iterator[RecordBatch], rest_of: Callable[[], RecordBatch | None]) -> Iterator[RecordBatch]:
    """The batches read, each followed by what is left of it when the processor cut it."""
    for batch in reading:
        yield batch
        rest = rest_of()
        while rest is not None:
            yield rest
            rest = rest_of()


class LifecycleProcessor:
    """Derives the lifecycle of the customers of one log into the projections."""

    def __init__(
        self,
        log: LogReader,
        outputs: ProcessorOutputs,
        states: RocksDBStateStore,
        engine: LifecycleEngine,
        batch_size: int = 20_000,
        checkpoints: CheckpointPolicy = CheckpointPolicy(),
    ) -> None:
        self.log = log
        self.outputs = outputs
        self.states = states
        self.engine = engine
        self.batch_size = batch_size
        self.on_erased: Callable[[list[str]], None] | None = None
        """Told the customers each checkpoint erased (to destroy their keys)."""
        outputs.adopt_policy(engine.policy)
        self._checkpoint_clock = CheckpointClock(checkpoints)
        self._since: dict[str, SinceCheckpoint] = {}
        self._refused: dict[str, dict[int, str]] = {}
        self._load()

    def _load(self) -> None:
        """Where the state store stands: its positions and partitions' time rules."""
        self.positions = self.states.positions()
        policy = self.engine.policy
        self.times = {
            partition: PartitionTime(policy, clock_at, witnesses, self.states.held(partition), latest)
            for partition, (clock_at, latest, witnesses) in self.states.partition_rules().items()
        }
        # How far each partition's written deadline index has been read: each customer
        # due by then was decided and their deadline moved past it, so a clock reads on
        # from here instead of from the written clock again.
        self._index_read_to = {p: t.clock_at for p, t in self.times.items()}
        self.outputs.check(self.positions)

    def position_of(self, application_name: str) -> int | None:
        """Where reading goes on in a partition: after the last batch derived."""
        return self.positions.get(application_name)

    def run_once(
        self,
        on_commit: Callable[[RecordBatch], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        checkpoint: bool = True,
    ) -> ProcessReport:
        """Process everything on the log past the positions reached, then return; or
        sooner, after the first batch committed once `should_stop()` is true.

        `on_commit` is told of each batch once its lifecycle events are committed (for
        progress output). `checkpoint`: end with a checkpoint, so that every store
        stands at the same position (a batch run); a live engine's loop passes False
        and its checkpoints come when due, and calls `checkpoint()` when it stops.
        """
        run = RunCount()
        while self._read(run, on_commit, should_stop):
            pass
        if checkpoint or self._checkpoint_clock.due():
            if self.checkpoint():
                run.checkpointed()
        waiting = sum(len(times.held) for times in self.times.values())
        return run.report(waiting)

    def _read(
        self, run: RunCount, on_commit: Callable[[RecordBatch], None] | None, should_stop: Callable[[], bool] | None,
    ) -> bool:
        """Derive and commit batch after batch from the positions reached; True if a
        batch failed and reading must start again from the last checkpoint."""
        with closing(self.log.read(self.position_of, self.batch_size)) as reading:
            for batch in _cut(reading, self._cut_at):
                try:
                    with gc_paused():
                        first = self._process(batch)
                except _Rewind:
                    run.rewound()
                    return not (should_stop is not None and should_stop())
                batch = self._batch.taken(batch)
                effects = self._since[batch.tracking.application_name].effects
                try:
                    self._commit(batch.tracking, effects, first[0])
                except BaseException:
                    self._discard()
                    raise
                run.count(len(batch.values), len(effects.dead_letters) - first[1],
                          len(effects.lifecycle_events) - first[0], self._batch.unpriced)
                self._checkpoint_clock.batch_done()
                if on_commit is not None:
                    on_commit(batch)
                if (self._checkpoint_clock.due() or self._unwritten() > self.states.cache_size) and self.checkpoint():
                    run.checkpointed()
                if should_stop is not None and should_stop():
                    break
        return False

    def _cut_at(self) -> RecordBatch | None:
        """What is left of the batch just committed, if a clock's customers outgrew the
        state cache before its end (`_derive`): taken next, after a checkpoint."""
        rest, self._batch.rest = self._batch.rest, None
        return rest

    def _commit(self, tracking: Tracking, effects: BatchEffects, start: int) -> None:
        """The batch to the outputs (its lifecycle events from `start` of those since the
        checkpoint); reading goes on after it."""
        self.outputs.batch(tracking, effects, start)
        self.positions[tracking.application_name] = tracking.notification_id

    def checkpoint(self) -> bool:
        """Write the projections, then the engine's states, of every batch since the last
        checkpoint; whether there was anything to write. On failure everything since is
        forgotten (it is derived again from the checkpoint) and the error raised."""
        self._checkpoint_clock.written()
        if not self._since:
            return False
        try:
            for since in self._since.values():
                since.effects.states = list(since.changed.values())
            batches = [StateBatch(since.effects.tracking, name, since.effects.states, since.deadlines_before,
                                  self.times[name].state(), list(since.held.values()), since.released)
                       for name, since in self._since.items()]
            with gc_paused():
                self.outputs.checkpoint(self._since, self.times, batches)
                self.states.write_many(batches)
        except BaseException:
            self._discard()
            raise
        erased = [customer for since in self._since.values() for customer in since.effects.profiles.erased]
        self._since.clear()
        self._refused.clear()
        if erased and self.on_erased is not None:
            self.on_erased(erased)
        return True

    def _discard(self) -> None:
        """Forget everything since the last checkpoint: states are read again as
        written, and reading goes on from the checkpoint's positions."""
        for since in self._since.values():
            self.states.forget(since.touched)
        self._since.clear()
        self._checkpoint_clock.written()
        self._load()

    def _process(self, records: RecordBatch) -> tuple[int, int]:
        """Run one batch through the engine, adding to what the batches since the last
        checkpoint changed; where its lifecycle events and dead letters begin there.

        If the engine fails on a record, everything since the last checkpoint is
        forgotten and `_Rewind` raised: the batches since are derived again, with that
        record dead-lettered. A storm of such failures stops the run (`EngineFailing`)
        instead of redoing the batch record by record.
        """
        try:
            return self._derive(records)
        except _FoldFailed as failed:
            partition = records.tracking.application_name
            refused = self._refused.setdefault(partition, {})
            refused[failed.seq] = failed.reason
            self._discard()
            first = record_seq(records.positions[0], 0)
            failures = sum(seq >= first for seq in refused)
            if failures >= FAILURES_PER_BATCH:
                raise EngineFailing(partition, failures, failed.reason) from None
            raise _Rewind from None

    def _derive(self, records: RecordBatch) -> tuple[int, int]:
        """Run the batch through the engine; where its lifecycle events and dead letters
        begin among those since the checkpoint. A clock after which more customers wait
        to be written than the state cache holds ends the batch there, at a position of
        its own (the rest is taken after a checkpoint): a clock after a long silence,
        stepped there by a clock a day (lifecycle/partition_time.py), would
        otherwise hold every customer of the partition in memory at once."""
        partition = records.tracking.application_name
        times = self.times.get(partition)
        if times is None:
            times = self.times[partition] = PartitionTime(self.engine.policy)
        since = self._since.get(partition)
        if since is None:
            since = self._since[partition] = SinceCheckpoint(records.tracking)
        effects = since.effects
        effects.tracking = records.tracking
        first = (len(effects.lifecycle_events), len(effects.dead_letters))
        batch = self._batch = _Batch(partition, times.clock_at, since, self._refused.get(partition, {}))
        limit = self.engine.policy.input.max_event_bytes
        positions = records.positions
        decoded: list[AnyEvent | InvalidEvent | None] = []
        for index, (seq, position, raw) in enumerate(records.numbered()):
            if index == len(decoded):
                decoded += self._decoded_ahead(records.values[index:index + _PREFETCH], limit)
            event = decoded[index]
            if event is None:
                reason = f"{len(raw):,} bytes, over the policy's limit of {limit:,} ([input] max_event_bytes)"
                effects.dead_letters.append(DeadLetter(partition, position, reason, bytes(raw)[:limit], len(raw),
                                                       TOO_LARGE))
            else:
                self._offer(event, raw, seq, position, times, effects)
            if batch.clocked and index + 1 < len(positions) and positions[index + 1] != position:
                batch.clocked = False
                if self._unwritten() > self.states.cache_size:
                    batch.cut = index + 1
                    break
        effects.partition_times = (times.latest, times.clock_at)
        effects.tracking = Tracking(partition, positions[batch.cut - 1]) if batch.cut else records.tracking
        return first

    def _decoded_ahead(self, values: list[bytes], limit: int) -> list[AnyEvent | InvalidEvent | None]:
        """The next records decoded (None: over the size limit), their customers' states
        read in one multi-get. A few at a time, not the whole batch: a batch cut after a
        clock (above) would decode its rest again."""
        decoded = [None if len(raw) > limit else _decoded(raw) for raw in values]
        self.states.prefetch(event.customer_id for event in decoded if isinstance(event, CustomerEvent))
        return decoded

    def _unwritten(self) -> int:
        """Customers changed since the last checkpoint: their states wait to be written."""
        return sum(len(since.changed) for since in self._since.values())

    def _offer(self, event: AnyEvent | InvalidEvent, raw: bytes, seq: int, position: int, times: PartitionTime,
               effects: BatchEffects) -> None:
        """Offer one record (`event`, decoded from `raw`, or why it could not be) to the
        time rule and take it, or set it waiting, or refuse it; then take what its
        arrival released."""
        if isinstance(event, InvalidEvent):
            effects.dead_letters.append(DeadLetter(self._batch.partition, position, str(event), bytes(raw), len(raw),
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
            self._take(event, at, seq, position, position, effects, raw)
        elif verdict == WAIT:
            self._wait(times, times.held[seq], event, raw, effects)
        elif verdict == REFUSE:
            assert times.refusal is not None
            effects.dead_letters.append(DeadLetter(self._batch.partition, position, times.refusal, bytes(raw),
                                                   len(raw), TIME))
        for record in times.released():
            self._release(record, position, effects)

    def _wait(self, times: PartitionTime, record: Held, event: AnyEvent, raw: bytes, effects: BatchEffects) -> None:
        batch = self._batch
        batch.since.held[record.seq] = (record, bytes(raw))
        customer = None if type(event) is Clock else event.customer_id  # type: ignore[union-attr]
        kind = "clock" if record.kind == CLOCK else "event"
        reason = waiting_reason(record, times.confirmed, self.engine.policy)
        effects.held.append(HeldRecord(batch.partition, record.seq, kind, customer, record.at, reason))

    def _release(self, record: Held, position: int, effects: BatchEffects) -> None:
        """Take a record that waited for time, at `position`, where its release came."""
        batch = self._batch
        waited = batch.since.held.pop(record.seq, None)
        if waited is None:  # set waiting before the last checkpoint: its bytes are in the state store
            raw = self.states.held_bytes(batch.partition, record.seq)
            batch.since.released.append(record.seq)
        else:
            raw = waited[1]
        effects.released.append((batch.partition, record.seq))
        self._take(decode_event(raw), record.at, record.seq, record.seq >> 10, position, effects, raw)

    def _take(self, event: AnyEvent, at: int, seq: int, own: int, position: int, effects: BatchEffects,
              raw: bytes) -> None:
        """Take a record (at log position `own`) at `position` of the batch; a record the
        engine failed on before is dead-lettered instead."""
        batch = self._batch
        if seq in batch.refused:
            effects.dead_letters.append(DeadLetter(batch.partition, own, batch.refused[seq], bytes(raw), len(raw),
                                                   ENGINE_FAILED, position))
            return
        try:
            if type(event) is Clock:
                self._clock(event, at, position, effects)
            else:
                self._fold(event, at, own, position, effects)  # type: ignore[arg-type]
        except FactOutOfRange as error:
            effects.dead_letters.append(DeadLetter(batch.partition, own, str(error), bytes(raw), len(raw),
                                                   OUT_OF_RANGE, position))
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
            batch.since.pending.push(state)
        batch.since.changed[event.customer_id] = state
        if type(event) is Purchase and event.currency not in self.engine.policy.value.rates_to_base:
            batch.unpriced[event.currency] += 1
        effects.profiles.take(event)
        effects.movements.take(event, batch.partition, own, self.engine.booked, position)
        effects.facts.take(event, batch.partition, own, self.engine.booked, position)

    def _clock(self, clock: Clock, at: int, position: int, effects: BatchEffects) -> None:
        """Decide again the customers of the partition whose deadline the clock has passed."""
        batch = self._batch
        batch.clocked = True
        if batch.clock_at is None or at > batch.clock_at:
            batch.clock_at = at
        read_to = self._index_read_to.get(batch.partition)
        written = self._prefetched(self.states.due(batch.partition, read_to, at))
        if read_to is None or at > read_to:
            self._index_read_to[batch.partition] = at
        since = batch.since
        derived = effects.lifecycle_events
        for state in due(written, since.pending, at, self._due_state):
            derived.extend((position, e, None) for e in self.engine.on_clock(state, clock))
            effects.payloads.extend(self.engine.payloads)
            since.pending.push(state)
            since.changed[state.customer_id] = state

    def _prefetched(self, written: Iterator[tuple[int, str]]) -> Iterator[tuple[int, str]]:
        """The written deadline index's entries, the states of their customers read
        `_PREFETCH` at a time (each entry's state is read, stale or not)."""
        while chunk := list(islice(written, _PREFETCH)):
            self.states.prefetch(customer_id for _, customer_id in chunk)
            yield from chunk

    def _due_state(self, customer_id: str) -> CustomerState:
        return self._touch(customer_id, None)

    def _touch(self, customer_id: str, clock_at: int | None) -> CustomerState:
        """The customer's state, noted as touched since the checkpoint (a new one if
        unknown), with their time moved to the partition's latest clock `clock_at`.

        A clock reaches every customer of its partition; for one whose deadline it has
        not passed it changes only their time, so that is done here, when they are next
        seen, instead of visiting every customer at every clock.
        """
        since = self._batch.since
        state = since.touched.get(customer_id)
        if state is None:
            state = self.states.get(customer_id)
            if state is None:
                state = CustomerState(customer_id=customer_id)
                self.states.add(state)
            since.touched[customer_id] = state
            since.deadlines_before[customer_id] = state.next_deadline
        if clock_at is not None and clock_at > state.now:
            state.now = clock_at
        return state
