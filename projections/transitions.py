"""The `lifecycle_transitions` view: every lifecycle event, with where its cause sits on the log.

One row per change of a customer's stage, activity, loyalty type, tier, value band or
relationship level, with the rule that decided it, the policy version and the causing
events: what auditors and analysts read to see how a customer got where they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa

from lifecycle.state import epoch_seconds
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
    " caused_by VARCHAR[] NOT NULL,"
    " log_partition VARCHAR NOT NULL,"
    " log_position BIGINT NOT NULL)",
)


def insert(
    connection: duckdb.DuckDBPyConnection,
    partition: str,
    events: Sequence[tuple[int, LifecycleEvent]],
) -> None:
    """Append `(position of the cause, lifecycle event)` pairs, inside the caller's transaction."""
    if not events:
        return
    rows = pa.table(
        {
            "event_id": pa.array([str(e.event_id) for _, e in events], pa.string()),
            "customer_id": pa.array([e.customer_id for _, e in events], pa.string()),
            "sequence": pa.array([e.sequence for _, e in events], pa.int32()),
            "dimension": pa.array([e.dimension for _, e in events], pa.string()),
            "from_value": pa.array([e.from_value for _, e in events], pa.string()),
            "to_value": pa.array([e.to_value for _, e in events], pa.string()),
            "occurred_at": pa.array([epoch_seconds(e.occurred_at) for _, e in events], pa.timestamp("s", tz="UTC")),
            "rule": pa.array([e.rule for _, e in events], pa.string()),
            "policy_version": pa.array([e.policy_version for _, e in events], pa.string()),
            "caused_by": pa.array([[str(c) for c in e.caused_by] for _, e in events], pa.list_(pa.string())),
            "log_partition": pa.array([partition] * len(events), pa.string()),
            "log_position": pa.array([position for position, _ in events], pa.int64()),
        }
    )
    connection.register("_transitions", rows)
    connection.execute("INSERT INTO lifecycle_transitions SELECT * FROM _transitions")
    connection.unregister("_transitions")
