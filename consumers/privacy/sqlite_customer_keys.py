"""Customer keys in one SQLite file of the home: the embedded default.

Written with SQLite's `secure_delete` (a deleted key is overwritten in the file, not left
in a free page) and a rollback journal (a write-ahead log would keep an old copy of the
page until a checkpoint), so an erased customer's wrapped key is gone from the disk's
file, not only from the answers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from pathlib import Path

from consumers.privacy.customer_keys import CustomerKeys, MasterKey, Row


class SQLiteCustomerKeys(CustomerKeys):
    """The home's customer keys, in `customer-keys.sqlite`."""

    FILE = "customer-keys.sqlite"

    def __init__(self, path: Path, master: MasterKey) -> None:
        super().__init__(master)
        self.where = str(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = _connect(path)
        self._db.execute("CREATE TABLE IF NOT EXISTS customer_keys (customer_id TEXT PRIMARY KEY, "
                         "wrapped BLOB NOT NULL, master TEXT NOT NULL)")

    def _transaction(self) -> AbstractContextManager[None]:
        return _transaction(self._db)

    def _select(self, customer_ids: list[str]) -> list[Row]:
        return self._db.execute(f"SELECT customer_id, wrapped, master FROM customer_keys WHERE customer_id IN "
                                f"({','.join('?' * len(customer_ids))})", customer_ids).fetchall()

    def _page(self, after: str, limit: int) -> list[Row]:
        return self._db.execute("SELECT customer_id, wrapped, master FROM customer_keys WHERE customer_id > ? "
                                "ORDER BY customer_id LIMIT ?", (after, limit)).fetchall()

    def _insert_new(self, rows: list[Row]) -> None:
        self._db.executemany("INSERT OR IGNORE INTO customer_keys VALUES (?, ?, ?)", rows)

    def _update(self, rows: list[Row]) -> None:
        self._db.executemany("UPDATE customer_keys SET wrapped = ?, master = ? WHERE customer_id = ?",
                             [(wrapped, master, c) for c, wrapped, master in rows])

    def _delete(self, customer_ids: list[str]) -> None:
        _delete(self._db, customer_ids)

    def close(self) -> None:
        self._db.close()


def delete_local_keys(path: Path, customer_ids: list[str]) -> None:
    """Delete these customers' keys from the file at `path`, if it exists."""
    if path.exists():
        with closing(_connect(path)) as db, _transaction(db):
            _delete(db, customer_ids)


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=120, isolation_level=None)
    db.execute("PRAGMA secure_delete = ON")
    db.execute("PRAGMA journal_mode = DELETE")
    return db


def _delete(db: sqlite3.Connection, customer_ids: list[str]) -> None:
    db.executemany("DELETE FROM customer_keys WHERE customer_id = ?", [(c,) for c in customer_ids])


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
