"""The home directory's layout: the log of record, and generations of what is derived.

    <home>/customer-events.sqlite      the embedded log of record (or Kafka's id indexes)
    <home>/current                     the name of the generation in use, e.g. "derived-3"
    <home>/derived-3/views.duckdb      the projections (and their snapshot for analysts)
    <home>/derived-3/customer-lifecycle.sqlite   the lifecycle events, recorded once
    <home>/derived-3/states/           the engine's states (RocksDB)
    <home>/derived-3/format            the layout version of the generation
    <home>/derived-3/projector-of      in a projector's home only: the consumer group
                                       whose projections it holds (`lifecycle project`)
    <home>/engine.lock                 held by the one engine working on this home

Everything under a generation is derived from the log. A replay builds the next
generation beside the one in use and switches by replacing `current` (an atomic
rename), so a replay killed at any moment leaves the generation in use whole; the old
one is removed after the switch, and a half-built one when the next replay starts.
A generation of an older layout (`format`) is refused to the engine: a replay makes a
new one from the log.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from consumers.errors import ConfigurationError

POINTER = "current"
PREFIX = "derived-"
VIEWS = "views.duckdb"
LIFECYCLE_LOG = "customer-lifecycle.sqlite"
STATES = "states"
FORMAT_FILE = "format"
PROJECTOR = "projector-of"
FORMAT = 5
"""The layout of a generation: 2 since lifecycle events are chained (schemas/chain.py),
3 since records far ahead wait for time and changes time alone brings are dated at
their thresholds (lifecycle/partition_time.py, lifecycle/engine.py), 4 since lifecycle
events carry the customer's consents and `customers` their sources, programmes and
consents, 5 since `customer_facts` holds every contact, visit, survey, complaint,
membership, referral and consent (a generation of 4 would hold only those taken since);
a generation without the file is of format 1."""
_GENERATION = re.compile(rf"{PREFIX}[0-9]{{1,9}}")
# What homes made before generations held at their top: derived, so a replay replaces it.
_FLAT_LAYOUT = (VIEWS, "views.snapshot.duckdb", LIFECYCLE_LOG)


class EngineBusy(ConfigurationError):
    """Another engine holds this home."""


def current(home: Path) -> Path | None:
    """The generation in use, or None before the first one. The pointer must name one of
    the home's own generations: the engine replaces and removes generations, so a
    pointer leading anywhere else (`../victim`, an absolute path) is refused."""
    try:
        name = (home / POINTER).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    generation = home / name
    if not _GENERATION.fullmatch(name) or (generation.exists() and not _own(home, generation)):
        msg = (
            f"{home / POINTER} names {name!r}, which is not a generation of this home (a directory "
            f"{PREFIX}N inside it): put back the name of the newest {PREFIX}N there, or remove the file and "
            "run `lifecycle replay` to derive everything again from the log"
        )
        raise ConfigurationError(msg)
    return generation


def _own(home: Path, path: Path) -> bool:
    """Whether `path` is a generation directory of `home` itself: named like one, a real
    directory (not a link), directly inside the home."""
    return (bool(_GENERATION.fullmatch(path.name)) and path.is_dir() and not path.is_symlink()
            and path.resolve().parent == home.resolve())


def current_or_new(home: Path) -> Path:
    """The generation in use, made (empty) if there is none yet."""
    generation = current(home)
    if generation is not None:
        _check_format(generation)
        return generation
    if any((home / name).exists() for name in _FLAT_LAYOUT):
        msg = (
            f"{home} was made by an older version of the engine, which kept its projections at its "
            "top: run `lifecycle replay` once to derive them again from the log into the new layout"
        )
        raise ConfigurationError(msg)
    generation = home / f"{PREFIX}1"
    _make(generation)
    switch(home, generation)
    return generation


def projector_group(generation: Path) -> str | None:
    """The consumer group whose projections `generation` holds, if a projector's."""
    try:
        return (generation / PROJECTOR).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None


def claim_for_projector(generation: Path, group: str) -> None:
    """Make `generation` the projections of `group`; refused if it is an engine's, or
    another group's: one home holds one writer's projections."""
    found = projector_group(generation)
    if found is None and any((generation / name).exists() for name in (LIFECYCLE_LOG, STATES)):
        raise ConfigurationError(f"{generation.parent} holds a single engine's stores: give `lifecycle project` a "
                                 "home of its own (--home)")
    if found is not None and found != group:
        raise ConfigurationError(f"{generation.parent} holds the projections of the consumer group {found}: give "
                                 f"the group {group} a home of its own (--home)")
    if found is None:
        (generation / PROJECTOR).write_text(f"{group}\n", encoding="utf-8")


def refuse_projector(home: Path, command: str) -> None:
    """Refuse `command`, which needs an engine's home, on a projector's."""
    generation = current(home)
    group = None if generation is None else projector_group(generation)
    if group is not None:
        raise ConfigurationError(f"{home} holds the projections of the consumer group {group} (`lifecycle project`), "
                                 f"not an engine's stores: `{command}` needs an engine's home (another --home)")


def _make(generation: Path) -> None:
    generation.mkdir(parents=True, exist_ok=True)
    (generation / FORMAT_FILE).write_text(f"{FORMAT}\n", encoding="utf-8")


def _check_format(generation: Path) -> None:
    try:
        found = int((generation / FORMAT_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        found = 1
    if found != FORMAT:
        msg = (
            f"{generation} was derived by another version of the engine (layout {found}, this one "
            f"writes {FORMAT}): run `lifecycle replay` once to derive it again from the log"
        )
        raise ConfigurationError(msg)


def next_generation(home: Path) -> Path:
    """A new, empty generation beside the one in use (left-overs of killed replays go)."""
    in_use = current(home)
    numbers = [int(p.name[len(PREFIX):]) for p in home.glob(f"{PREFIX}*") if _GENERATION.fullmatch(p.name)]
    for path in home.glob(f"{PREFIX}*"):
        if path != in_use and _own(home, path):
            shutil.rmtree(path)
    generation = home / f"{PREFIX}{max(numbers, default=0) + 1}"
    _make(generation)
    return generation


def switch(home: Path, generation: Path) -> None:
    """Make `generation` the one in use, atomically; then remove what it replaces."""
    previous = current(home)
    partial = home / f"{POINTER}.partial"
    partial.write_text(generation.name + "\n", encoding="utf-8")
    with partial.open("rb") as written:
        os.fsync(written.fileno())
    os.replace(partial, home / POINTER)
    if previous is not None and previous != generation and _own(home, previous):
        shutil.rmtree(previous, ignore_errors=True)
    for name in _FLAT_LAYOUT:
        (home / name).unlink(missing_ok=True)


@contextmanager
def engine_lock(home: Path) -> Iterator[None]:
    """Hold the home for one engine (process, replay, demo); another gets `EngineBusy`."""
    home.mkdir(parents=True, exist_ok=True)
    with (home / "engine.lock").open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise EngineBusy(f"an engine is already working on {home} ({holder}): stop it first") from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()}")
        lock.flush()
        try:
            yield
        finally:
            lock.truncate(0)
