"""A customer's history on two time axes (bitemporal, as XTDB names them).

- *as of* an event time T, as the log is known now: for each dimension, the value set by
  the customer's latest lifecycle event (highest `sequence`) among those dated at or
  before T. A late event counts from its own date, so it can change the answer for a
  past T after the fact.
- *known at* a moment K of the engine's own time: only the lifecycle events whose cause
  the engine had committed by K (`engine_commits`: one row per committed batch, stamped
  by the database's clock at commit), so a late event recorded after K does not count.

Both are table macros in the projections, for analysts' SQL and for `lifecycle explain`:
`lifecycle_transitions_as_of(T)`, `lifecycle_transitions_known_at(K)`,
`customers_as_of(T)` and `customers_known_at(K)`. A customer appears once they have a
lifecycle event on that axis; a dimension without one has its starting value.
A replay keeps `engine_commits` and adds its own, so the known-at answers after a
replay are what the engine says under the policy of that replay.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from lifecycle.state import CustomerState
from projections.errors import ProjectionError
from schemas.lifecycle_events import EVENT_FOR_DIMENSION

DIMENSIONS = tuple(EVENT_FOR_DIMENSION)
_START = CustomerState(customer_id="")


def _per_customer(source: str) -> str:
    values = ", ".join(
        f"coalesce(arg_max(to_value, sequence) FILTER (WHERE dimension = '{d}'), '{getattr(_START, d)}') AS {d}"
        for d in DIMENSIONS
    )
    return f"SELECT customer_id, {values}, max(sequence) AS sequence FROM {source} GROUP BY customer_id"


DDL = (
    "CREATE TABLE IF NOT EXISTS engine_commits ("
    " log_partition VARCHAR NOT NULL, position BIGINT NOT NULL, committed_at TIMESTAMPTZ NOT NULL)",
    "CREATE OR REPLACE MACRO lifecycle_transitions_as_of(t) AS TABLE "
    "SELECT * FROM lifecycle_transitions WHERE occurred_at <= CAST(t AS TIMESTAMPTZ)",
    "CREATE OR REPLACE MACRO lifecycle_transitions_known_at(k) AS TABLE "
    "SELECT l.* FROM lifecycle_transitions l JOIN ("
    " SELECT log_partition, max(position) AS known FROM engine_commits"
    " WHERE committed_at <= CAST(k AS TIMESTAMPTZ) GROUP BY log_partition) c USING (log_partition) "
    "WHERE l.log_position <= c.known",
    "CREATE OR REPLACE MACRO customers_as_of(t) AS TABLE "
    + _per_customer("lifecycle_transitions_as_of(t)"),
    "CREATE OR REPLACE MACRO customers_known_at(k) AS TABLE "
    + _per_customer("lifecycle_transitions_known_at(k)"),
)

RECORD_COMMIT = "INSERT INTO engine_commits VALUES (?, ?, get_current_timestamp())"


@dataclass(frozen=True)
class Story:
    """What the projections say of one customer, on the axis asked for."""

    state: dict[str, Any]
    transitions: list[dict[str, Any]]
    policies: dict[str, dict[str, Any]]
    """The thresholds of every policy version the transitions name."""
    value_model: dict[str, Any] | None = None
    """Now (on neither axis): the customer's purchase summary and figures from the
    latest value model fit, with the fit; None without a figure."""


_VALUE_MODEL = (
    "SELECT m.model_id, m.cutoff, m.r, m.alpha, m.a, m.b, m.p, m.q, m.gamma, m.currency, e.frequency,"
    " e.recency_days, e.age_days, e.monetary_minor, e.p_alive, e.expected_purchases, e.expected_spend_minor,"
    " e.model_clv_minor FROM value_estimates e JOIN value_models m USING (model_id) WHERE e.customer_id = ?"
)
_TRANSITIONS = (
    "SELECT event_id, sequence, dimension, from_value, to_value, occurred_at, rule, policy_version,"
    " caused_by, log_partition, log_position, coalesce(cause_position, log_position) AS cause_position, facts"
    " FROM {source} WHERE customer_id = ? ORDER BY sequence"
)


def story(
    connection: duckdb.DuckDBPyConnection, customer_id: str, as_of: datetime | None, known_at: datetime | None
) -> Story | None:
    """The customer's state and lifecycle events as of an event time, as known at a
    moment of the engine's, or now (neither given); None if the customer is unknown."""
    if as_of is not None and known_at is not None:
        raise ProjectionError("ask for --as-of or for --known-at, not both")
    if as_of is None and known_at is None:
        state = _row(connection, "SELECT * FROM customers WHERE customer_id = ?", [customer_id])
        transitions = _rows(connection, _TRANSITIONS.format(source="lifecycle_transitions"), [customer_id])
        value_model = _row(connection, _VALUE_MODEL, [customer_id])
    else:
        axis, moment = ("as_of", as_of) if as_of is not None else ("known_at", known_at)
        state = _row(connection, f"SELECT * FROM customers_{axis}(?) WHERE customer_id = ?", [moment, customer_id])
        transitions = _rows(
            connection, _TRANSITIONS.format(source=f"lifecycle_transitions_{axis}(?)"), [moment, customer_id]
        )
        if state is not None:
            state = {"as_of": moment if as_of is not None else None, **state}
        value_model = None
    if state is None:
        return None
    for transition in transitions:
        transition["facts"] = json.loads(transition["facts"]) if transition["facts"] else None
    versions = sorted({t["policy_version"] for t in transitions})
    policies = {
        version: json.loads(text)
        for version, text in connection.execute(
            "SELECT version, policy FROM policies WHERE version IN (SELECT unnest(?))", [versions]
        ).fetchall()
    }
    return Story(state, transitions, policies, value_model)


def _rows(connection: duckdb.DuckDBPyConnection, query: str, parameters: list[Any]) -> list[dict[str, Any]]:
    result = connection.execute(query, parameters)
    names = [d[0] for d in result.description or []]
    return [dict(zip(names, row)) for row in result.fetchall()]


def _row(connection: duckdb.DuckDBPyConnection, query: str, parameters: list[Any]) -> dict[str, Any] | None:
    rows = _rows(connection, query, parameters)
    return rows[0] if rows else None
