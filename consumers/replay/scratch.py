"""A replay into a scratch place, for comparing with the live stores.

`lifecycle verify` and `lifecycle replay --dry-run` both replay the log of record up
to the positions the live projections reached (so that like is compared with like)
into `<home>/scratch/`, beside the generation in use, holding the engine lock so that
the live stores do not move meanwhile; the scratch place is removed afterwards, and
nothing live is written.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from consumers import home
from consumers.errors import ConfigurationError
from consumers.logs.event_log import CUSTOMER_EVENTS
from consumers.replay import Progress, ReplayReport, derive_parts
from consumers.settings import Settings
from lifecycle.policy import Policy
from projections.reading.query import connect_read_only
from projections.bulk.scratch import DuckDBPyConnection, open_comparison

_SCRATCH = "scratch"


@dataclass(frozen=True)
class ScratchReplay:
    generation: Path
    """The generation in use: the live stores."""
    parts: Path
    """The replay's parts (projections/bulk/parts.py)."""
    report: ReplayReport
    positions: dict[str, int]
    """Where the live projections stand in each log partition replayed: the replay's ends."""

    def compare(self) -> DuckDBPyConnection:
        """A scratch DuckDB database with the live projections attached read-only as `live`."""
        return open_comparison(self.parts.parent / "compare.duckdb", self.generation / home.VIEWS)


@contextmanager
def scratch_replay(
    settings: Settings, policy: Policy, workers: int, progress: Progress | None = None,
    scope: Sequence[str] | None = None,
) -> Iterator[ScratchReplay]:
    """The replay, of the log partitions in `scope` only if given."""
    settings.require_home()
    with home.engine_lock(settings.home):
        generation = home.current(settings.home)
        if generation is None or not (generation / home.VIEWS).exists():
            raise ConfigurationError(f"nothing derived in {settings.home} yet: run `lifecycle process` first")
        scratch = settings.home / _SCRATCH
        shutil.rmtree(scratch, ignore_errors=True)
        (scratch / "parts").mkdir(parents=True)
        try:
            until = _positions(generation / home.VIEWS, scope)
            report, _ = derive_parts(settings, policy, workers, scratch / "parts", progress, until)
            yield ScratchReplay(generation, scratch / "parts", report, until)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def _positions(views: Path, scope: Sequence[str] | None) -> dict[str, int]:
    """Where the live projections stand in each log partition (of `scope`, if given)."""
    connection = connect_read_only(views)
    try:
        held = dict(connection.execute("SELECT application_name, notification_id FROM tracking").fetchall())
    finally:
        connection.close()
    held = {name: at for name, at in held.items() if name.startswith(f"{CUSTOMER_EVENTS}:") or name == CUSTOMER_EVENTS}
    if scope is None:
        return held
    missing = [name for name in scope if name not in held]
    if missing:
        raise ConfigurationError(f"the projections hold nothing of {', '.join(missing)}; they hold "
                                 f"{', '.join(sorted(held)) or 'nothing yet'}")
    return {name: held[name] for name in scope}
