"""The log of record, as the engine sees it: append events, read them back in batches.

Two implementations stand behind this one interface: `KafkaEventLog` (scale-out) and
`SQLiteEventLog` (the embedded default). A position in either is an eventsourcing
`Tracking(application_name, notification_id)`: one application name per partition,
and `notification_id` the position *after* a record, so that the largest tracked id
is where reading resumes (for Kafka: `"<topic>:<partition>"` and `offset + 1`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from eventsourcing.persistence import Tracking

from schemas import AnyEvent

CUSTOMER_EVENTS = "customer-events"
CUSTOMER_LIFECYCLE = "customer-lifecycle"


@dataclass(frozen=True)
class Appended:
    """What one append did: events written, events skipped as already on the log, and
    the events refused because their id is on the log with other content (by index in
    the append)."""

    appended: int
    duplicates: int
    conflicts: tuple[int, ...] = field(default=())


@dataclass(frozen=True)
class RecordBatch:
    """Consecutive records of one partition, oldest first.

    `values[i]` is one raw JSON event as it is on the log (it may be invalid: the log
    takes what producers wrote); `positions[i]` is the position after it; `tracking` is
    the position after the whole batch, the one to record with its effects. `end` is
    where the partition ended when this read began (the embedded log's last position,
    Kafka's high-water mark from the fetch), so `end - tracking.notification_id` is how
    far behind the log the reader was after this batch; None if the log did not say.
    """

    tracking: Tracking
    values: list[bytes]
    positions: list[int]
    end: int | None = None

    def numbered(self) -> Iterator[tuple[int, int, bytes]]:
        """(seq, position, raw) of each record: `seq` is its place in the partition (see
        `record_seq`). A batch holds whole positions (an embedded segment is never split)."""
        last, index = None, 0
        for raw, position in zip(self.values, self.positions):
            index = index + 1 if position == last else 0
            last = position
            yield record_seq(position, index), position, raw


def record_seq(position: int, index: int) -> int:
    """A record's place in its partition: `position << 10 | index at that position` (an
    embedded segment holds at most 1 000 records, a Kafka offset one), so that ranges
    read apart agree on the log's order without counting."""
    return position << 10 | index


PositionOf = Callable[[str], "int | None"]
"""Where a reader stands in a partition: the largest tracked id, or None from the start."""


class LogReader(ABC):
    """Reads an ordered, partitioned log in batches: what the processor needs of its input."""

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    def partitions(self) -> list[str]:
        """The application names of the partitions, as used in `Tracking`."""

    @abstractmethod
    def read(
        self,
        position_of: PositionOf,
        max_records: int = 10_000,
        *,
        partitions: Collection[str] | None = None,
        until: Mapping[str, int] | None = None,
    ) -> Iterator[RecordBatch]:
        """Batches from where `position_of` says each partition stands, until caught up.

        "Caught up" is judged once per partition, against the end of the log when
        reading began there; records appended later are left for the next read.
        `partitions`: read only these; `until`: stop a partition at this position
        (a bulk replay reads one log in ranges, in parallel).
        """

    def end_positions(self) -> dict[str, int] | None:
        """Where each partition ends now, if the log can tell cheaply and reliably (the
        embedded log); None if not (Kafka: the test broker's answer is wrong, so its
        ends are learnt while reading)."""
        return None

    def ends_from(self, position_of: PositionOf) -> dict[str, int]:
        """Where each partition ends now, as a reader standing at `position_of` learns it
        (Kafka: the high-water marks its first fetch brings)."""
        return self.end_positions() or {}


class EventLog(LogReader):
    """An ordered, durable, partitioned log of events, keyed by customer id."""

    @abstractmethod
    def append(self, events: Sequence[tuple[AnyEvent, bytes]]) -> Appended:
        """Append (event, raw JSON) pairs in order, skipping event ids already on the log
        with the same content and refusing those on it with other content (conflicts).

        A customer event goes to its customer's partition; a `LogWideEvent` (a clock,
        a value model's fit) goes to every partition, for every customer.
        """

    @abstractmethod
    def close(self) -> None:
        """Release connections and files."""

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
