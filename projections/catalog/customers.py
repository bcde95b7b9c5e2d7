"""The `customers` view: one row per customer, for analysts.

The rows are written to `customer_rows` from Arrow tables, a batch at a time, never row
by row; `customers` shows them with each customer's time (`as_of`) brought up to their
log partition's latest clock, and with their figures from the latest value model fit
(`value_estimates`). A clock reaches every customer of its partition, but the
engine visits only those a deadline of theirs makes due (lifecycle/deadlines.py), so a
row written before the clock would otherwise lag it. The engine's own state is not
here: it lives in the state store (projections/stores/state_store.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter

import duckdb
import msgspec
import pyarrow as pa

from lifecycle.state import CustomerState

# (column, DuckDB type, Arrow type, the CustomerState attribute it shows or a function
# computing it): one list, so the table and the Arrow batch cannot drift apart.
_TIME = pa.timestamp("s", tz="UTC")
_json = msgspec.json.encode


def _consents(consents: dict[str, bool]) -> str:
    """Consent by purpose as a JSON object (`consents->>'marketing'`), in purpose order
    as the state keeps it."""
    return _json(consents).decode() if consents else "{}"

COLUMNS: tuple[tuple[str, str, pa.DataType, str | Callable[[CustomerState], object]], ...] = (
    ("customer_id", "VARCHAR NOT NULL", pa.string(), "customer_id"),
    ("stage", "VARCHAR NOT NULL", pa.string(), "stage"),
    ("activity", "VARCHAR NOT NULL", pa.string(), "activity"),
    ("attitude", "VARCHAR NOT NULL", pa.string(), "attitude"),
    ("loyalty_type", "VARCHAR NOT NULL", pa.string(), "loyalty_type"),
    ("loyalty_tier", "VARCHAR NOT NULL", pa.string(), "loyalty_tier"),
    ("points", "BIGINT NOT NULL", pa.int64(), "points"),
    ("purchases", "INTEGER NOT NULL", pa.int32(), "purchases"),
    ("historical_value_minor", "BIGINT NOT NULL", pa.int64(), "historical_value_minor"),
    ("current_value_minor", "BIGINT NOT NULL", pa.int64(), "current_value_minor"),
    ("clv_minor", "BIGINT NOT NULL", pa.int64(), "clv_minor"),
    ("value_band", "VARCHAR NOT NULL", pa.string(), "value_band"),
    ("relationship_level", "VARCHAR NOT NULL", pa.string(), "relationship_level"),
    ("open_complaints", "INTEGER NOT NULL", pa.int32(), lambda s: len(s.open_complaints)),
    ("complaints_filed", "INTEGER NOT NULL", pa.int32(), "complaints_filed"),
    ("complaints_resolved", "INTEGER NOT NULL", pa.int32(), "complaints_resolved"),
    ("recoveries_satisfied", "INTEGER NOT NULL", pa.int32(), "recoveries_satisfied"),
    ("resolve_seconds_total", "BIGINT NOT NULL", pa.int64(), "resolve_seconds_total"),
    ("latest_nps", "SMALLINT", pa.int16(), "latest_nps"),
    ("latest_csat", "SMALLINT", pa.int16(), "latest_csat"),
    ("win_backs", "INTEGER NOT NULL", pa.int32(), "win_backs"),
    ("duplicates_ignored", "INTEGER NOT NULL", pa.int32(), "duplicates_ignored"),
    ("unpriced_purchases", "INTEGER NOT NULL", pa.int32(), "unpriced_purchases"),
    ("events", "BIGINT NOT NULL", pa.int64(), "events"),
    ("first_event_at", "TIMESTAMPTZ", _TIME, "first_event_at"),
    ("last_event_at", "TIMESTAMPTZ", _TIME, "last_event_at"),
    ("last_purchase_at", "TIMESTAMPTZ", _TIME, lambda s: s.purchase_times[-1] if s.purchase_times else None),
    ("as_of", "TIMESTAMPTZ", _TIME, lambda s: s.now or None),
    ("erased", "BOOLEAN NOT NULL", pa.bool_(), "erased"),
    ("sources", "VARCHAR[] NOT NULL", pa.list_(pa.string()), "sources"),
    ("programmes", "VARCHAR[] NOT NULL", pa.list_(pa.string()), "programmes"),
    ("consents", "VARCHAR NOT NULL", pa.string(), lambda s: _consents(s.consents)),
    ("chain_head", "VARCHAR NOT NULL", pa.string(), "chain_head"),
)

MODEL_COLUMNS = ("p_alive", "expected_purchases", "expected_spend_minor", "model_clv_minor")
"""The figures of the latest value model fit (projections/catalog/value_estimates.py, which
must be created first): NULL for a customer without a purchase by its cutoff."""

DDL = (
    "CREATE TABLE IF NOT EXISTS customer_rows ("
    + ", ".join(f"{name} {sql}" for name, sql, _, _ in COLUMNS)
    + ", log_partition VARCHAR NOT NULL)",
    # The latest clock of each partition, written with each batch (see the module text).
    "CREATE TABLE IF NOT EXISTS partition_clocks ("
    "log_partition VARCHAR PRIMARY KEY, clock_at BIGINT, event_time BIGINT)",
    "CREATE OR REPLACE VIEW customers AS SELECT "
    + ", ".join(
        "greatest(r.as_of, to_timestamp(c.clock_at)) AS as_of" if name == "as_of" else f"r.{name}"
        for name, _, _, _ in COLUMNS
    )
    + ", " + ", ".join(f"e.{name}" for name in MODEL_COLUMNS) + ", e.model_id AS value_model_id"
    + " FROM customer_rows r LEFT JOIN partition_clocks c USING (log_partition)"
    " LEFT JOIN value_estimates e USING (customer_id)",
)


_ATTRIBUTES = [value for _, _, _, value in COLUMNS if isinstance(value, str)]
_read_attributes = attrgetter(*_ATTRIBUTES)


def customers_table(states: Sequence[CustomerState], partitions: Sequence[str]) -> pa.Table:
    """The rows of `states`, with each one's log partition."""
    # attrgetter reads all plain attributes of a state in one C call.
    attributes = dict(zip(_ATTRIBUTES, zip(*map(_read_attributes, states)))) if states else {}
    columns = {
        name: pa.array(attributes.get(value, ()) if isinstance(value, str) else [value(s) for s in states], arrow)
        for name, _, arrow, value in COLUMNS
    }
    columns["log_partition"] = pa.array(partitions, pa.string())
    return pa.table(columns)


def upsert(connection: duckdb.DuckDBPyConnection, rows: pa.Table | None) -> None:
    """Write the rows of changed customers, inside the caller's transaction."""
    if rows is None:
        return
    # No key on `customer_rows`: DuckDB's INSERT OR REPLACE through a key index measured
    # 1.2-1.7 s per 7 k existing rows of this wide table; delete + insert, 0.04 s.
    connection.register("_rows", rows)
    connection.execute("DELETE FROM customer_rows WHERE customer_id IN (SELECT customer_id FROM _rows)")
    connection.execute("INSERT INTO customer_rows BY NAME SELECT * FROM _rows")
    connection.unregister("_rows")
