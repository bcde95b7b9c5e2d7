"""Appending an Arrow table's rows to a DuckDB table: one statement per batch, never
row by row (the projections' one way of writing rows); and the rows of an append-only
table as a batch collects them (`TakenRows`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa


@dataclass
class TakenRows:
    """The rows of a run of taken events, fed in the order they were taken, each with
    the position it was taken at: its own, or later for a record that waited for time
    (lifecycle/partition_time.py)."""

    rows: list[Any] = field(default_factory=list)
    taken_at: list[int] = field(default_factory=list)

    def add(self, row: Any, position: int, taken_at: int | None) -> None:
        self.rows.append(row)
        self.taken_at.append(position if taken_at is None else taken_at)

    def after(self, written: int | None) -> list[Any]:
        """The rows of records taken past `written`, the position the projections hold."""
        if written is None:
            return self.rows
        return [row for row, at in zip(self.rows, self.taken_at) if at > written]


def table(rows: Sequence[tuple[Any, ...]], schema: pa.Schema) -> pa.Table | None:
    """`rows` (tuples in `schema`'s column order) as a table; None for none."""
    if not rows:
        return None
    return pa.table([pa.array(column, kind) for column, kind in zip(zip(*rows), schema.types)], schema=schema)


def append(connection: duckdb.DuckDBPyConnection, table: str, rows: pa.Table | None) -> None:
    """Append `rows` (columns by name) to `table`, inside the caller's transaction."""
    if rows is None:
        return
    connection.register("_rows", rows)
    try:
        connection.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _rows")
    finally:
        connection.unregister("_rows")
