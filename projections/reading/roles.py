"""Roles: who may read what, enforced where the data is.

A role reads either every customer (an analyst; a privacy officer, who may also open
personal data) or only the customers its grant names (a partner: a dealer sees the
customers of its own source). A partner's role reads a snapshot of its own,
`derived-N/roles/<role>.duckdb`, built from the projections with only what it may see:
its customers' rows in every table that has customers, the policies and the partitions'
clocks, and nothing else. The other customers are not filtered out of its answers;
they are not in its file, not even as counts: population-wide tables (the value model
fits, which count every customer; the engine's commits, which count every record; the
dead letters and personal profiles) are empty in it. Give a partner its file, and only
its file, to read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb

from projections.errors import ProjectionError
from projections.stores.snapshot import written_whole

ROLES_DIRECTORY = "roles"
GRANTED_TABLES = ("customer_rows", "lifecycle_transitions", "value_movements", "customer_facts", "value_estimates",
                  "held_records")
SHARED_TABLES = ("policies", "partition_clocks")


class RoleRefused(ProjectionError):
    """The role may not do what was asked."""


@dataclass(frozen=True)
class Grant:
    """The customers a partner sees: those matching every kind given, by any of its
    values (a source its events came from, a programme it is a member of, its stage,
    its value band)."""

    sources: tuple[str, ...] = ()
    programmes: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()
    value_bands: tuple[str, ...] = ()

    def where(self) -> tuple[str, list[object]]:
        """The condition on `customer_rows` and its parameters."""
        parts, values = [], []
        for column, wanted in (("sources", self.sources), ("programmes", self.programmes)):
            if wanted:
                parts.append(f"list_has_any({column}, ?::VARCHAR[])")
                values.append(list(wanted))
        for column, wanted in (("stage", self.stages), ("value_band", self.value_bands)):
            if wanted:
                parts.append(f"list_contains(?::VARCHAR[], {column})")
                values.append(list(wanted))
        return " AND ".join(parts) or "true", values


@dataclass(frozen=True)
class Role:
    name: str
    personal: Literal["masked", "clear"] = "masked"
    """Whether the role may open personal data (each read recorded in the access log)."""
    grant: Grant | None = None
    """None: every customer."""

    def require_clear(self, what: str) -> None:
        if self.personal != "clear":
            msg = (f"role {self.name!r} may not read personal data in clear ({what}): ask with a role whose "
                   "`personal = \"clear\"` in the roles file (the shipped one: `--role privacy`)")
            raise RoleRefused(msg)


def snapshot_of(database: Path, role: Role) -> Path:
    """The file a partner role reads."""
    return database.parent / ROLES_DIRECTORY / f"{role.name}.duckdb"


def publish_role_snapshot(connection: duckdb.DuckDBPyConnection, database: Path, role: Role) -> Path:
    """Build `role`'s snapshot from the database `connection` holds, beside it, and
    rename it into place whole (a reader has the old one or the new one)."""
    assert role.grant is not None, "only a partner's role has a snapshot of its own"
    target = snapshot_of(database, role)
    target.parent.mkdir(exist_ok=True)
    condition, values = role.grant.where()
    with written_whole(connection, target) as (source, copy):
        connection.execute(f'COPY FROM DATABASE "{source}" TO {copy} (SCHEMA)')
        connection.execute(f'CREATE TEMP TABLE granted AS SELECT customer_id FROM "{source}".customer_rows '
                           f"WHERE {condition}", values)
        try:
            for table in GRANTED_TABLES:
                connection.execute(f'INSERT INTO {copy}.{table} SELECT * FROM "{source}".{table} '
                                   "WHERE customer_id IN (SELECT customer_id FROM granted)")
            for table in SHARED_TABLES:
                connection.execute(f'INSERT INTO {copy}.{table} SELECT * FROM "{source}".{table}')
        finally:
            connection.execute("DROP TABLE granted")
    return target
