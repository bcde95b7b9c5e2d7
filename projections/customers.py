"""The `customers` view: one row per customer, and the fold state it was derived from.

`customers` is for analysts; `customer_state` holds each customer's encoded
`CustomerState`, so that the engine resumes its fold exactly where the rows stand.
Both are written from Arrow tables, a batch at a time, never row by row.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa

from lifecycle.state import CustomerState, decode_state, encode_state

DDL = (
    "CREATE TABLE IF NOT EXISTS customers ("
    " customer_id VARCHAR PRIMARY KEY,"
    " stage VARCHAR NOT NULL,"
    " purchases INTEGER NOT NULL,"
    " events BIGINT NOT NULL,"
    " first_event_at TIMESTAMPTZ,"
    " last_event_at TIMESTAMPTZ,"
    " erased BOOLEAN NOT NULL)",
    "CREATE TABLE IF NOT EXISTS customer_state ("
    " customer_id VARCHAR PRIMARY KEY, state BLOB NOT NULL)",
)

_TIME = pa.timestamp("us", tz="UTC")


def customers_table(states: Sequence[CustomerState]) -> pa.Table:
    return pa.table(
        {
            "customer_id": pa.array([s.customer_id for s in states], pa.string()),
            "stage": pa.array([s.stage for s in states], pa.string()),
            "purchases": pa.array([s.purchases for s in states], pa.int32()),
            "events": pa.array([s.events for s in states], pa.int64()),
            "first_event_at": pa.array([s.first_event_at for s in states], _TIME),
            "last_event_at": pa.array([s.last_event_at for s in states], _TIME),
            "erased": pa.array([s.erased for s in states], pa.bool_()),
        }
    )


def state_table(states: Sequence[CustomerState]) -> pa.Table:
    return pa.table(
        {
            "customer_id": pa.array([s.customer_id for s in states], pa.string()),
            "state": pa.array([encode_state(s) for s in states], pa.binary()),
        }
    )


def upsert(connection: duckdb.DuckDBPyConnection, states: Sequence[CustomerState]) -> None:
    """Write the rows of changed customers, inside the caller's transaction."""
    if not states:
        return
    for table, rows in (("customers", customers_table(states)), ("customer_state", state_table(states))):
        connection.register("_rows", rows)
        connection.execute(f"INSERT OR REPLACE INTO {table} SELECT * FROM _rows")
        connection.unregister("_rows")


def load_states(connection: duckdb.DuckDBPyConnection) -> dict[str, CustomerState]:
    """Every stored customer state, by customer id."""
    table = connection.sql("SELECT customer_id, state FROM customer_state").to_arrow_table()
    return {
        customer_id: decode_state(state)
        for customer_id, state in zip(
            table.column("customer_id").to_pylist(), table.column("state").to_pylist()
        )
    }
