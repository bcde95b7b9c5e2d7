"""`lifecycle replay`: derive everything again from the log, in bulk, into a new generation.

As Flink runs a bounded input in batch mode: sort by key, hold one key's state at a time.
1. scan (workers): ranges of the log are read in parallel, validated, and each customer
   event put in the bucket of its customer (`consumers/replay/scan.py`);
2. time (here): the time rule, which must see each partition in log order, runs over
   the scans' compact (seq, time, kind, customer) arrays; it decides where each record
   is taken (a record that waited for time, later), which are refused and which still
   wait (`consumers/replay/timing.py`);
3. fold (workers): bucket by bucket, each customer's events with their partition's
   clocks, in the order taken, through the same engine as live processing
   (`consumers/replay/fold.py`);
4. write (here): the parts go in bulk into the projections, and beside them (a thread
   of their own) the lifecycle log and the state store, of a new generation, with the
   positions reached, so that `lifecycle process` goes on from there; then the
   generation is switched in (consumers/home.py).

The replayed lifecycle log holds the same events as live processing would have recorded
(per customer the same ids, sequences and causes), ordered by log partition, then the
position of the cause, then customer id and sequence.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from eventsourcing.persistence import Tracking

from consumers import home
from consumers.logs.event_log import CUSTOMER_EVENTS, CUSTOMER_LIFECYCLE
from consumers.logs import open_event_log
from consumers.replay.fold import FoldResult, FoldTask, fold_bucket
from consumers.replay.scan import ScanResult, ScanUnit, scan
from consumers.replay.timing import LogTaking, take_log
from consumers.privacy.roles_file import load_roles
from consumers.settings import Settings
from consumers.logs.sqlite_event_log import SEGMENT_SIZE, SQLiteEventLog
from consumers.processing.gc_pause import gc_paused
from lifecycle.policy import Policy
from projections.bulk import parts as bulk
from projections.stores.projection_store import DuckDBProjectionStore
from projections.stores.state_store import RocksDBStateStore

BUCKETS_PER_WORKER = 32
_Item = TypeVar("_Item")
# Embedded log ranges are whole segments, at least this many per range.
_MIN_SEGMENTS_PER_RANGE = 50


@dataclass
class ReplayReport(FoldResult):
    """The folds' totals (`records`: all records scanned), and the replay's time and place."""

    seconds: float = 0.0
    generation: Path | None = None
    history_lost: str | None = None
    """Why the engine-commit history and the policy versions of the generation replaced
    could not be carried over (it was damaged); None when they were."""
    phases: dict[str, float] = field(default_factory=dict)
    """Seconds of wall time per step, in order: scan, time, fold and writes; then the
    three writes of which `writes` is made, side by side: the projections, beside the
    lifecycle log followed by the states."""

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.phases[phase] = self.phases.get(phase, 0.0) + time.perf_counter() - started

    @property
    def events_per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


Progress = Callable[[str, int, int], None]
"""Told (phase, done, of) as the replay goes: records scanned, then records folded."""


def replay(
    settings: Settings, policy: Policy, workers: int, progress: Progress | None = None, republish: bool = False
) -> ReplayReport:
    """Derive everything again from the log into a new generation, and switch to it.
    `republish` (Kafka): replace the `customer-lifecycle` topic with the replayed log."""
    started = time.perf_counter()
    with home.engine_lock(settings.home):
        home.refuse_projector(settings.home, "replay")
        previous = home.current(settings.home)
        # A Ctrl-C while the generation is made waits until the `try` that removes it.
        unblocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        generation = home.next_generation(settings.home)
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)
            report = _derive(settings, policy, workers, progress, generation, previous)
        except BaseException:
            shutil.rmtree(generation, ignore_errors=True)  # it was never in use; a full disk gets its space back
            raise
        home.switch(settings.home, generation)
        _publish_partner_snapshots(settings, generation)
        if republish and settings.kafka is not None:
            _republish(settings, generation)
    report.seconds = time.perf_counter() - started
    return report


def _derive(settings: Settings, policy: Policy, workers: int, progress: Progress | None, generation: Path,
            previous: Path | None) -> ReplayReport:
    """Every store of `generation` from the log alone; of `previous` only its history,
    when it can be read."""
    parts = generation / "replay-parts"
    parts.mkdir()
    report, taking = derive_parts(settings, policy, workers, parts, progress)
    report.generation = generation
    previous_views = previous / home.VIEWS if previous is not None else None
    stop = threading.Event()
    with report.timed("writes"):
        logs = _Beside(lambda: _write_logs(generation, parts, taking, report, stop))
        try:
            with report.timed("projections"):
                report.history_lost = bulk.assemble(generation / home.VIEWS, parts, policy, previous_views,
                                                    taking.times, taking.positions)
            logs.join()
        except BaseException:
            # The generation is removed after this: not while the thread still writes
            # into it, even if Ctrl-C comes again.
            stop.set()
            unblocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                logs.wait()  # its error, if any, follows from this one
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)
            raise
    shutil.rmtree(parts)
    return report


class _Beside(threading.Thread):
    """Runs `work` beside this thread: `join` waits for it and raises what it raised."""

    def __init__(self, work: Callable[[], None]) -> None:
        super().__init__(name="replay-writes", daemon=True)
        self._work = work
        self._error: BaseException | None = None
        self.start()

    def run(self) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # Ctrl-C is the main thread's
        try:
            self._work()
        except BaseException as error:  # noqa: BLE001 - handed to the joining thread
            self._error = error

    def wait(self) -> None:
        super().join()

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self._error is not None:
            raise self._error


def _write_logs(generation: Path, parts: Path, taking: LogTaking, report: ReplayReport, stop: threading.Event) -> None:
    """The lifecycle log, then the state store, from the parts, while the projections
    are assembled beside (both mostly wait on SQLite, RocksDB and DuckDB, which run
    without the GIL); `stop` set ends them at their next batch."""
    with report.timed("lifecycle log"):
        _write_lifecycle_log(generation, parts, taking.positions, stop)
    with report.timed("states"):
        states = RocksDBStateStore(generation / home.STATES, cache_size=0)
        try:
            states.load(_until(stop, bulk.encoded_states(parts)), taking.rules, bulk.waiting_records(parts),
                        taking.positions)
        finally:
            states.close()


def derive_parts(
    settings: Settings,
    policy: Policy,
    workers: int,
    parts: Path,
    progress: Progress | None = None,
    until: Mapping[str, int] | None = None,
) -> tuple[ReplayReport, LogTaking]:
    """Steps 1-3 into `parts` (projections/bulk/parts.py), for the log up to `until` (each
    partition's position; the whole log if None): the report, and where the time rule
    left each partition (its rule, times and the position reached)."""
    report = ReplayReport()
    buckets = workers * BUCKETS_PER_WORKER
    with _workers(workers) as run:
        with report.timed("scan"):
            scans = _scan(run, workers, settings, parts, buckets, policy, report, progress, until)
        with report.timed("time"):
            taking = take_log(scans, policy)
            bulk.write_dead_letters(parts, len(scans), taking.dead)
            bulk.write_waiting(parts, len(scans), taking.waiting_clocks)
            bulk.write_fits(parts, [(s.unit.partition, position, raw) for s in scans for position, raw in s.fits])
        with report.timed("fold"):
            folds = _fold(run, scans, buckets, parts, policy, taking, report, progress)
    report.dead_letters = sum(f.dead_letters for f in folds) + len(taking.dead) + sum(s.dead_letters for s in scans)
    report.waiting = sum(f.waiting for f in folds) + len(taking.waiting_clocks)
    report.lifecycle_events = sum(f.lifecycle_events for f in folds)
    report.customers = sum(f.customers for f in folds)
    for fold in folds:
        report.unpriced.update(fold.unpriced)
    return report, taking


Run = Callable[[Callable, list[tuple]], Iterator]  # type: ignore[type-arg]
"""Calls a function on each argument tuple; yields the results as they come."""


@contextmanager
def _workers(count: int) -> Iterator[Run]:
    """Worker processes (spawned: no state is inherited), or, for one, this process."""
    if count == 1:
        yield lambda function, arguments: (_call((function, a)) for a in arguments)
        return
    # The workers start with Ctrl-C blocked (a signal mask outlives exec), and this
    # process takes a Ctrl-C only once they have started: then it ends them, and no
    # worker is caught half-started, printing a traceback after the line it gets.
    pending: list[int] = []
    main = threading.current_thread() is threading.main_thread()  # only it may set a handler
    handler = signal.signal(signal.SIGINT, lambda number, frame: pending.append(number)) if main else None
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        pool = multiprocessing.get_context("spawn").Pool(count)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        if main:
            signal.signal(signal.SIGINT, handler)
    if pending:
        pool.terminate()
        raise KeyboardInterrupt
    with pool:
        yield lambda function, arguments: pool.imap_unordered(_call, [(function, a) for a in arguments])


def _call(job: tuple[Callable, tuple]):  # type: ignore[no-untyped-def, type-arg]
    """One unit of work (a range to scan, a bucket to fold), the collector paused."""
    function, arguments = job
    with gc_paused():
        return function(*arguments)


def _units(settings: Settings, workers: int, until: Mapping[str, int] | None) -> list[ScanUnit]:
    """Ranges to scan: a Kafka partition each; the embedded log in runs of segments."""
    with open_event_log(settings, CUSTOMER_EVENTS, create=False) as log:
        ends = log.end_positions()
        partitions = log.partitions()
    if ends is None:
        return [ScanUnit(n, p, 0, None if until is None else until.get(p, 0)) for n, p in enumerate(partitions)]
    units = []
    for partition in partitions:
        end = ends[partition] if until is None else min(ends[partition], until.get(partition, 0))
        count = max(1, min(workers * 2, end // _MIN_SEGMENTS_PER_RANGE))
        bounds = [end * k // count for k in range(count + 1)]
        units.extend(ScanUnit(len(units) + k, partition, bounds[k], bounds[k + 1]) for k in range(count))
    return units


def _scan(run, workers, settings, parts, buckets, policy, report, progress, until) -> list[ScanResult]:  # type: ignore[no-untyped-def]
    units = _units(settings, workers, until)
    estimate = sum((u.end or 0) - u.start for u in units) * SEGMENT_SIZE if settings.kafka is None else 0
    results = []
    for result in run(scan, [(unit, settings, parts, buckets, policy) for unit in units]):
        results.append(result)
        report.records += result.records
        if progress is not None:
            progress("scanned", report.records, max(estimate, report.records))
    return sorted(results, key=lambda r: (r.unit.partition, r.unit.start))


def _fold(run, scans, buckets, parts, policy, taking, report, progress) -> list[FoldResult]:  # type: ignore[no-untyped-def]
    directories = [(r.unit.partition, r.directory) for r in scans]
    tasks = [FoldTask(b, directories, taking.partitions) for b in range(buckets)]
    results, done = [], 0
    for result in run(fold_bucket, [(task, parts, policy) for task in tasks]):
        results.append(result)
        done += result.records
        if progress is not None:
            progress("folded", done, report.records)
    return results


def _write_lifecycle_log(generation: Path, parts: Path, positions: dict[str, int], stop: threading.Event) -> None:
    """The lifecycle events in the replay's order, each run recorded with the position
    of its last cause; then each partition's final position."""
    with SQLiteEventLog(home=generation, name=CUSTOMER_LIFECYCLE) as log:
        recorded: dict[str, int] = {}
        for partition, position, payloads in _until(stop, bulk.lifecycle_payloads(parts)):
            log.record(payloads, Tracking(partition, position))
            recorded[partition] = position
        for partition, position in positions.items():
            if recorded.get(partition, 0) < position:
                log.record([], Tracking(partition, position))


def _until(stop: threading.Event, items: Iterator[_Item]) -> Iterator[_Item]:
    """`items` until `stop` is set: then `ReplayStopped`."""
    for item in items:
        if stop.is_set():
            raise ReplayStopped
        yield item


class ReplayStopped(Exception):
    """The replay's other writes failed or were interrupted: this one stopped with them."""


def _publish_partner_snapshots(settings: Settings, generation: Path) -> None:
    """Each partner role's own snapshot of the new generation (projections/reading/roles.py)."""
    partners = load_roles(settings.roles).partners()
    if not partners:
        return
    store = DuckDBProjectionStore(generation / home.VIEWS)
    try:
        for role in partners:
            store.publish_role_snapshot(role)
    finally:
        store.close()


def _republish(settings: Settings, generation: Path) -> None:
    """Delete the lifecycle topic (and its id index), then relay the replayed lifecycle
    log to a new one. Killed midway, the relay goes on at the next `process` (it
    records how far it got); killed before, run the replay with `--republish` again."""
    from consumers.logs.lifecycle_relay import LifecycleRelay

    with open_event_log(settings, CUSTOMER_LIFECYCLE) as topic:
        topic.delete()  # type: ignore[attr-defined]
    with open_event_log(settings, CUSTOMER_LIFECYCLE) as topic, \
            SQLiteEventLog(home=generation, name=CUSTOMER_LIFECYCLE) as replayed:
        LifecycleRelay(replayed, topic).relay()


def default_workers() -> int:
    return os.cpu_count() or 1

