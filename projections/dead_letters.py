"""Dead letters: events on the log the engine could not take, with the reason and where.

They are written in the same transaction as the batch they came from, so each is
recorded exactly once, and counted; nothing on the log is silently dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa

DDL = (
    "CREATE TABLE IF NOT EXISTS dead_letters ("
    " partition VARCHAR NOT NULL,"
    " position BIGINT NOT NULL,"
    " reason VARCHAR NOT NULL,"
    " payload BLOB NOT NULL)",
)


@dataclass(frozen=True)
class DeadLetter:
    """One rejected record: its partition and position on the log, and why."""

    partition: str
    position: int
    reason: str
    payload: bytes


def insert(connection: duckdb.DuckDBPyConnection, letters: Sequence[DeadLetter]) -> None:
    if not letters:
        return
    rows = pa.table(
        {
            "partition": pa.array([d.partition for d in letters], pa.string()),
            "position": pa.array([d.position for d in letters], pa.int64()),
            "reason": pa.array([d.reason for d in letters], pa.string()),
            "payload": pa.array([d.payload for d in letters], pa.binary()),
        }
    )
    connection.register("_dead", rows)
    connection.execute("INSERT INTO dead_letters SELECT * FROM _dead")
    connection.unregister("_dead")
