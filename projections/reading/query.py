"""Read-only queries against the projections, for analysts and the CLI.

Least access, enforced by DuckDB itself: the connection is read-only, external access
is off (no file but the projections can be read or written: no COPY TO, EXPORT,
ATTACH, read_csv, read_text, glob, INSTALL or LOAD), extensions are neither installed
nor loaded automatically, and the configuration is locked so no query can turn any of
this back on. A refused query is a `QueryRefused` that says why.

The database file itself is read when no engine holds it; while a live engine does,
its latest published snapshot is read instead, and the result says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import duckdb

from projections.errors import ProjectionError
from projections.stores.snapshot import snapshot_path

_LOCKED_DOWN = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
    "allow_persistent_secrets": False,
    # Last: once locked, no statement can change a setting, these included.
    "lock_configuration": True,
}

_REFUSED = (
    "refused: `lifecycle sql` only reads the projections; it cannot write, copy out, "
    "export, attach, read other files, install or load extensions, or change settings"
)


class QueryRefused(ProjectionError):
    """The query tried something analysts' read-only access does not allow."""


class QueryResult(NamedTuple):
    columns: list[str]
    rows: list[tuple[Any, ...]]
    source: Path
    """The file that answered: the database, or its snapshot while an engine holds it."""


def connect_read_only(database: Path) -> duckdb.DuckDBPyConnection:
    """A connection that can read `database` and nothing else, and change nothing."""
    return duckdb.connect(str(database), read_only=True, config=dict(_LOCKED_DOWN))


@contextmanager
def reading(database: Path) -> Iterator[tuple[duckdb.DuckDBPyConnection, Path]]:
    """A locked-down read-only connection to the projections, and the file it reads:
    the database, or its latest snapshot while a live engine holds the database."""
    if not database.exists():
        msg = f"no projections at {database}: run `lifecycle process` (or `make demo`) first"
        raise ProjectionError(msg)
    source = database
    try:
        connection = connect_read_only(database)
    except (duckdb.IOException, duckdb.ConnectionException) as error:
        source = snapshot_path(database)
        if not source.exists():
            msg = (
                f"cannot open {database} for reading: a running `lifecycle process` holds it "
                f"and has published no snapshot yet ({source}); try again shortly. ({error})"
            )
            raise ProjectionError(msg) from None
        connection = connect_read_only(source)
    try:
        yield connection, source
    finally:
        connection.close()


def run_query(database: Path, query: str) -> QueryResult:
    """`query`'s columns and rows, on a locked-down read-only connection to the projections."""
    with reading(database) as (connection, source):
        try:
            result = connection.execute(query)
            columns = [d[0] for d in result.description or []]
            return QueryResult(columns, result.fetchall(), source)
        except duckdb.PermissionException as error:
            raise QueryRefused(f"{_REFUSED} ({_first_line(error)})") from None
        except duckdb.Error as error:
            if _is_refusal(error):
                raise QueryRefused(f"{_REFUSED} ({_first_line(error)})") from None
            raise ProjectionError(f"query failed: {error}") from None


def _is_refusal(error: duckdb.Error) -> bool:
    text = str(error)
    return "read-only mode" in text or "configuration has been locked" in text or "Cannot launch in-memory" in text


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0]
