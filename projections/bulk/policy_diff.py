"""What a replay under another policy would change: the report of a dry run.

Compared with the live stores, from a replay's parts (projections/bulk/parts.py): per
dimension, a from/to matrix of the customers' current values (customers whose value
stays are counted on the diagonal); the lifecycle events the replay would add and
those it would remove (a lifecycle event is known by its id, which names its cause,
customer, sequence, dimension and new value, not the policy); and a few customers that
would change, as examples. The comparison runs in DuckDB over the live projections,
attached read-only, and the parts; nothing live is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from projections.bulk.parts import parts_relation
from projections.catalog.history import DIMENSIONS

EXAMPLES = 5


def policy_diff(connection: duckdb.DuckDBPyConnection, parts: Path) -> dict[str, Any]:
    """The dry run's report; `connection` has the live projections attached as `live`,
    `parts` is the replay's parts directory."""
    customers = parts_relation(parts, "customers", "*", "live.customer_rows")
    transitions = parts_relation(parts, "transitions", "event_id", "live.lifecycle_transitions")
    joined = f"live.customer_rows l FULL JOIN {customers} r ON l.customer_id = r.customer_id"
    matrices = {
        dimension: [
            {"from": before, "to": after, "customers": count}
            for before, after, count in connection.execute(
                f"SELECT l.{dimension}, r.{dimension}, count(*) FROM {joined} GROUP BY ALL ORDER BY ALL"
            ).fetchall()
        ]
        for dimension in DIMENSIONS
    }
    added, removed = connection.execute(
        f"SELECT count(*) FILTER (WHERE l.event_id IS NULL), count(*) FILTER (WHERE r.event_id IS NULL)"
        f" FROM live.lifecycle_transitions l FULL JOIN {transitions} r"
        f" ON l.event_id = r.event_id"
    ).fetchone()  # type: ignore[misc]
    changed = " OR ".join(f"l.{d} IS DISTINCT FROM r.{d}" for d in DIMENSIONS)
    columns = ", ".join(f"l.{d}, r.{d}" for d in DIMENSIONS)
    examples = [
        {
            "customer_id": row[0],
            "changes": {
                d: {"from": row[1 + 2 * i], "to": row[2 + 2 * i]}
                for i, d in enumerate(DIMENSIONS) if row[1 + 2 * i] != row[2 + 2 * i]
            },
        }
        for row in connection.execute(
            f"SELECT coalesce(l.customer_id, r.customer_id) AS c, {columns} FROM {joined}"
            f" WHERE {changed} ORDER BY c LIMIT {EXAMPLES}"
        ).fetchall()
    ]
    customers_changed = connection.execute(f"SELECT count(*) FROM {joined} WHERE {changed}").fetchone()[0]  # type: ignore[index]
    return {
        "customers_changed": customers_changed,
        "lifecycle_events_added": added,
        "lifecycle_events_removed": removed,
        "dimensions": matrices,
        "examples": examples,
    }

