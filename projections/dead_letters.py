"""Dead letters: records on the log the engine could not take, with the reason and where.

They are written in the same transaction as the batch they came from, so each is
recorded exactly once, and counted; nothing on the log is silently dropped. The record
itself stays on the log at its partition and position; the row keeps its first bytes
(up to the policy's record size limit) and its whole size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from projections.arrow_rows import append

DDL = (
    "CREATE TABLE IF NOT EXISTS dead_letters ("
    " partition VARCHAR NOT NULL,"
    " position BIGINT NOT NULL,"
    " reason VARCHAR NOT NULL,"
    " payload BLOB NOT NULL)",
    "ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS payload_bytes BIGINT",
)


@dataclass(frozen=True)
class DeadLetter:
    """One rejected record: its partition and position on the log, why, and its bytes."""

    partition: str
    position: int
    reason: str
    payload: bytes
    payload_bytes: int


def table(letters: Sequence[DeadLetter]) -> pa.Table | None:
    if not letters:
        return None
    return pa.table(
        {
            "partition": pa.array([d.partition for d in letters], pa.string()),
            "position": pa.array([d.position for d in letters], pa.int64()),
            "reason": pa.array([d.reason for d in letters], pa.string()),
            "payload": pa.array([d.payload for d in letters], pa.binary()),
            "payload_bytes": pa.array([d.payload_bytes for d in letters], pa.int64()),
        }
    )


def insert(connection: duckdb.DuckDBPyConnection, rows: pa.Table | None) -> None:
    """Append the rows, inside the caller's transaction."""
    append(connection, "dead_letters", rows)
