"""The set of event ids already on a log, in SQLite: what makes publishing idempotent.

The embedded log keeps it in its own database file, written in the same transaction
as the events. For Kafka it is a local projection of the topic, caught up from the
topic itself before each append, so that ids written by any producer count.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

# SQLite's default limit on host parameters in one statement is 32766; stay well below.
_CHUNK = 5_000


class SQLiteEventIdIndex:
    """Event ids (as text) in one table of an SQLite database, used through a cursor."""

    def __init__(self, table: str = "event_ids") -> None:
        self.table = table

    @property
    def create_statement(self) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {self.table} "
            "(event_id TEXT PRIMARY KEY) WITHOUT ROWID"
        )

    def create_table(self, cursor: sqlite3.Cursor) -> None:
        cursor.execute(self.create_statement)

    def known(self, cursor: sqlite3.Cursor, event_ids: Sequence[str]) -> set[str]:
        """Those of `event_ids` that are in the index."""
        found: set[str] = set()
        for start in range(0, len(event_ids), _CHUNK):
            chunk = event_ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            cursor.execute(
                f"SELECT event_id FROM {self.table} WHERE event_id IN ({marks})", chunk
            )
            found.update(row[0] for row in cursor.fetchall())
        return found

    def add(self, cursor: sqlite3.Cursor, event_ids: Iterable[str]) -> None:
        """Record ids; ids already present are left as they are."""
        cursor.executemany(
            f"INSERT OR IGNORE INTO {self.table} (event_id) VALUES (?)",
            ((event_id,) for event_id in event_ids),
        )
