"""The `lifecycle_transitions` view: every lifecycle event, with where its cause sits on the log.

One row per change of a customer's stage, activity, loyalty type, tier, value band or
relationship level, with the rule that decided it, the policy version and the causing
events: what auditors and analysts read to see how a customer got where they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import msgspec
import pyarrow as pa

from lifecycle.state import epoch_seconds
from projections.arrow_rows import append
from schemas.lifecycle_events import LifecycleEvent

DDL = (
    "CREATE TABLE IF NOT EXISTS lifecycle_transitions ("
    " event_id UUID PRIMARY KEY,"
    " customer_id VARCHAR NOT NULL,"
    " sequence INTEGER NOT NULL,"
    " dimension VARCHAR NOT NULL,"
    " from_value VARCHAR NOT NULL,"
    " to_value VARCHAR NOT NULL,"
    " occurred_at TIMESTAMPTZ NOT NULL,"
    " rule VARCHAR NOT NULL,"
    " policy_version VARCHAR NOT NULL,"
    " caused_by UUID[] NOT NULL,"
    " log_partition VARCHAR NOT NULL,"
    " log_position BIGINT NOT NULL,"
    # What the rule read (lifecycle/reasons.py), as a JSON object.
    " facts VARCHAR)",
    # Where the causing event sits, when the engine took it later than that (a record
    # that waited for time: lifecycle/partition_time.py); NULL: at `log_position`.
    "ALTER TABLE lifecycle_transitions ADD COLUMN IF NOT EXISTS cause_position BIGINT",
)


_SCHEMA = pa.schema(
    [
        ("customer_id", pa.string()),
        ("sequence", pa.int32()),
        ("dimension", pa.string()),
        ("from_value", pa.string()),
        ("to_value", pa.string()),
        ("occurred_at", pa.timestamp("s", tz="UTC")),
        ("rule", pa.string()),
        ("policy_version", pa.string()),
        ("log_position", pa.int64()),
    ]
)


_encode = msgspec.json.Encoder().encode


Derived = tuple[int, LifecycleEvent, "int | None"]
"""A lifecycle event with the log position it was derived at, and its cause's own
position if that is another (a record that waited for time)."""


def table(partitions: Sequence[str], events: Sequence[Derived]) -> pa.Table | None:
    """The rows of derived lifecycle events, with the log partition of each cause, or
    None if there are none."""
    if not events:
        return None
    rows = [
        (e.customer_id, e.sequence, e.dimension, e.from_value, e.to_value,
         epoch_seconds(e.occurred_at), e.rule, e.policy_version, position)
        for position, e, _ in events
    ]
    columns = dict(zip(_SCHEMA.names, (pa.array(c, t) for c, t in zip(zip(*rows), _SCHEMA.types))))
    causes = [e.caused_by for _, e, _ in events]
    offsets = [0]
    for caused_by in causes:
        offsets.append(offsets[-1] + len(caused_by))
    return pa.table(
        {
            # UUIDs as 16 bytes through Arrow's uuid type: no text round trip.
            "event_id": pa.array([e.event_id.bytes for _, e, _ in events], pa.uuid()),
            **{name: columns[name] for name in _SCHEMA.names[:-1]},
            "caused_by": pa.ListArray.from_arrays(
                pa.array(offsets, pa.int32()),
                pa.array([cause.bytes for caused_by in causes for cause in caused_by], pa.uuid()),
            ),
            "log_partition": pa.array(partitions, pa.string()),
            "log_position": columns["log_position"],
            "facts": pa.array([None if e.facts is None else _encode(e.facts) for _, e, _ in events], pa.string()),
            "cause_position": pa.array([cause for _, _, cause in events], pa.int64()),
        }
    )


def insert(connection: duckdb.DuckDBPyConnection, rows: pa.Table | None) -> None:
    """Append the rows, inside the caller's transaction."""
    append(connection, "lifecycle_transitions", rows)
