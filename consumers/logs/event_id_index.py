"""The event ids already on a log, with a digest of each event, in SQLite: what makes
publishing idempotent, and what tells a repeat from a conflict.

The same id with the same content is a repeat, skipped; the same id with other content
is a conflict, refused and reported (`schemas.event_digest`). The embedded log keeps
the index in its own database file, written in the same transaction as the events. For
Kafka it is a local projection of the topic, caught up from the topic itself before
each append, so that ids written by any producer count.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

# SQLite's default limit on host parameters in one statement is 32766; stay well below.
_CHUNK = 5_000

IndexEntry = tuple[str, bytes | None]
"""An index key (an event id, or `<id>@<partition>` for a Kafka clock) and its event's
digest (None for ids indexed before digests were kept: those never conflict)."""


class SQLiteEventIdIndex:
    """Event ids (as text) and digests in one table of an SQLite database, used through a cursor."""

    def __init__(self, table: str = "event_ids") -> None:
        self.table = table

    @property
    def create_statement(self) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {self.table} "
            "(event_id TEXT PRIMARY KEY, digest BLOB) WITHOUT ROWID"
        )

    def create_table(self, cursor: sqlite3.Cursor) -> None:
        cursor.execute(self.create_statement)
        self.add_digests(cursor)

    def add_digests(self, cursor: sqlite3.Cursor) -> None:
        """Give an index made before digests were kept its digest column."""
        cursor.execute(f"PRAGMA table_info({self.table})")
        columns = {row[1] for row in cursor.fetchall()}
        if "digest" not in columns:
            cursor.execute(f"ALTER TABLE {self.table} ADD COLUMN digest BLOB")

    def known(self, cursor: sqlite3.Cursor, keys: Sequence[str]) -> dict[str, bytes | None]:
        """Those of `keys` that are in the index, with their digests."""
        found: dict[str, bytes | None] = {}
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            cursor.execute(f"SELECT event_id, digest FROM {self.table} WHERE event_id IN ({marks})", chunk)
            found.update(cursor.fetchall())
        return found

    def add(self, cursor: sqlite3.Cursor, entries: Iterable[IndexEntry]) -> None:
        """Record keys; keys already present keep their first digest."""
        cursor.executemany(f"INSERT OR IGNORE INTO {self.table} (event_id, digest) VALUES (?, ?)", entries)


class SortedOut:
    """Which events of an append are new, repeats or conflicts (by index in the append)."""

    def __init__(self) -> None:
        self.fresh: list[tuple[int, list[str]]] = []
        """(index, the keys it is missing under): a clock may miss only some partitions."""
        self.duplicates = 0
        self.conflicts: list[int] = []


_ABSENT = object()


def sort_out(keys: Sequence[Sequence[str]], digests: Sequence[bytes], known: dict[str, bytes | None]) -> SortedOut:
    """Sort out the events of one append by their index keys and digests, given what
    the index `known`s (updated with the new events, so that a repeat within the
    append counts too)."""
    out = SortedOut()
    for index, (event_keys, digest) in enumerate(zip(keys, digests, strict=True)):
        if len(event_keys) == 1:  # a customer event: the common case, kept cheap
            seen = known.get(event_keys[0], _ABSENT)
            if seen is _ABSENT:
                known[event_keys[0]] = digest
                out.fresh.append((index, event_keys))
            elif seen is None or seen == digest:
                out.duplicates += 1
            else:
                out.conflicts.append(index)
            continue
        if any(known.get(key, digest) not in (digest, None) for key in event_keys):
            out.conflicts.append(index)
            continue
        missing = [key for key in event_keys if key not in known]
        if not missing:
            out.duplicates += 1
            continue
        for key in missing:
            known[key] = digest
        out.fresh.append((index, missing))
    return out
