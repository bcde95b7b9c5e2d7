"""Read-only queries against the projections, for analysts and the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from projections.errors import ProjectionError


def run_query(database: Path, query: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and rows of `query`, run on a read-only connection to `database`."""
    if not database.exists():
        msg = f"no projections at {database}: run `lifecycle process` (or `make demo`) first"
        raise ProjectionError(msg)
    try:
        connection = duckdb.connect(str(database), read_only=True)
    except duckdb.IOException as error:
        msg = (
            f"cannot open {database} for reading: {error}. "
            "Another process (a running `lifecycle process`?) holds it for writing."
        )
        raise ProjectionError(msg) from None
    try:
        result = connection.execute(query)
        columns = [d[0] for d in result.description or []]
        return columns, result.fetchall()
    except duckdb.Error as error:
        raise ProjectionError(f"query failed: {error}") from None
    finally:
        connection.close()
