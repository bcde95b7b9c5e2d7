"""The access log: every read of personal data in clear, who, when, which customer and
which fields, in `<home>/access-log.sqlite`.

Only a reader whose role allows personal data in clear reads it, and each such read is
recorded before the data is shown (a read that cannot be recorded is not shown). The
log is append-only for the engine; a privacy officer reads it with `lifecycle
access-log --role privacy` (or any SQLite client).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

FILE = "access-log.sqlite"


class SQLiteAccessLog:
    def __init__(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(home / FILE, timeout=120, isolation_level=None)
        self._db.execute("CREATE TABLE IF NOT EXISTS reads (at TEXT NOT NULL, reader TEXT NOT NULL, "
                         "role TEXT NOT NULL, command TEXT NOT NULL, customer_id TEXT NOT NULL, fields TEXT NOT NULL)")

    def record(self, reader: str, role: str, command: str, reads: Iterable[tuple[str, Iterable[str]]]) -> None:
        """Record that `reader` read these (customer, fields) in clear now, in one transaction."""
        at = datetime.now(UTC).isoformat(timespec="seconds")
        rows = [(at, reader, role, command, customer_id, ",".join(sorted(fields))) for customer_id, fields in reads]
        if rows:
            with self._db:
                self._db.executemany("INSERT INTO reads VALUES (?, ?, ?, ?, ?, ?)", rows)

    def reads(self, customer_id: str | None = None) -> list[tuple[str, str, str, str, str, str]]:
        """The reads recorded (of one customer), oldest first."""
        if customer_id is None:
            return self._db.execute("SELECT * FROM reads ORDER BY rowid").fetchall()
        return self._db.execute("SELECT * FROM reads WHERE customer_id = ? ORDER BY rowid", (customer_id,)).fetchall()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SQLiteAccessLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
