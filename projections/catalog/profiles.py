"""Personal data (name, email, phone, city, birth date), kept apart from derived data.

`customer_profiles` is the only table holding personal data, so that erasure is one
delete and the other views can be shared freely; values sealed at `publish` stay sealed
in it (consumers/privacy/personal_data.py). A profile update changes only the
fields it carries; an erasure removes the row. Where raw events are shown (`lifecycle
explain`) their personal data is masked with `masked`; dead letters are stored masked
(`masked_payload`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from schemas import CustomerErased, ProfileUpdated
from schemas.events import PERSONAL_FIELDS, AnyCustomerEvent

FIELDS = PERSONAL_FIELDS["profile_updated"]
MASKED = frozenset(name for names in PERSONAL_FIELDS.values() for name in names)
SEALED = "(sealed)"
"""What a masked view shows of a sealed value: it cannot be read without its key."""
WITHHELD = b'{"withheld":"a record that names personal data but cannot be read field by field"}'
"""What a masked view shows of such a record."""
SEALED_PREFIX = "sealed:"
"""How `customer_profiles` marks a value it holds sealed (the others are from a log
written before personal data was sealed)."""

DDL = (
    "CREATE TABLE IF NOT EXISTS customer_profiles ("
    " customer_id VARCHAR PRIMARY KEY,"
    + "".join(f" {field} VARCHAR," for field in FIELDS)
    + " updated_at TIMESTAMPTZ NOT NULL)",
)

_MERGE = (
    "INSERT INTO customer_profiles SELECT * FROM _profiles "
    "ON CONFLICT (customer_id) DO UPDATE SET "
    + ", ".join(f"{field} = COALESCE(excluded.{field}, {field})" for field in FIELDS)
    + ", updated_at = excluded.updated_at"
)


@dataclass
class ProfileChanges:
    """The personal data a run of events changes: customers erased, then the fields
    given since (an update after an erasure is new data the customer gave after asking
    to be forgotten). Fed events in log order; applied with `apply`."""

    erased: list[str] = field(default_factory=list)
    updates: dict[str, dict[str, object]] = field(default_factory=dict)

    def take(self, event: AnyCustomerEvent) -> None:
        kind = type(event)
        if kind is ProfileUpdated:
            row = self.updates.setdefault(event.customer_id, {})
            # A sealed value is kept sealed: only a reader with the customer's key opens it.
            row.update((name, SEALED_PREFIX + value) for name, value in (event.sealed or {}).items())
            for name in FIELDS:
                value = getattr(event, name)
                if value is not None:
                    row[name] = value
            row["updated_at"] = event.occurred_at
        elif kind is CustomerErased:
            self.erased.append(event.customer_id)
            self.updates.pop(event.customer_id, None)


def table(updates: Mapping[str, dict[str, object]]) -> pa.Table | None:
    """The merged profile updates of a batch, by customer, or None if there are none."""
    if not updates:
        return None
    columns = {"customer_id": pa.array(list(updates), pa.string())}
    for name in FIELDS:
        columns[name] = pa.array([row.get(name) for row in updates.values()], pa.string())
    columns["updated_at"] = pa.array(
        [row["updated_at"] for row in updates.values()], pa.timestamp("us", tz="UTC")
    )
    return pa.table(columns)


def apply(connection: duckdb.DuckDBPyConnection, erased: Iterable[str], rows: pa.Table | None) -> None:
    """Delete erased customers' rows, then merge updates; inside the caller's transaction.

    An update that follows an erasure in the same batch is kept: it is new data the
    customer gave after asking to be forgotten.
    """
    erased = list(erased)
    if erased:
        connection.execute("DELETE FROM customer_profiles WHERE customer_id IN (SELECT UNNEST(?))", [erased])
    if rows is None:
        return
    connection.register("_profiles", rows)
    connection.execute(_MERGE)
    connection.unregister("_profiles")


def profile(connection: duckdb.DuckDBPyConnection, customer_id: str) -> dict[str, str]:
    """The customer's profile fields as stored (sealed ones marked), empty if none."""
    row = connection.execute(f"SELECT {', '.join(FIELDS)} FROM customer_profiles WHERE customer_id = ?",
                             [customer_id]).fetchone()
    return {} if row is None else {name: value for name, value in zip(FIELDS, row) if value is not None}


def masked_value(stored: str) -> str:
    """A stored profile value as any reader may see it."""
    return SEALED if stored.startswith(SEALED_PREFIX) else _mask(stored)


def masked(payload: dict[str, Any]) -> dict[str, Any]:
    """A copy of an event's fields with each personal or free-text value masked, and
    each sealed one shown as such in its own field's place."""
    shown = {name: _mask(str(value)) if name in MASKED and value is not None else value
             for name, value in payload.items() if name != "sealed"}
    sealed = payload.get("sealed")
    if isinstance(sealed, dict):
        shown.update((name, SEALED) for name in sealed)
    return shown


def masked_payload(payload: bytes) -> tuple[bytes, bool]:
    """A raw record with its personal data and free text masked, and whether any was. A
    record that names such a field but cannot be read field by field (malformed, or cut
    at the size limit) is withheld whole (empty)."""
    try:
        fields = json.loads(payload.decode("utf-8"))
    except (ValueError, RecursionError):
        fields = None
    if not isinstance(fields, dict):
        named = any(f'"{name}"'.encode() in payload for name in MASKED)
        return (b"", True) if named else (payload, False)
    if not any((name in MASKED or name == "sealed") and value is not None for name, value in fields.items()):
        return payload, False
    return json.dumps(masked(fields), ensure_ascii=False, separators=(",", ":")).encode(), True


def _mask(value: str) -> str:
    """The first character and the length: enough to tell two values apart, not to read one."""
    return f"{value[:1]}*** ({len(value)} characters)" if value else value
