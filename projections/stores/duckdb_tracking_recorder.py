"""Log positions kept in DuckDB, in the same transactions as the read models they explain.

`DuckDBTrackingRecorder` is an eventsourcing `TrackingRecorder`: it passes the
library's own `TrackingRecorderTestCase`. As in the library's SQLite recorder with
single-row tracking, one row per application name holds the largest id; recording an
id that is not larger raises `IntegrityError`, which is what makes a batch that was
already recorded fail as a whole instead of being applied twice.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
from eventsourcing.persistence import IntegrityError, Tracking, TrackingRecorder

_CREATE = (
    "CREATE TABLE IF NOT EXISTS tracking ("
    "application_name VARCHAR PRIMARY KEY, notification_id BIGINT NOT NULL)"
)
_UPSERT = (
    "INSERT INTO tracking VALUES (?, ?) ON CONFLICT (application_name) "
    "DO UPDATE SET notification_id = excluded.notification_id "
    "WHERE tracking.notification_id < excluded.notification_id "
    "RETURNING notification_id"
)
_SELECT = "SELECT notification_id FROM tracking WHERE application_name = ?"


class DuckDBTrackingRecorder(TrackingRecorder):
    """Tracking in a DuckDB database (a file, or `:memory:`), one connection per recorder."""

    def __init__(self, database: str = ":memory:") -> None:
        self.database = database
        self.connection = duckdb.connect(database)
        # A DuckDB connection must not be used by two threads at once.
        self._lock = threading.RLock()
        with self.transaction() as connection:
            connection.execute(_CREATE)

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One DuckDB transaction: committed on success, rolled back on any error."""
        with self._lock:
            self.connection.begin()
            try:
                yield self.connection
            except BaseException:
                self.connection.rollback()
                raise
            self.connection.commit()

    @contextmanager
    def exclusive(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The connection, outside any transaction, for statements such as ATTACH."""
        with self._lock:
            yield self.connection

    def insert_tracking(self, tracking: Tracking) -> None:
        with self.transaction() as connection:
            self.record(connection, tracking)

    @staticmethod
    def record(connection: duckdb.DuckDBPyConnection, tracking: Tracking) -> None:
        """Record a position inside a transaction the caller holds."""
        rows = connection.execute(
            _UPSERT, [tracking.application_name, tracking.notification_id]
        ).fetchall()
        if not rows:
            msg = (
                f"position {tracking.notification_id} of {tracking.application_name!r} "
                "is not past the recorded one: this batch was already recorded"
            )
            raise IntegrityError(msg)

    def max_tracking_id(self, application_name: str) -> int | None:
        with self._lock:
            row = self.connection.execute(_SELECT, [application_name]).fetchone()
        return None if row is None else row[0]

    def positions(self) -> dict[str, int]:
        """Every recorded position, by application name."""
        with self._lock:
            rows = self.connection.execute(
                "SELECT application_name, notification_id FROM tracking ORDER BY 1"
            ).fetchall()
        return dict(rows)

    def close(self) -> None:
        with self._lock:
            self.connection.close()
