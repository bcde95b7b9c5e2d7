"""What the engine refused, for people: dead letters counted by kind, with what each kind
means and what to do about it, a few examples of each, and the records the time rule
holds back.

Read on a read-only connection (projections/query.py). A payload is shown as its first
`EXCERPT_BYTES`, with personal data and free text masked (projections/profiles.py)
unless asked otherwise; a payload that names such a field but cannot be read field by
field (malformed, or cut at the size limit) is withheld whole instead. Projections that
predate kinds or held records are read as they are: rows without a kind count as
`unknown`, and no `held_records` table means none are held.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from projections.dead_letters import KINDS, TIME, UNKNOWN
from projections.profiles import MASKED, masked

EXCERPT_BYTES = 120


def summary(connection: duckdb.DuckDBPyConnection, *, kind: str | None, limit: int, unmasked: bool) -> dict[str, Any]:
    """The dead letters (of `kind`, or all) by kind with up to `limit` examples each, and
    the held records unless another kind is asked for: the `--format json` document."""
    rows = _dead_letters(connection)
    where, parameters = ("WHERE kind = ?", [kind]) if kind is not None else ("", [])
    counts = connection.execute(
        f"SELECT kind, count(*) FROM {rows} {where} GROUP BY kind ORDER BY count(*) DESC, kind", parameters
    ).fetchall()
    examples: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in counts}
    found = connection.execute(
        f"SELECT kind, partition, position, reason, payload, payload_bytes FROM {rows} {where} "
        "QUALIFY row_number() OVER (PARTITION BY kind ORDER BY partition, position) <= ? "
        "ORDER BY partition, position", [*parameters, limit],
    ).fetchall()
    for name, *example in found:
        examples[name].append(_example(*example, unmasked=unmasked))
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
    return f"(SELECT partition, position, reason, payload, {size} AS payload_bytes, {kind} AS kind FROM dead_letters)"


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
             *, unmasked: bool) -> dict[str, Any]:
    shown, was_masked = (payload, False) if unmasked else _masked_payload(payload)
    return {
        "partition": partition,
        "position": position,
        "reason": reason,
        "payload": None if shown is None else shown[:EXCERPT_BYTES].decode("utf-8", "backslashreplace"),
        "payload_bytes": size,
        "truncated": shown is not None and (len(shown) > EXCERPT_BYTES or (size or 0) > len(payload)),
        "masked": was_masked,
    }


def _masked_payload(payload: bytes) -> tuple[bytes | None, bool]:
    """The payload with personal data masked, and whether any was; None: withheld whole."""
    try:
        fields = json.loads(payload.decode("utf-8"))
    except (ValueError, RecursionError):
        fields = None
    if not isinstance(fields, dict):
        named = any(f'"{name}"'.encode() in payload for name in MASKED)
        return (None, True) if named else (payload, False)
    if not any(name in MASKED and value is not None for name, value in fields.items()):
        return payload, False
    return json.dumps(masked(fields), ensure_ascii=False, separators=(",", ":")).encode(), True


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
