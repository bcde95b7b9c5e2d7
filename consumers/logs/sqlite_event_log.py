"""The embedded log: the default when no Kafka is configured, durable in one SQLite file.

It is the eventsourcing library's SQLite application recorder, whose notification log
is ordered and durable. One notification is a *segment*: the raw JSON events of one
append, up to `SEGMENT_SIZE`, stored as a JSON array. Reading one row per event through
the library measured 128 k events/s on this machine, below what the engine must
sustain; segments cut the per-event cost to one decode of a slice of bytes. The log has
one partition, so `Tracking(<log name>, <segment id>)` is a position in it.
"""

from __future__ import annotations

import fcntl
import sqlite3
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import msgspec
from eventsourcing.persistence import StoredEvent, Tracking
from eventsourcing.sqlite import SQLiteCursor, SQLiteDatastore, SQLiteProcessRecorder

from consumers.errors import LifecycleError
from consumers.logs.event_id_index import SQLiteEventIdIndex, sort_out
from consumers.logs.event_log import Appended, EventLog, PositionOf, RecordBatch
from schemas import AnyEvent, event_digest

SEGMENT_SIZE = 1_000
WRITER_WAIT = 120.0
"""Seconds an append waits for another writer of the same log to finish its own."""
SEGMENT_TOPIC = "segment:json-array"

_segment_decoder = msgspec.json.Decoder(list[msgspec.Raw])


class LogBusy(LifecycleError):
    """Another writer held the log longer than an append waits."""


def _segment(state: bytes) -> list[bytes] | list[msgspec.Raw]:
    """The records of one segment. Segments written by `append` are JSON arrays; one
    that cannot be split (written into the file by other means) is taken as one record,
    its content inside the brackets, which the engine dead-letters, rather than an
    error that stops every reader."""
    try:
        return _segment_decoder.decode(state)
    except (msgspec.MsgspecError, UnicodeDecodeError, RecursionError):
        return [state[1:-1] if state.startswith(b"[") and state.endswith(b"]") else state]


class SQLiteSegmentRecorder(SQLiteProcessRecorder):
    """A process recorder whose notifications are segments of events.

    Segments are versions of one originator (the log's name), so that two writers
    can never both append segment N: the primary key stops the second. As a process
    recorder it can record a segment together with the position of what caused it,
    which is how derived events are recorded exactly once.
    """

    def __init__(self, datastore: SQLiteDatastore, log_name: str) -> None:
        table = log_name.replace("-", "_")
        self.log_name = log_name
        self.event_ids = SQLiteEventIdIndex(f"{table}_event_ids")
        super().__init__(datastore, events_table_name=table)

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), self.event_ids.create_statement]

    def append_new(self, events: Sequence[tuple[AnyEvent, bytes]]) -> Appended:
        """Append events whose ids are not yet on the log, in one transaction."""
        keys = [[str(event.event_id)] for event, _ in events]
        digests = [event_digest(event) for event, _ in events]
        with self.datastore.transaction(commit=True) as cursor:
            known = self.event_ids.known(cursor, [key for (key,) in keys])
            sorted_out = sort_out(keys, digests, known)
            fresh = [index for index, _ in sorted_out.fresh]
            self._insert_events(cursor, self._segments(cursor, [events[index][1] for index in fresh]))
            self.event_ids.add(cursor, ((keys[index][0], digests[index]) for index in fresh))
        return Appended(len(fresh), sorted_out.duplicates, tuple(sorted_out.conflicts))

    def record(self, raws: list[bytes], tracking: Tracking) -> None:
        """Append `raws` and the position that caused them in one transaction.

        Recording a position that is not past the recorded one raises the library's
        `IntegrityError`: a batch is never recorded twice.
        """
        with self.datastore.transaction(commit=True) as cursor:
            self._insert_events(cursor, self._segments(cursor, raws), tracking=tracking)

    def _segments(self, cursor: SQLiteCursor, raws: list[bytes]) -> list[StoredEvent]:
        cursor.execute(
            f"SELECT MAX(originator_version) FROM {self.events_table_name} "
            "WHERE originator_id = ?",
            (self.log_name,),
        )
        version = cursor.fetchone()[0] or 0
        segments = []
        for start in range(0, len(raws), SEGMENT_SIZE):
            version += 1
            state = b"[" + b",".join(raws[start : start + SEGMENT_SIZE]) + b"]"
            segments.append(StoredEvent(self.log_name, version, SEGMENT_TOPIC, state))
        return segments


class SQLiteEventLog(EventLog):
    """The embedded, single-partition log in `<home>/<name>.sqlite`.

    Writers take turns: several `publish` runs and the engine's own appends (clocks,
    fits) may write one log at once, and SQLite refuses a second writer's transaction
    ("database is locked") rather than making it wait, so each append (and creating the
    tables) holds `<name>.append.lock` (an advisory lock), waiting up to `WRITER_WAIT`
    seconds for it.
    """

    def __init__(self, *, home: Path, name: str) -> None:
        super().__init__(name)
        home.mkdir(parents=True, exist_ok=True)
        self.path = self.path_of(home, name)
        self._lock_path = home / f"{name}.append.lock"
        self.datastore = SQLiteDatastore(
            str(self.path), lock_timeout=30, originator_id_type="text"
        )
        self.recorder = SQLiteSegmentRecorder(self.datastore, name)
        with self._writing():
            self.recorder.create_table()
            with self.datastore.transaction(commit=True) as cursor:
                self.recorder.event_ids.add_digests(cursor)

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the log's append lock, waiting a bounded time for another writer."""
        with self._lock_path.open("a") as lock:
            deadline = time.monotonic() + WRITER_WAIT
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        msg = (f"another writer has held {self.path} for {WRITER_WAIT:.0f} s: is a `publish` stuck? "
                               "Nothing of this append was written; try again when it is done")
                        raise LogBusy(msg) from None
                    time.sleep(0.01)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @staticmethod
    def path_of(home: Path, name: str) -> Path:
        return home / f"{name}.sqlite"

    def append(self, events: Sequence[tuple[AnyEvent, bytes]]) -> Appended:
        if not events:
            return Appended(0, 0)
        with self._writing():
            return self.recorder.append_new(events)

    def partitions(self) -> list[str]:
        return [self.name]

    def record(self, raws: list[bytes], tracking: Tracking) -> None:
        """Append derived events exactly once with respect to `tracking` (see the recorder)."""
        self.recorder.record(raws, tracking)

    def recorded_position(self, application_name: str) -> int | None:
        """The largest position of an upstream partition recorded with derived events."""
        return self.recorder.max_tracking_id(application_name)

    def end_positions(self) -> dict[str, int]:
        return {self.name: self.recorder.max_notification_id() or 0}

    def read(
        self,
        position_of: PositionOf,
        max_records: int = 10_000,
        *,
        partitions: Collection[str] | None = None,
        until: Mapping[str, int] | None = None,
    ) -> Iterator[RecordBatch]:
        if partitions is not None and self.name not in partitions:
            return
        position = position_of(self.name) or 0
        last = end = self.recorder.max_notification_id() or 0
        if until is not None and self.name in until:
            end = min(end, until[self.name])
        while position < end:
            values, positions, reached = self._segments_from(position, end, max_records)
            if reached == position:
                return
            position = reached
            yield RecordBatch(Tracking(self.name, position), values, positions, last)

    def _segments_from(self, position: int, end: int, max_records: int) -> tuple[list[bytes], list[int], int]:
        """The records of the segments after `position` (up to `end`), whole segments
        until there are `max_records`; their positions, and the position reached.

        Segments as small as one record (a clock, a fit, a publish of a few lines) are
        read on until the batch is full: a batch of a fixed number of segments would pay
        a batch's commit for a handful of records. Asking for no more segments than full
        ones would fill keeps a batch within `max_records` and one segment more.
        """
        values: list[bytes] = []
        positions: list[int] = []
        while len(values) < max_records and position < end:
            wanted = max(1, (max_records - len(values)) // SEGMENT_SIZE)
            notifications = self.recorder.select_notifications(position, wanted, stop=end, inclusive_of_start=False)
            if not notifications:
                break
            for notification in notifications:
                segment = _segment(notification.state)
                values.extend(segment)
                positions.extend([notification.id] * len(segment))
            position = notifications[-1].id
        return values, positions, position

    def close(self) -> None:
        self.datastore.close()


def check_sqlite(path: Path, thorough: bool) -> str | None:
    """Why the SQLite file at `path` cannot be trusted, or None if it can: SQLite's own
    `integrity_check` (`thorough`: every page, row and index entry) or `quick_check`
    (every page, without matching indexes to rows). Read-only."""
    if not path.exists():
        return "the file is missing"
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as error:
        return str(error)
    try:
        found = [line for (row,) in connection.execute(f"PRAGMA {'integrity' if thorough else 'quick'}_check(5)")
                 for line in row.splitlines() if line.strip()]
        return None if found == ["ok"] else "; ".join(found[:3]) + (" ..." if len(found) > 3 else "")
    except sqlite3.Error as error:
        return str(error)
    finally:
        connection.close()
