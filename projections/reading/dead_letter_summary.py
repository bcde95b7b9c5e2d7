"""What the engine refused, for people: dead letters counted by kind, with what each kind
means and what to do about it, a few examples of each, and the records the time rule
holds back.

Read on a read-only connection (projections/reading/query.py). A payload is shown as its first
`EXCERPT_BYTES`, as stored: with personal data and free text masked, or withheld whole
when it names such a field and cannot be read field by field (projections/catalog/profiles.py
`masked_payload`); rows stored before payloads were masked are masked as they are read.
Projections that predate kinds or held records are read as they are: rows without a
kind count as `unknown`, and no `held_records` table means none are held.
"""

from __future__ import annotations

from typing import Any

import duckdb

from projections.catalog.dead_letters import KINDS, TIME, UNKNOWN
from projections.catalog.profiles import masked_payload

EXCERPT_BYTES = 120


def summary(connection: duckdb.DuckDBPyConnection, *, kind: str | None, limit: int) -> dict[str, Any]:
    """The dead letters (of `kind`, or all) by kind with up to `limit` examples each, and
    the held records unless another kind is asked for: the `--format json` document."""
    rows = _dead_letters(connection)
    where, parameters = ("WHERE kind = ?", [kind]) if kind is not None else ("", [])
    counts = connection.execute(
        f"SELECT kind, count(*) FROM {rows} {where} GROUP BY kind ORDER BY count(*) DESC, kind", parameters
    ).fetchall()
    examples: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in counts}
    found = connection.execute(
        f"SELECT kind, partition, position, reason, payload, payload_bytes, masked FROM {rows} {where} "
        "QUALIFY row_number() OVER (PARTITION BY kind ORDER BY partition, position) <= ? "
        "ORDER BY partition, position", [*parameters, limit],
    ).fetchall()
    for name, *example in found:
        examples[name].append(_example(*example))
    return {
        "kind": kind,
        "dead_letters": sum(count for _, count in counts),
        "kinds": [_kind(name, count, examples[name]) for name, count in counts],
        "held_records": _held(connection, limit) if kind in (None, TIME) else None,
    }


def _dead_letters(connection: duckdb.DuckDBPyConnection) -> str:
    """`dead_letters` as SQL with a `kind` and a `payload_bytes` on every row, whatever
    version wrote the projections."""
    columns = _columns(connection, "dead_letters")
    kind = f"coalesce(kind, '{UNKNOWN}')" if "kind" in columns else f"'{UNKNOWN}'"
    size = "payload_bytes" if "payload_bytes" in columns else "NULL::BIGINT"
    masked = "payload_masked" if "payload_masked" in columns else "NULL::BOOLEAN"
    return (f"(SELECT partition, position, reason, payload, {size} AS payload_bytes, {kind} AS kind, "
            f"{masked} AS masked FROM dead_letters)")


def _columns(connection: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    """The columns of `table` in the projections; none if there is no such table."""
    rows = connection.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() AND table_name = ?",
        [table],
    ).fetchall()
    return {name for (name,) in rows}


def _kind(name: str, count: int, examples: list[dict[str, Any]]) -> dict[str, Any]:
    text = KINDS.get(name)
    return {
        "kind": name,
        "count": count,
        "meaning": None if text is None else text.meaning,
        "fix": None if text is None else text.fix,
        "examples": examples,
    }


def _example(partition: str, position: int, reason: str, payload: bytes, size: int | None,
             was_masked: bool | None) -> dict[str, Any]:
    # Rows stored before payloads were masked are masked now, as they are read.
    shown, masked_now = (payload, False) if was_masked is not None else masked_payload(payload)
    withheld = not shown and (size or 0) > 0
    return {
        "partition": partition,
        "position": position,
        "reason": reason,
        "payload": None if withheld else shown[:EXCERPT_BYTES].decode("utf-8", "backslashreplace"),
        "payload_bytes": size,
        "truncated": not withheld and (len(shown) > EXCERPT_BYTES or (size or 0) > len(payload)),
        "masked": bool(was_masked) or masked_now,
    }


def _held(connection: duckdb.DuckDBPyConnection, limit: int) -> dict[str, Any]:
    if not _columns(connection, "held_records"):
        return {"count": 0, "examples": []}
    (count,) = connection.execute("SELECT count(*) FROM held_records").fetchone() or (0,)
    rows = connection.execute(
        "SELECT partition, position, customer_id, occurred_at, reason FROM held_records "
        "ORDER BY occurred_at, partition, position LIMIT ?", [limit],
    ).fetchall()
    names = ("partition", "position", "customer_id", "occurred_at", "reason")
    return {"count": count, "examples": [dict(zip(names, row)) for row in rows]}
