"""Customer keys in PostgreSQL: one store that several publishing machines share.

With Kafka, publishers on several machines must seal a customer's data under the same
key, and an erasure must take the key from all of them at once. A database they all
reach gives both: the first key inserted for a customer is everyone's (`ON CONFLICT DO
NOTHING`, then read back), and a deletion is gone for every reader when it commits.
The store holds only wrapped keys: without the master key, which is never sent here,
it opens nothing.

PostgreSQL does not overwrite a deleted row at once: its bytes stay in the table's file
until VACUUM prunes the page and reuses the space, and in write-ahead log segments until
they are recycled. The table is made with an autovacuum threshold of one dead row, so
autovacuum takes each erasure within its nap time (a minute by default), in the
background and batched, rather than a VACUUM per erasure, which reads the whole index
each time. A key store's backups must expire as the organisation's erasure deadline
asks: what SQLite's `secure_delete` gives the embedded default at once, PostgreSQL gives
on its own schedule.

The table is `customer_keys`, made on first use; the address is a libpq one
(`postgresql://user@host:5432/db`; the password from PGPASSWORD or ~/.pgpass rather
than on a command line).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import conninfo

from consumers.errors import KeyStoreUnavailable
from consumers.privacy.customer_keys import CustomerKeys, MasterKey, Row

_LOCK = 0x6C6966656B657973
"""The advisory lock taken around making the table: PostgreSQL's CREATE TABLE IF NOT
EXISTS fails, rather than waits, when another session makes the same table at once."""
_TABLE = ("CREATE TABLE IF NOT EXISTS customer_keys (customer_id TEXT COLLATE \"C\" PRIMARY KEY, wrapped BYTEA NOT NULL, "
          "master TEXT NOT NULL) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1)")


class PostgreSQLCustomerKeys(CustomerKeys):
    """The customer keys in the PostgreSQL database at `address`."""

    def __init__(self, address: str, master: MasterKey) -> None:
        super().__init__(master)
        self.where = described(address)
        self._db = _connect(address)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with _failing(self.where), self._db.transaction():
            yield

    def _select(self, customer_ids: list[str]) -> list[Row]:
        with _failing(self.where):
            return self._db.execute("SELECT customer_id, wrapped, master FROM customer_keys WHERE customer_id = "
                                    "ANY(%s)", (customer_ids,)).fetchall()

    def _page(self, after: str, limit: int) -> list[Row]:
        with _failing(self.where):
            return self._db.execute("SELECT customer_id, wrapped, master FROM customer_keys WHERE customer_id > %s "
                                    "ORDER BY customer_id LIMIT %s", (after, limit)).fetchall()

    def _insert_new(self, rows: list[Row]) -> None:
        self._db.execute("INSERT INTO customer_keys SELECT * FROM unnest(%s::text[], %s::bytea[], %s::text[]) "
                         "ON CONFLICT (customer_id) DO NOTHING", _columns(rows))

    def _update(self, rows: list[Row]) -> None:
        self._db.execute("UPDATE customer_keys k SET wrapped = n.wrapped, master = n.master FROM unnest(%s::text[], "
                         "%s::bytea[], %s::text[]) AS n(customer_id, wrapped, master) "
                         "WHERE k.customer_id = n.customer_id", _columns(rows))

    def _delete(self, customer_ids: list[str]) -> None:
        _delete(self._db, customer_ids)

    def close(self) -> None:
        self._db.close()


def delete_shared_keys(address: str, customer_ids: list[str]) -> None:
    """Delete these customers' keys from the database at `address`."""
    where = described(address)
    with _failing(where), _connect(address) as db:
        _delete(db, customer_ids)


def described(address: str) -> str:
    """`address` without its password: what messages may show."""
    try:
        parts = conninfo.conninfo_to_dict(address)
    except psycopg.ProgrammingError as error:
        raise KeyStoreUnavailable(f"the key store address is not a PostgreSQL one: {error}; give "
                                  "--key-store postgresql://user@host:5432/database") from None
    host, port, database = parts.get("host", "localhost"), parts.get("port", "5432"), parts.get("dbname", "")
    return f"postgresql://{host}:{port}/{database}"


def _connect(address: str) -> psycopg.Connection:
    where = described(address)
    with _failing(where):
        db = psycopg.connect(address, autocommit=True, connect_timeout=10)
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            db.execute(_TABLE)
        return db


def _delete(db: psycopg.Connection, customer_ids: list[str]) -> None:
    db.execute("DELETE FROM customer_keys WHERE customer_id = ANY(%s)", (customer_ids,))


def _columns(rows: list[Row]) -> tuple[list[str], list[bytes], list[str]]:
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


@contextmanager
def _failing(where: str) -> Iterator[None]:
    try:
        yield
    except psycopg.OperationalError as error:
        reason = " ".join(str(error).split())
        raise KeyStoreUnavailable(f"the key store at {where} cannot be reached or written: {reason}; check "
                                  "--key-store (env LIFECYCLE_KEY_STORE) and that the database is up") from None
