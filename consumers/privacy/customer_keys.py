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

Where the wrapped keys live is the key store's to say: by default one SQLite file in the
home (consumers/privacy/sqlite_customer_keys.py), for one publishing machine; with
several, a PostgreSQL database they all reach (`--key-store postgresql://...`,
consumers/privacy/postgres_customer_keys.py). `CustomerKeys` holds what both share: the
master key, the unwrapped keys in memory, first-key-wins creation. Rotating the master
key re-wraps every customer key in one transaction; nothing on the log changes.
"""

from __future__ import annotations

import base64
import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from consumers.errors import ConfigurationError

KEY_BYTES = 32
_NONCE = 12
PER_QUERY = 500
_CACHED = 100_000
"""Customer keys kept unwrapped in memory, by their wrapped bytes: a publish of a large
file meets a customer again soon, and each unwrap costs an AES-GCM decryption. Keyed by
the wrapped bytes, which every lookup reads from the store again, because another
publisher may have erased the customer in the meantime: a key held only in memory would
seal new data that nobody can open."""

Row = tuple[str, bytes, str]
"""A stored key: customer id, wrapped key, fingerprint of the master key that wrapped it."""


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
            _make(path)
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


def _make(path: Path) -> None:
    """A new master key at `path`, unless another process makes one there first: written
    whole to a file of its own, then linked into place, so no reader sees half a key and
    two first uses at once agree on one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(base64.b64encode(os.urandom(KEY_BYTES)).decode() + "\n")
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        draft.unlink()


class CustomerKeys(ABC):
    """Customer keys wrapped by `master`, in a store of the subclass's. Several publishers
    may make a customer's key at once: the first one stored is everyone's."""

    where: str
    """The store, for messages (a path or a database address without its password)."""

    def __init__(self, master: MasterKey) -> None:
        self.master = master
        self._unwrapped: dict[bytes, bytes] = {}

    def key(self, customer_id: str) -> bytes | None:
        """The customer's key, or None if they have none (never sealed, or erased)."""
        return self.keys([customer_id]).get(customer_id)

    def keys(self, customer_ids: Iterable[str]) -> dict[str, bytes]:
        """The keys these customers have (not those without one)."""
        wanted = list(dict.fromkeys(customer_ids))
        found = {}
        for start in range(0, len(wanted), PER_QUERY):
            for customer_id, wrapped, master in self._select(wanted[start:start + PER_QUERY]):
                key = self._unwrapped.get(wrapped)
                if key is None:
                    key = self._unwrapped[wrapped] = self._unwrap(customer_id, wrapped, master)
                found[customer_id] = key
        if len(self._unwrapped) > _CACHED:
            for wrapped in list(self._unwrapped)[: len(self._unwrapped) - _CACHED]:
                del self._unwrapped[wrapped]
        return found

    def keys_or_new(self, customer_ids: Iterable[str]) -> dict[str, bytes]:
        """Every one of these customers' keys, those without one made and stored first,
        in one transaction."""
        wanted = list(dict.fromkeys(customer_ids))
        found = self.keys(wanted)
        # In id order, so that two publishers making the same keys lock them in the same
        # order and never wait on each other in a cycle.
        new = [(c, self.master.wrap(c, os.urandom(KEY_BYTES)), self.master.fingerprint)
               for c in sorted(wanted) if c not in found]
        if new:
            with self._transaction():
                self._insert_new(new)
            found.update(self.keys([c for c, _, _ in new]))
        return found

    def destroy(self, customer_ids: Iterable[str]) -> None:
        """Erase these customers' keys: what was sealed with them is unreadable from now on."""
        with self._transaction():
            self._delete(list(customer_ids))

    def rewrap(self, new: MasterKey, progress: Callable[[int], None] | None = None) -> int:
        """Wrap every customer key by `new` instead, in one transaction: the keys and
        what they sealed stay the same. Returns how many were re-wrapped; `progress`
        is told how many so far after each page of them."""
        done, after = 0, ""
        with self._transaction():
            while rows := self._page(after, PER_QUERY):
                self._update([(c, new.wrap(c, self._unwrap(c, wrapped, master)), new.fingerprint)
                              for c, wrapped, master in rows])
                done, after = done + len(rows), rows[-1][0]
                if progress is not None:
                    progress(done)
        self.master = new
        return done

    def wrapped_keys(self) -> list[tuple[str, bytes]]:
        """Every (customer id, wrapped key) held: what an auditor checks erasure against."""
        rows, after = [], ""
        while page := self._page(after, PER_QUERY):
            rows += [(c, wrapped) for c, wrapped, _ in page]
            after = page[-1][0]
        return rows

    def _unwrap(self, customer_id: str, wrapped: bytes, master: str) -> bytes:
        if master != self.master.fingerprint:
            msg = (f"the key of customer {customer_id} in {self.where} is wrapped by master key {master}, not by "
                   f"the one given ({self.master.fingerprint}): give the master key this key store uses")
            raise ConfigurationError(msg)
        return self.master.unwrap(customer_id, wrapped)

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[None]:
        """Commits what is written inside it at once, or nothing."""

    @abstractmethod
    def _select(self, customer_ids: list[str]) -> list[Row]:
        """The stored keys of these customers (at most PER_QUERY of them)."""

    @abstractmethod
    def _page(self, after: str, limit: int) -> list[Row]:
        """Up to `limit` stored keys, of the customers after `after` in id order."""

    @abstractmethod
    def _insert_new(self, rows: list[Row]) -> None:
        """Store these keys, keeping the one already stored where a customer has one."""

    @abstractmethod
    def _update(self, rows: list[Row]) -> None:
        """Replace these customers' wrapped keys."""

    @abstractmethod
    def _delete(self, customer_ids: list[str]) -> None:
        """Delete these customers' keys, so that no copy stays readable in the store."""

    @abstractmethod
    def close(self) -> None:
        """Let go of the store."""

    def __enter__(self) -> CustomerKeys:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

