"""Appending an Arrow table's rows to a DuckDB table: one statement per batch, never
row by row (the projections' one way of writing rows)."""

from __future__ import annotations

import duckdb
import pyarrow as pa


def append(connection: duckdb.DuckDBPyConnection, table: str, rows: pa.Table | None) -> None:
    """Append `rows` (columns by name) to `table`, inside the caller's transaction."""
    if rows is None:
        return
    connection.register("_rows", rows)
    try:
        connection.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _rows")
    finally:
        connection.unregister("_rows")
