"""The logs: the event log interface, the embedded SQLite log and the Kafka one, their id
indexes and record headers, the relay of lifecycle events to Kafka; and choosing the log:
Kafka when configured, the embedded SQLite log otherwise."""

from __future__ import annotations

from consumers.errors import ConfigurationError
from consumers.logs.event_log import CUSTOMER_EVENTS, EventLog
from consumers.home import current
from consumers.settings import Settings
from consumers.logs.sqlite_event_log import SQLiteEventLog
from schemas import decode_event, decode_lifecycle_event


def open_event_log(settings: Settings, name: str, *, create: bool = True) -> EventLog:
    """The log called `name` (a topic, or a file under the home directory).

    `create=False` is for readers: a log that does not exist yet is an error, and
    nothing is created (no file, no topic). The embedded `customer-lifecycle` log is
    derived, so it lives in the home's generation in use (consumers/home.py).
    """
    if settings.kafka is None:
        # The log of record is at the home's top; what is derived, in the generation in use.
        directory = settings.home if name == CUSTOMER_EVENTS else current(settings.home) or settings.home
        if not create and not SQLiteEventLog.path_of(directory, name).exists():
            msg = f"there is no {name} log in {settings.home} yet: nothing was published to it"
            raise ConfigurationError(msg)
        return SQLiteEventLog(home=directory, name=name)
    from consumers.logs.kafka_event_log import KafkaEventLog

    return KafkaEventLog(
        bootstrap=settings.kafka,
        name=name,
        index_path=settings.home / f"{name}.kafka-ids.sqlite",
        partitions=settings.partitions,
        create=create,
        decode=decode_event if name == CUSTOMER_EVENTS else decode_lifecycle_event,
    )
