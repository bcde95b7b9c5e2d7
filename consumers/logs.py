"""Choosing the log: Kafka when configured, the embedded SQLite log otherwise."""

from __future__ import annotations

from consumers.event_log import EventLog
from consumers.settings import Settings
from consumers.sqlite_event_log import SQLiteEventLog


def open_event_log(settings: Settings, name: str) -> EventLog:
    """The log called `name` (a topic, or a file under the home directory)."""
    if settings.kafka is None:
        return SQLiteEventLog(home=settings.home, name=name)
    from consumers.kafka_event_log import KafkaEventLog

    return KafkaEventLog(
        bootstrap=settings.kafka,
        name=name,
        index_path=settings.home / f"{name}.kafka-ids.sqlite",
        partitions=settings.partitions,
    )
