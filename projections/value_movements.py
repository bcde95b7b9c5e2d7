"""`value_movements`: every purchase and refund the engine took, priced, one row each.

Append-only, written with each batch (and in bulk by a replay, the same rows): what
a customer's purchase history looks like without the engine's state, which keeps only
what its rules need (orders for the refund window, purchase dates for the windows).
Cohort retention reads it (projections/catalog.py). The prices come from the rules
(`lifecycle.facts.priced`: base-currency minor units, revenue and value - margin where
given); a currency the policy has no rate for is priced 0, as the rules price it. A
repeat of an event (the same id published twice) is a second row with the same
`event_id`: readers count distinct ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from lifecycle.facts import priced
from lifecycle.policy import Policy
from lifecycle.state import epoch_seconds
from projections.arrow_rows import append
from schemas import Purchase, Refund
from schemas.events import AnyCustomerEvent

DDL = (
    "CREATE TABLE IF NOT EXISTS value_movements ("
    " event_id UUID NOT NULL,"
    " customer_id VARCHAR NOT NULL,"
    " order_id VARCHAR NOT NULL,"
    " kind VARCHAR NOT NULL,"
    " occurred_at TIMESTAMPTZ NOT NULL,"
    " revenue_minor BIGINT NOT NULL,"
    " value_minor BIGINT NOT NULL,"
    " log_partition VARCHAR NOT NULL,"
    " log_position BIGINT NOT NULL)",
)

_SCHEMA = pa.schema([
    ("event_id", pa.uuid()), ("customer_id", pa.string()), ("order_id", pa.string()), ("kind", pa.string()),
    ("occurred_at", pa.timestamp("s", tz="UTC")), ("revenue_minor", pa.int64()), ("value_minor", pa.int64()),
    ("log_partition", pa.string()), ("log_position", pa.int64()),
])
_KINDS = {Purchase: "purchase", Refund: "refund"}

Row = tuple[bytes, str, str, str, int, int, int, str, int]


@dataclass
class ValueMovements:
    """The rows of a run of taken events, fed in log order."""

    rows: list[Row] = field(default_factory=list)

    def take(self, event: AnyCustomerEvent, partition: str, position: int, policy: Policy) -> None:
        kind = _KINDS.get(type(event))
        if kind is None:
            return
        revenue, value = priced(event, policy)  # type: ignore[arg-type]
        self.rows.append((event.event_id.bytes, event.customer_id, event.order_id, kind,  # type: ignore[union-attr]
                          epoch_seconds(event.occurred_at), revenue, value, partition, position))

    def after(self, written: int | None) -> list[Row]:
        """The rows of records past `written`, the position the projections hold."""
        return self.rows if written is None else [row for row in self.rows if row[-1] > written]


def table(rows: Sequence[Row]) -> pa.Table | None:
    if not rows:
        return None
    return pa.table([pa.array(column, kind) for column, kind in zip(zip(*rows), _SCHEMA.types)], schema=_SCHEMA)


def insert(connection: duckdb.DuckDBPyConnection, rows: pa.Table | None) -> None:
    """Append the rows, inside the caller's transaction."""
    append(connection, "value_movements", rows)
