"""Dead letters: records on the log the engine could not take, with the reason and where.

They are written in the same transaction as the batch they came from, so each is
recorded exactly once, and counted; nothing on the log is silently dropped. The record
itself stays on the log at its partition and position; the row keeps its first bytes
(up to the policy's record size limit, personal data masked) and its whole size, and its `kind`: the reason
names specifics (dates, sizes), the kind says which rule refused it and what to do, so
that dead letters can be counted by it (`lifecycle dead-letters`).

`held_records` are the records the time rule holds back, neither taken nor refused, until
time confirms them (lifecycle/partition_time.py): a row is added when a record begins
to wait and removed when it is taken, in the transaction of the batch that does it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import duckdb
import pyarrow as pa

from projections.arrow_rows import append
from projections.catalog.profiles import masked_payload

DDL = (
    "CREATE TABLE IF NOT EXISTS dead_letters ("
    " partition VARCHAR NOT NULL,"
    " position BIGINT NOT NULL,"
    " reason VARCHAR NOT NULL,"
    " payload BLOB NOT NULL)",
    "ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS payload_bytes BIGINT",
    # Rows written before kinds existed keep NULL: shown as UNKNOWN.
    "ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS kind VARCHAR",
    # Personal data and free text in a payload are masked when it is stored (true), or the
    # payload withheld (empty) if it names such a field and cannot be read field by field.
    "ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS payload_masked BOOLEAN",
    "CREATE TABLE IF NOT EXISTS held_records ("
    " partition VARCHAR NOT NULL,"
    " position BIGINT NOT NULL,"
    # A record's index at its position (an embedded segment holds many records).
    " record_index INTEGER NOT NULL,"
    " kind VARCHAR NOT NULL,"
    " customer_id VARCHAR,"
    " occurred_at TIMESTAMPTZ NOT NULL,"
    " reason VARCHAR NOT NULL,"
    " PRIMARY KEY (partition, position, record_index))",
)

TOO_LARGE = "too_large"
INVALID = "invalid"
OUT_OF_RANGE = "out_of_range"
ENGINE_FAILED = "engine_failed"
TIME = "time"
UNKNOWN = "unknown"


class KindText(NamedTuple):
    meaning: str
    fix: str


_REDERIVE = (
    "if the policy is what is wrong, change it under a new `version` and run "
    "`lifecycle replay --policy FILE`, which derives every record again under it"
)

KINDS = {
    TOO_LARGE: KindText("larger than the policy's `[input] max_event_bytes`",
                        f"correct the producer to send smaller events; or, {_REDERIVE}"),
    INVALID: KindText("not a valid event: the reason names the field",
                      f"correct the producer and publish the event again; or, {_REDERIVE}"),
    OUT_OF_RANGE: KindText("a money total of the customer would leave the range kept exactly (2^53 minor units)",
                           "check the producer's amounts and currency units: the range is not a policy setting"),
    ENGINE_FAILED: KindText("the engine failed on it: a bug",
                            "report it with the reason; once fixed, upgrade and run `lifecycle replay`, "
                            "which derives it again"),
    TIME: KindText("refused by the time rule: dated far ahead of its partition's confirmed time while "
                   "`[time] max_held_records` records already waited there (a flood of far-future records)",
                   f"correct the producer's clock or dates; if they are right, publish clocks up to them "
                   f"(`lifecycle clock --at TIME`) and replay; or, {_REDERIVE}"),
    UNKNOWN: KindText("recorded without a kind (before dead letters had kinds)",
                      "read the reason; `lifecycle replay` records it again with its kind"),
}
"""Each kind: what it means, and what to do about it."""


@dataclass(frozen=True)
class DeadLetter:
    """One rejected record: its partition and position on the log, why, its bytes, and
    the kind of refusal (one of `KINDS`)."""

    partition: str
    position: int
    reason: str
    payload: bytes
    payload_bytes: int
    kind: str = UNKNOWN
    taken_at: int | None = None
    """Where on the log the engine came to it, if later than its own position (a record
    that waited for time); not stored."""


def table(letters: Sequence[DeadLetter]) -> pa.Table | None:
    """The rows of `letters`, each payload with its personal data masked: any analyst may
    read this table, and the record itself stays on the log."""
    if not letters:
        return None
    payloads = [masked_payload(d.payload) for d in letters]
    return pa.table(
        {
            "partition": pa.array([d.partition for d in letters], pa.string()),
            "position": pa.array([d.position for d in letters], pa.int64()),
            "reason": pa.array([d.reason for d in letters], pa.string()),
            "payload": pa.array([payload for payload, _ in payloads], pa.binary()),
            "payload_masked": pa.array([was for _, was in payloads], pa.bool_()),
            "payload_bytes": pa.array([d.payload_bytes for d in letters], pa.int64()),
            "kind": pa.array([d.kind for d in letters], pa.string()),
        }
    )


def insert(connection: duckdb.DuckDBPyConnection, rows: pa.Table | None) -> None:
    """Append the rows, inside the caller's transaction."""
    append(connection, "dead_letters", rows)


@dataclass(frozen=True)
class HeldRecord:
    """A record waiting for time, as analysts see it: where, what, whose, when, and why."""

    partition: str
    seq: int
    kind: str
    customer_id: str | None
    occurred_at: int
    reason: str


def apply_held(connection: duckdb.DuckDBPyConnection, held: Sequence[HeldRecord],
               released: Sequence[tuple[str, int]]) -> None:
    """Add the records that began waiting, then remove those taken ((partition, seq): a
    record may do both in one batch), inside the caller's transaction; doing it again
    gives the same rows."""
    if held:
        rows = pa.table({
            "partition": [h.partition for h in held], "position": [h.seq >> 10 for h in held],
            "record_index": pa.array([h.seq & 1023 for h in held], pa.int32()), "kind": [h.kind for h in held],
            "customer_id": [h.customer_id for h in held],
            "occurred_at": pa.array([h.occurred_at for h in held], pa.timestamp("s", tz="UTC")),
            "reason": [h.reason for h in held],
        })
        connection.register("_held", rows)
        connection.execute("INSERT OR REPLACE INTO held_records BY NAME SELECT * FROM _held")
        connection.unregister("_held")
    if released:
        gone = pa.table({"partition": [p for p, _ in released], "position": [seq >> 10 for _, seq in released],
                         "record_index": pa.array([seq & 1023 for _, seq in released], pa.int32())})
        connection.register("_released", gone)
        connection.execute("DELETE FROM held_records h USING _released r WHERE h.partition = r.partition "
                           "AND h.position = r.position AND h.record_index = r.record_index")
        connection.unregister("_released")
