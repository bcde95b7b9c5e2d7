"""One run of the engine: the logs, the projections, the policy and the processor, opened
together and closed together, whichever log backend the settings choose."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime

from consumers.event_log import CUSTOMER_EVENTS, CUSTOMER_LIFECYCLE, RecordBatch
from consumers.lifecycle_relay import LifecycleRelay
from consumers.logs import open_event_log
from consumers.policy_file import load_policy
from consumers.processor import LifecycleProcessor, ProcessReport
from consumers.settings import Settings
from consumers.sqlite_event_log import SQLiteEventLog
from lifecycle.engine import LifecycleEngine
from projections.projection_store import DuckDBProjectionStore
from schemas import Clock, encode_event

CLOCK_NAMESPACE = uuid.UUID("0f6a3f0e-8d7c-4c1e-9a55-2b7e3c4d5f60")


class EngineSession:
    """The engine's parts for one command; use as a context manager."""

    def __init__(self, settings: Settings, batch_size: int = 20_000) -> None:
        self._resources = ExitStack()
        with ExitStack() as opening:
            self.log = opening.enter_context(open_event_log(settings, CUSTOMER_EVENTS))
            self.lifecycle_log = opening.enter_context(SQLiteEventLog(home=settings.home, name=CUSTOMER_LIFECYCLE))
            self.store = DuckDBProjectionStore(settings.views_path)
            opening.callback(self.store.close)
            self.relay = None
            if settings.kafka is not None:
                topic = opening.enter_context(open_event_log(settings, CUSTOMER_LIFECYCLE))
                self.relay = LifecycleRelay(self.lifecycle_log, topic)
            engine = LifecycleEngine(load_policy(settings.policy))
            self.processor = LifecycleProcessor(self.log, self.store, self.lifecycle_log, engine, batch_size)
            self._resources = opening.pop_all()

    def run_once(self, on_commit: Callable[[RecordBatch], None] | None = None) -> ProcessReport:
        """Process what is new on the log, then relay new lifecycle events to Kafka if used."""
        report = self.processor.run_once(on_commit)
        if self.relay is not None:
            self.relay.relay()
        return report

    def tick(self) -> None:
        """Append a clock event at the current time: live mode's way of moving time.

        The wall clock is read here, at the edge, once; the event goes on the log, so
        a replay sees the same time and decides the same.
        """
        now = datetime.now(UTC).replace(microsecond=0)
        clock = Clock(
            event_id=uuid.uuid5(CLOCK_NAMESPACE, now.isoformat()),
            occurred_at=now,
            source="lifecycle-process",
        )
        self.log.append([(clock, encode_event(clock))])

    def close(self) -> None:
        self._resources.close()

    def __enter__(self) -> EngineSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
