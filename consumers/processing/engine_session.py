"""One run of the engine: the logs, the projections, the policy and the processor, opened
together and closed together, whichever log backend the settings choose."""

from __future__ import annotations

import uuid
from functools import partial
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from typing import NamedTuple
from datetime import UTC, datetime

from consumers import home
from consumers.privacy.key_store import destroy_keys
from consumers.errors import ConfigurationError
from consumers.logs.event_log import CUSTOMER_EVENTS, CUSTOMER_LIFECYCLE, RecordBatch
from consumers.logs.lifecycle_relay import LifecycleRelay
from consumers.logs import open_event_log
from consumers.policy_file import load_policy
from consumers.processing.checkpoint import CheckpointPolicy
from consumers.processing.outputs import LocalOutputs
from consumers.processing.process_report import ProcessReport
from consumers.processing.processor import LifecycleProcessor
from consumers.privacy.roles_file import load_roles
from consumers.settings import Settings
from consumers.logs.sqlite_event_log import SQLiteEventLog
from lifecycle.engine import LifecycleEngine
from lifecycle.partition_time import PartitionTime, clock_steps
from lifecycle.policy import Policy
from lifecycle.state import DAY, as_datetime, epoch_seconds
from projections.stores.projection_store import DuckDBProjectionStore
from projections.stores.state_store import RocksDBStateStore
from schemas import Clock, ValueModelFitted, encode_event

class FitRun(NamedTuple):
    """A fit of the value models, whether it was appended, and what was processed for it."""

    fit: ValueModelFitted
    appended: bool
    processed: ProcessReport


CLOCK_NAMESPACE = uuid.UUID("0f6a3f0e-8d7c-4c1e-9a55-2b7e3c4d5f60")


def due_clocks(policy: Policy, times: Iterable[PartitionTime], at: datetime | None, source: str) -> list[Clock]:
    """The clock events that move the partitions of `times` to `at` (default: the wall
    clock, now): see `EngineSession.tick`. None before any customer event or for a time
    the clocks have reached already."""
    when = datetime.now(UTC) if at is None else at
    now = epoch_seconds(when.replace(microsecond=0))
    times = list(times)
    confirmed = [t.confirmed for t in times if t.confirmed is not None]
    latest = max((t.clock_at for t in times if t.clock_at is not None), default=None)
    if not confirmed or (latest is not None and now <= latest):
        return []
    return [
        Clock(event_id=uuid.uuid5(CLOCK_NAMESPACE, moment.isoformat()), occurred_at=moment, source=source)
        for moment in map(as_datetime, clock_steps(policy, min(confirmed), now))
    ]


class EngineSession:
    """The engine's parts for one command; use as a context manager."""

    def __init__(self, settings: Settings, batch_size: int = 20_000,
                 checkpoints: CheckpointPolicy = CheckpointPolicy()) -> None:
        self._resources = ExitStack()
        with ExitStack() as opening:
            opening.enter_context(home.engine_lock(settings.home))
            home.refuse_projector(settings.home, "an engine")
            derived = home.current_or_new(settings.home)
            self.log = opening.enter_context(open_event_log(settings, CUSTOMER_EVENTS))
            self.lifecycle_log = opening.enter_context(SQLiteEventLog(home=derived, name=CUSTOMER_LIFECYCLE))
            self.store = DuckDBProjectionStore(derived / home.VIEWS, settings.projections_memory)
            opening.callback(self.store.close)
            self.states = RocksDBStateStore(derived / home.STATES, settings.state_cache)
            opening.callback(self.states.close)
            self.relay = None
            if settings.kafka is not None:
                topic = opening.enter_context(open_event_log(settings, CUSTOMER_LIFECYCLE))
                self.relay = LifecycleRelay(self.lifecycle_log, topic)
            self.partners = load_roles(settings.roles).partners()
            engine = LifecycleEngine(load_policy(settings.policy))
            self.processor = LifecycleProcessor(self.log, LocalOutputs(self.store, self.lifecycle_log), self.states,
                                                engine, batch_size, checkpoints)
            self.processor.on_erased = partial(destroy_keys, settings)
            self._fit_tried_at: int | None = None
            self._resources = opening.pop_all()

    def run_once(
        self,
        on_commit: Callable[[RecordBatch], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        checkpoint: bool = True,
    ) -> ProcessReport:
        """Process what is new on the log (stopping early at a batch boundary once
        `should_stop()`), then relay new lifecycle events to Kafka if used.
        `checkpoint`: as `LifecycleProcessor.run_once`."""
        report = self.processor.run_once(on_commit, should_stop, checkpoint)
        if self.relay is not None:
            self.relay.relay()
        return report

    def tick(self, at: datetime | None = None, source: str = "lifecycle-process") -> int:
        """Append a clock event dated `at` (default: the wall clock, now): how time moves
        for customers nothing happens to. Returns how many clocks were appended.

        The wall clock is read here, at the edge, once; the event goes on the log, so a
        replay sees the same time and decides the same. After a long stop the clock
        would wait for time to confirm it, as far ahead of the log's confirmed time, so
        it is preceded by clocks that step there within the policy's lead
        (lifecycle/partition_time.py). Nothing is appended before any customer event
        (a clock would move no one), nor for a time the clocks have reached already.
        """
        clocks = due_clocks(self.processor.engine.policy, self.processor.times.values(), at, source)
        # One append a clock: each at a position of its own, so that the processor can
        # checkpoint between two steps of a long jump (consumers/processing/processor.py).
        return sum(self.log.append([(clock, encode_event(clock))]).appended for clock in clocks)

    def log_time(self) -> int | None:
        """The log's time: the latest time of the records taken in any partition (epoch
        seconds); a record still waiting for time does not count."""
        known = [t.latest for t in self.processor.times.values() if t.latest is not None]
        return max(known, default=None)

    def fit_value_models(self, as_of: datetime | None = None,
                         on_commit: Callable[[RecordBatch], None] | None = None,
                         fitting: Callable[[], None] | None = None) -> FitRun:
        """Catch up with the log, fit the value models to the purchases as of `as_of`
        (the log's time if None), append the fit to the log and process it, so that
        every customer's figures follow from it (projections/catalog/value_estimates.py).

        The fit, whether it was appended (not when its id is on the log already, that
        is, a fit of the same cutoff, data and policy; then nothing is appended or
        processed, and the fit on the log may name earlier positions read), and what
        was processed on the way, so that every record read is told of. `on_commit` is
        told of each batch processed, `fitting` when the fit itself begins."""
        caught_up = self.run_once(on_commit)
        known = self.log_time()
        if known is None:
            raise ConfigurationError("nothing processed yet: publish purchases and run `lifecycle process` first")
        cutoff = known if as_of is None else epoch_seconds(as_of)
        if cutoff > known:
            msg = (f"--as-of {as_of} is later than the log's time {as_datetime(known).isoformat()}: "
                   "customers would look older than anything the log knows; pick an earlier cutoff")
            raise ConfigurationError(msg)
        self._fit_tried_at = cutoff
        if fitting is not None:
            fitting()
        fit = self.store.fit_value_models(cutoff, source="lifecycle-fit-value-model")
        # The log skips an id it has (a duplicate) and refuses it with other content (a
        # conflict: the same fit read up to other positions); either way it is there.
        appended = self.log.append([(fit, encode_event(fit))]).appended > 0
        return FitRun(fit, appended, caught_up + self.run_once(on_commit) if appended else caught_up)

    def value_fit_due(self) -> bool:
        """Whether the policy's schedule calls for a fit: none yet, or the latest one's
        cutoff is `[value_model] refit_every_days` behind the log's time."""
        every = self.processor.engine.policy.value_model.refit_every_days
        known = self.log_time()
        if not every or known is None:
            return False
        latest = self.store.latest_value_model_cutoff()
        if self._fit_tried_at is not None and (latest is None or self._fit_tried_at > latest):
            latest = self._fit_tried_at  # a fit the data could not support waits as long as a fit would
        return latest is None or known - latest >= every * DAY

    def publish_snapshots(self) -> None:
        """The read-only snapshot for `lifecycle sql` while this engine runs, and each
        partner role's own (projections/reading/roles.py)."""
        self.store.publish_snapshot()
        self.publish_partner_snapshots()

    def publish_partner_snapshots(self) -> None:
        for role in self.partners:
            self.store.publish_role_snapshot(role)

    def close(self) -> None:
        self._resources.close()

    def __enter__(self) -> EngineSession:
        return self

    def __exit__(self, kind: object, error: BaseException | None, trace: object) -> None:
        try:
            self.close()
        except Exception:
            if error is None:
                raise
            # What stopped the session is what to tell: closing after it can fail for the
            # same cause (RocksDB refuses to close after a write the full disk refused).
