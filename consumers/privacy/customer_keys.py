"""The keys of personal data: a key per customer, wrapped by a master key.

Envelope encryption, as Axon's and the crypto-shredding literature's: each customer's
personal data is sealed with a data key of their own (AES-256-GCM,
consumers/privacy/personal_data.py); the data key is stored only wrapped (AES-256-GCM) by the
master key, which lives in a file of its own (`--master-key`, env
`LIFECYCLE_MASTER_KEY`; by default `<home>/master.key`, made on first use) and never
on a log. Erasing a customer deletes their wrapped key: every copy of their sealed data
(the log, its backups, topics, exports) is then unreadable, and no key the system
holds opens it.

Who needs the keys: `publish` (to seal), and a reader allowed personal data in clear.
The engine, `replay` and `verify` never do: no rule reads personal data.

The wrapped keys live in `<home>/customer-keys.sqlite`, written with SQLite's
`secure_delete` (a deleted key is overwritten in the file, not left in a free page) and
a rollback journal (no write-ahead log keeps an old copy of the page). Rotating the
master key re-wraps every customer key in one transaction; nothing on the log changes.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from consumers.errors import ConfigurationError
from consumers.settings import Settings

KEY_BYTES = 32
_NONCE = 12
_PER_QUERY = 500
_CACHED = 100_000
"""Customer keys kept unwrapped in memory: a publish of a large file meets a customer
again soon, and each unwrap costs an AES-GCM decryption."""


class MasterKey:
    """The key that wraps every customer key; `fingerprint` names it without telling it."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) != KEY_BYTES:
            raise ConfigurationError(f"a master key is {KEY_BYTES} bytes, base64-encoded; this one has {len(secret)}")
        self._aead = AESGCM(secret)
        self.fingerprint = hashlib.sha256(b"lifecycle master key\x00" + secret).hexdigest()[:16]

    @classmethod
    def load(cls, path: Path, create: bool = False) -> MasterKey:
        """The master key in `path` (base64, one line); made there (mode 0600) if it is
        missing and `create`."""
        if not path.exists() and create:
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w", encoding="ascii") as file:
                file.write(base64.b64encode(os.urandom(KEY_BYTES)).decode() + "\n")
        try:
            text = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            msg = (f"no master key at {path}: personal data cannot be read or sealed without it; point "
                   "--master-key or LIFECYCLE_MASTER_KEY at the key file")
            raise ConfigurationError(msg) from None
        except (UnicodeDecodeError, OSError) as error:
            raise ConfigurationError(f"the master key at {path} cannot be read: {error}") from None
        try:
            secret = base64.b64decode(text, validate=True)
        except ValueError:
            raise ConfigurationError(f"the master key at {path} is not base64 (one line of it)") from None
        return cls(secret)

    def wrap(self, customer_id: str, key: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, key, customer_id.encode())

    def unwrap(self, customer_id: str, wrapped: bytes) -> bytes:
        """The customer key `wrapped` holds; ValueError if this master key did not wrap it."""
        try:
            return self._aead.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], customer_id.encode())
        except InvalidTag:
            raise ValueError(f"master key {self.fingerprint} does not open the key of customer {customer_id}") from None


class SQLiteCustomerKeys:
    """Customer keys in one SQLite file, wrapped by `master`. Several publishers of one
    home may make a customer's key at once: the first one written is everyone's."""

    FILE = "customer-keys.sqlite"

    def __init__(self, path: Path, master: MasterKey) -> None:
        self.path, self.master = path, master
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=120, isolation_level=None)
        self._db.execute("PRAGMA secure_delete = ON")
        self._db.execute("PRAGMA journal_mode = DELETE")
        self._db.execute("CREATE TABLE IF NOT EXISTS customer_keys (customer_id TEXT PRIMARY KEY, "
                         "wrapped BLOB NOT NULL, master TEXT NOT NULL)")
        self._cache: dict[str, bytes] = {}

    def key(self, customer_id: str) -> bytes | None:
        """The customer's key, or None if they have none (never sealed, or erased)."""
        return self.keys([customer_id]).get(customer_id)

    def keys(self, customer_ids: Iterable[str]) -> dict[str, bytes]:
        """The keys these customers have (not those without one)."""
        customer_ids = list(customer_ids)
        found = {c: self._cache[c] for c in customer_ids if c in self._cache}
        missing = [c for c in customer_ids if c not in found]
        for start in range(0, len(missing), _PER_QUERY):
            chunk = missing[start:start + _PER_QUERY]
            rows = self._db.execute(f"SELECT customer_id, wrapped, master FROM customer_keys WHERE customer_id IN "
                                    f"({','.join('?' * len(chunk))})", chunk).fetchall()
            for customer_id, wrapped, master in rows:
                found[customer_id] = self._cache[customer_id] = self._unwrap(customer_id, wrapped, master)
        self._trim()
        return found

    def keys_or_new(self, customer_ids: Iterable[str]) -> dict[str, bytes]:
        """Every one of these customers' keys, those without one made and stored first,
        in one transaction."""
        wanted = list(dict.fromkeys(customer_ids))
        found = self.keys(wanted)
        new = [(c, self.master.wrap(c, os.urandom(KEY_BYTES)), self.master.fingerprint)
               for c in wanted if c not in found]
        if new:
            with _transaction(self._db):
                self._db.executemany("INSERT OR IGNORE INTO customer_keys VALUES (?, ?, ?)", new)
            found.update(self.keys([c for c, _, _ in new]))
        return found

    def destroy(self, customer_ids: Iterable[str]) -> None:
        """Erase these customers' keys: what was sealed with them is unreadable from now on."""
        ids = list(customer_ids)
        _delete(self._db, ids)
        for customer_id in ids:
            self._cache.pop(customer_id, None)

    def rewrap(self, new: MasterKey) -> int:
        """Wrap every customer key by `new` instead, in one transaction: the keys and
        what they sealed stay the same. Returns how many were re-wrapped."""
        done, after = 0, ""
        with _transaction(self._db):
            while rows := self._db.execute("SELECT customer_id, wrapped, master FROM customer_keys WHERE "
                                           "customer_id > ? ORDER BY customer_id LIMIT ?", (after, _PER_QUERY)).fetchall():
                self._db.executemany("UPDATE customer_keys SET wrapped = ?, master = ? WHERE customer_id = ?", [
                    (new.wrap(c, self._unwrap(c, wrapped, master)), new.fingerprint, c) for c, wrapped, master in rows])
                done, after = done + len(rows), rows[-1][0]
        self.master = new
        return done

    def _trim(self) -> None:
        if len(self._cache) > _CACHED:
            for customer_id in list(self._cache)[: len(self._cache) - _CACHED]:
                del self._cache[customer_id]

    def wrapped_keys(self) -> list[tuple[str, bytes]]:
        """Every (customer id, wrapped key) held: what an auditor checks erasure against."""
        return self._db.execute("SELECT customer_id, wrapped FROM customer_keys").fetchall()

    def _unwrap(self, customer_id: str, wrapped: bytes, master: str) -> bytes:
        if master != self.master.fingerprint:
            msg = (f"the key of customer {customer_id} in {self.path} is wrapped by master key {master}, not by "
                   f"the one given ({self.master.fingerprint}): give the master key this home uses")
            raise ConfigurationError(msg)
        return self.master.unwrap(customer_id, wrapped)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SQLiteCustomerKeys:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_customer_keys(settings: Settings) -> SQLiteCustomerKeys:
    """The home's customer keys, under the configured master key (the default one made
    on first use; a master key named but missing is an error)."""
    master = MasterKey.load(settings.master_key_path, create=settings.master_key is None)
    return SQLiteCustomerKeys(settings.home / SQLiteCustomerKeys.FILE, master)


def destroy_keys(path: Path, customer_ids: list[str]) -> None:
    """Delete these customers' keys from the key store at `path`, if it exists: what the
    engine does for each erasure it processes, so that one written to the log by another
    producer than `publish` erases too. Needs no master key: it only deletes."""
    if not customer_ids or not path.exists():
        return
    with closing(sqlite3.connect(path, timeout=120, isolation_level=None)) as db:
        db.execute("PRAGMA secure_delete = ON")
        _delete(db, customer_ids)


def _delete(db: sqlite3.Connection, customer_ids: list[str]) -> None:
    with _transaction(db):
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
