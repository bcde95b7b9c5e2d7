"""What a store's failure means to an operator: a damaged file or a full disk, told apart
from the engine's own errors, named, and said in one line with what to do.

The stores of a home (consumers/home.py): the embedded log of record
(`customer-events.sqlite`; with Kafka the brokers keep it), and in the generation in use
the projections (`views.duckdb`), the lifecycle log (`customer-lifecycle.sqlite`) and
the states (`states/`, RocksDB). A generation is derived from the log, so a damaged one
is mended by `lifecycle replay`; the log of record is not derived, so only a backup
mends it.

Each library finds damage its own way and only where it reads: DuckDB checks a block's
checksum when it reads the block, SQLite finds a malformed page when it walks it,
RocksDB checks its manifest and file sizes when it opens and block checksums when it
reads. So `check` reads: all of every store when `thorough` (`lifecycle verify`),
otherwise what opening needs. A command that meets damage while it works (or a full
disk) fails with `StoreDamaged` (or `DiskFull`) instead of the library's traceback
(`told`).
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


from consumers import home
from consumers.errors import LifecycleError
from consumers.logs.event_log import CUSTOMER_EVENTS
from consumers.settings import Settings
from consumers.logs.sqlite_event_log import SQLiteEventLog, check_sqlite
from projections.stores.projection_store import check_projections
from projections.stores.state_store import check_states, read_positions

LOG_OF_RECORD = "the log of record"
PROJECTIONS = "the projections database"
LIFECYCLE_LOG = "the lifecycle log"
STATES = "the state store"

_FULL = ("no space left on device", "database or disk is full", "disk quota exceeded")
_DAMAGED = ("corrupt", "malformed", "checksum", "could not read enough bytes", "file is not a database",
            "not a valid duckdb database", "size mismatch", "while open a file", "does not exist")


@dataclass(frozen=True)
class Damage:
    """A store that cannot be trusted: which, where, and why (the library's words)."""

    store: str
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.store} at {self.path} is damaged ({' '.join(self.reason.split())})"


class StoreDamaged(LifecycleError):
    """A store of the home is damaged; the message says which and how to mend it."""

    def __init__(self, damages: tuple[Damage, ...]) -> None:
        self.damages = damages
        super().__init__(f"{'; '.join(map(str, damages))}: {remedy(damages)}")


class DiskFull(LifecycleError):
    """The disk filled up while a command wrote; the message says what was kept."""


def remedy(damages: tuple[Damage, ...]) -> str:
    """What to do about `damages`, in words."""
    if any(d.store == LOG_OF_RECORD for d in damages):
        return ("the log of record is not derived from anything, so the engine cannot rebuild it: stop every "
                "writer, restore it from a backup (or salvage what SQLite can: `sqlite3 customer-events.sqlite "
                "'.recover'`), then run `lifecycle replay`")
    return ("everything in a generation is derived from the log: run `lifecycle replay` to derive a new one "
            "(the damaged one is removed when the new one is switched in; the log is not touched)")


_GOES_ON = frozenset(("process", "clock", "fit-value-model", "demo"))
_EVERY = frozenset((LOG_OF_RECORD, PROJECTIONS, LIFECYCLE_LOG, STATES))


def check(settings: Settings, thorough: bool, only: frozenset[str] = _EVERY) -> tuple[Damage, ...]:
    """The damaged stores of the home (of those named in `only`): the embedded log of
    record, then the generation in use (none before the first run)."""
    found: list[Damage] = []
    if settings.kafka is None and LOG_OF_RECORD in only:
        log = SQLiteEventLog.path_of(settings.home, CUSTOMER_EVENTS)
        if log.exists():
            found += _damage(LOG_OF_RECORD, log, check_sqlite(log, thorough))
    generation = home.current(settings.home)
    if generation is not None and generation.exists():
        found += check_generation(generation, thorough, only)
    return tuple(found)


def check_generation(generation: Path, thorough: bool, only: frozenset[str] = _EVERY) -> list[Damage]:
    """The damaged stores of one generation. A store not made yet is not damage, except
    when the others exist (they are made together)."""
    stores = ((PROJECTIONS, generation / home.VIEWS, check_projections),
              (LIFECYCLE_LOG, generation / home.LIFECYCLE_LOG, check_sqlite),
              (STATES, generation / home.STATES, check_states))
    if not any(path.exists() for _, path, _ in stores):
        return []
    if home.projector_group(generation) is not None:
        stores = stores[:1]  # a projector's home holds the projections alone
    return [d for store, path, checking in stores if store in only
            for d in _damage(store, path, checking(path, thorough))]


def _damage(store: str, path: Path, reason: str | None) -> list[Damage]:
    return [] if reason is None else [Damage(store, path, reason)]


def told(error: BaseException, settings: Settings | None, command: str) -> LifecycleError | None:
    """`error` as an operator should be told it, if it is a full disk or a damaged store
    (None otherwise: it is the engine's own, and stays a traceback to report)."""
    if disk_full(error):
        return DiskFull(_full(settings, command, _cause(error, _FULL)))
    if settings is None or not any(map(_says_damaged, _chain(error))):
        return None
    suspect = _where(error, settings)
    only = frozenset((LOG_OF_RECORD, LIFECYCLE_LOG)) if suspect.store == LIFECYCLE_LOG else frozenset((suspect.store,))
    return StoreDamaged(check(settings, thorough=False, only=only) or (suspect,))


def _cause(error: BaseException, words: tuple[str, ...]) -> BaseException:
    """The error in the chain that says what happened (a library's later errors say only
    that the transaction it was in is aborted)."""
    return next((e for e in reversed(list(_chain(error))) if any(w in str(e).lower() for w in words)), error)


def disk_full(error: BaseException) -> bool:
    """Whether `error` says that the disk is full (each library says it its own way)."""
    return any(getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or any(w in str(e).lower() for w in _FULL)
               for e in _chain(error))


def _full(settings: Settings | None, command: str, error: BaseException) -> str:
    kept = "every append that completed is on the log; each store keeps its last whole commit"
    generation = home.current(settings.home) if settings is not None else None
    if generation is not None:
        positions = read_positions(generation / home.STATES)
        if positions:
            reached = ", ".join(f"position {p:,} of {name}" for name, p in sorted(positions.items()))
            kept += f" ({generation.name} is derived up to {reached})"
        elif positions is not None:
            kept += f" ({generation.name} has no checkpoint yet: it is derived again from the start of the log)"
    if command == "replay":
        kept += "; the half-built generation was removed (a replay needs about as much space again as the one in use)"
    again = ": it goes on from there" if command in _GOES_ON else ""
    return (f"the disk is full ({' '.join(str(error).split())}): {kept}; nothing half-written is used. "
            f"Free some space, then run `lifecycle {command}` again{again}")


def _says_damaged(error: BaseException) -> bool:
    """Whether a store's library raised `error` about damage: DuckDB's I/O errors (its
    catalog errors, a query's "does not exist", are not), SQLite's, RocksDB's (plain
    `Exception`s with RocksDB's status text)."""
    if _from(error, "duckdb", "_duckdb") and type(error).__name__ != "IOException":
        return False
    if not (isinstance(error, sqlite3.DatabaseError) or _from(error, "duckdb", "_duckdb", "eventsourcing")
            or type(error) is Exception):
        return False
    text = str(error).lower()
    return any(words in text for words in _DAMAGED)


def _from(error: BaseException, *libraries: str) -> bool:
    """Whether `error` is one of these libraries' own (told by module: only the
    projections import DuckDB)."""
    return type(error).__module__.split(".")[0] in libraries


def _where(error: BaseException, settings: Settings) -> Damage:
    """The store an error came from, told by the library that raised it (SQLite's may be
    either log: the checks tell); what is said when no check finds the damage (an index
    block is read only by the write that uses it)."""
    generation = home.current(settings.home) or settings.home
    chain, reason = list(_chain(error)), str(_cause(error, _DAMAGED))
    if any(_from(e, "duckdb", "_duckdb") for e in chain):
        return Damage(PROJECTIONS, generation / home.VIEWS, reason)
    if any(isinstance(e, sqlite3.DatabaseError) or _from(e, "eventsourcing") for e in chain):
        return Damage(LIFECYCLE_LOG, generation / home.LIFECYCLE_LOG, reason)
    return Damage(STATES, generation / home.STATES, reason)


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = error
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__
