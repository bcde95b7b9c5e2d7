"""Choosing the log: Kafka when configured, the embedded SQLite log otherwise."""

from __future__ import annotations

from consumers.errors import ConfigurationError
from consumers.event_log import EventLog
from consumers.settings import Settings
from consumers.sqlite_event_log import SQLiteEventLog


def open_event_log(settings: Settings, name: str, *, create: bool = True) -> EventLog:
    """The log called `name` (a topic, or a file under the home directory).

    `create=False` is for readers: a log that does not exist yet is an error, and
    nothing is created (no file, no topic).
    """
    if settings.kafka is None:
        if not create and not SQLiteEventLog.path_of(settings.home, name).exists():
            msg = f"there is no {name} log in {settings.home} yet: nothing was published to it"
            raise ConfigurationError(msg)
        return SQLiteEventLog(home=settings.home, name=name)
    from consumers.kafka_event_log import KafkaEventLog

    return KafkaEventLog(
        bootstrap=settings.kafka,
        name=name,
        index_path=settings.home / f"{name}.kafka-ids.sqlite",
        partitions=settings.partitions,
        create=create,
    )
