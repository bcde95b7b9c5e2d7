"""Relaying lifecycle events from the embedded lifecycle log to a Kafka topic.

The embedded `customer-lifecycle` log is where the processor records what it decided,
exactly once. With Kafka configured, the relay copies it to the `customer-lifecycle`
topic for downstream subscribers. It records how far it got in the embedded log after
each copy; if it dies in between, it copies the same events again and the topic's
event-id index skips them, so each event reaches the topic once.
"""

from __future__ import annotations

from eventsourcing.persistence import Tracking

from consumers.logs.event_log import EventLog
from consumers.logs.sqlite_event_log import SQLiteEventLog
from schemas import decode_lifecycle_event


class LifecycleRelay:
    """Copies new lifecycle events from `source` to `target`."""

    POSITION_PREFIX = "relay:"
    """The relay's position in `source` is tracked under this prefix and the target's name."""

    def __init__(self, source: SQLiteEventLog, target: EventLog) -> None:
        self.source = source
        self.target = target
        self.position_name = f"{self.POSITION_PREFIX}{target.name}"

    def relay(self) -> int:
        """Copy what is new since the last relay; return how many events were copied."""
        copied = 0
        start = self.source.recorded_position(self.position_name)
        for batch in self.source.read(lambda _: start):
            events = [(decode_lifecycle_event(raw), bytes(raw)) for raw in batch.values]
            self.target.append(events)
            self.source.recorder.insert_tracking(Tracking(self.position_name, batch.tracking.notification_id))
            copied += len(events)
        return copied
