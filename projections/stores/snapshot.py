"""Read-only snapshots of the projections, for analysts while the engine writes.

DuckDB lets one process write a database file, and while it does no other process may
open it, not even to read. So a live engine publishes a copy now and then: it copies
every table into a new file beside the database and renames it over the previous
snapshot. The rename is atomic, so a reader opens either the old snapshot or the new
one, never a half-written file; a reader that has the old one open keeps it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb


def snapshot_path(database: Path) -> Path:
    return database.with_name(f"{database.stem}.snapshot{database.suffix}")


def publish_snapshot(connection: duckdb.DuckDBPyConnection, database: Path) -> Path:
    """Copy the database `connection` writes to its snapshot file; return the file."""
    target = snapshot_path(database)
    with written_whole(connection, target) as (source, copy):
        connection.execute(f'COPY FROM DATABASE "{source}" TO {copy}')
    return target


@contextmanager
def written_whole(connection: duckdb.DuckDBPyConnection, target: Path) -> Iterator[tuple[str, str]]:
    """A new database file attached to `connection`, renamed to `target` once the block
    has filled it (a reader opens the old file or the new one, never half of one):
    yields (the name of the database `connection` holds, the new one's)."""
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    source = connection.execute("SELECT current_database()").fetchone()[0]
    quoted = str(partial).replace("'", "''")
    connection.execute(f"ATTACH '{quoted}' AS lifecycle_snapshot")
    try:
        yield source, "lifecycle_snapshot"
    finally:
        connection.execute("DETACH lifecycle_snapshot")
    os.replace(partial, target)
