"""`value_movements`: every purchase and refund the engine took, with what it moved, one row each.

Append-only, written with each batch (and in bulk by a replay, the same rows): what
a customer's purchase history looks like without the engine's state, which keeps only
what its rules need (orders for the refund window, purchase dates for the windows).
Cohort retention and the value models read it (projections/catalog/views.py,
projections/catalog/value_estimates.py). Each row holds what the event moved in the customer's
historical value and net revenue as the engine booked it (`LifecycleEngine.booked`,
base-currency minor units): a refund takes back its share of what its order brought
(of the margin, where the order gave one), a refund before its purchase moves nothing
until the purchase nets it out, one outside the refund window nothing, and a currency
the policy has no rate for nothing. So per customer the rows sum to
`customers.historical_value_minor` exactly. A repeat of an event the engine ignored
(counted in `customers.duplicates_ignored`) has no row.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa

from lifecycle.state import epoch_seconds
from projections import arrow_rows
from projections.arrow_rows import TakenRows, append
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


class ValueMovements(TakenRows):
    """The rows of a run of taken events (`TakenRows`)."""

    def take(self, event: AnyCustomerEvent, partition: str, position: int, booked: tuple[int, int] | None,
             taken_at: int | None = None) -> None:
        """Note `event` (at `position`) if it is a purchase or refund the engine took,
        with what it `booked`: (value, revenue), or None for an ignored repeat."""
        kind = _KINDS.get(type(event))
        if kind is None or booked is None:
            return
        value, revenue = booked
        self.add((event.event_id.bytes, event.customer_id, event.order_id, kind,  # type: ignore[union-attr]
                  epoch_seconds(event.occurred_at), revenue, value, partition, position), position, taken_at)


def table(rows: Sequence[Row]) -> pa.Table | None:
    return arrow_rows.table(rows, _SCHEMA)


def insert(connection: duckdb.DuckDBPyConnection, rows: pa.Table | None) -> None:
    """Append the rows, inside the caller's transaction."""
    append(connection, "value_movements", rows)
