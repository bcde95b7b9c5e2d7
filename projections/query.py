"""Read-only queries against the projections, for analysts and the CLI.

The database file itself is read when no engine holds it; while a live engine does,
its latest published snapshot is read instead, and the result says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import duckdb

from projections.errors import ProjectionError
from projections.snapshot import snapshot_path


class QueryResult(NamedTuple):
    columns: list[str]
    rows: list[tuple[Any, ...]]
    source: Path
    """The file that answered: the database, or its snapshot while an engine holds it."""


def run_query(database: Path, query: str) -> QueryResult:
    """`query`'s columns and rows, on a read-only connection to the projections."""
    if not database.exists():
        msg = f"no projections at {database}: run `lifecycle process` (or `make demo`) first"
        raise ProjectionError(msg)
    source = database
    try:
        connection = duckdb.connect(str(database), read_only=True)
    except (duckdb.IOException, duckdb.ConnectionException) as error:
        source = snapshot_path(database)
        if not source.exists():
            msg = (
                f"cannot open {database} for reading: a running `lifecycle process` holds it "
                f"and has published no snapshot yet ({source}); try again shortly. ({error})"
            )
            raise ProjectionError(msg) from None
        connection = duckdb.connect(str(source), read_only=True)
    try:
        result = connection.execute(query)
        columns = [d[0] for d in result.description or []]
        return QueryResult(columns, result.fetchall(), source)
    except duckdb.Error as error:
        raise ProjectionError(f"query failed: {error}") from None
    finally:
        connection.close()
