"""Comparing a replay of the log with the live stores, customer by customer.

`lifecycle verify` replays the log into a scratch place (projections/bulk/parts.py parts)
and asks here what differs: each customer's `customers` row column by column, their
`lifecycle_transitions` rows, their `value_movements` and `customer_facts`, their `value_estimates` (the
figures of the latest value model fit, computed again from the replayed movements),
and the lifecycle records of the live lifecycle log (and,
with Kafka, of the topic subscribers read) by the SHA-256 of their bytes, in log
order against the replay's sequence order. So an edited row, an altered, removed,
forged or reordered lifecycle event all show, as the customer, the store, and the first
sequence that differs. The comparison runs in a scratch DuckDB database that attaches
the live projections read-only (consumers/replay/scratch.py), so its memory is bounded
whatever the population.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import duckdb
import pyarrow as pa

from lifecycle.policy import Policy
from projections.catalog import customer_facts
from projections.catalog import customers
from projections.catalog import value_estimates
from projections.arrow_rows import append
from projections.bulk.parts import TRANSITION_COLUMNS, parts_glob, parts_relation, value_fits

CUSTOMERS = "customers"
TRANSITIONS = "lifecycle_transitions"
MOVEMENTS = "value_movements"
FACTS = "customer_facts"
ESTIMATES = "value_estimates"
_ESTIMATE_COLUMNS = ("log_partition", "model_id", "frequency", "recency_days", "age_days", "monetary_minor",
                     "p_alive", "expected_purchases", "expected_spend_minor", "model_clv_minor")
_MOVEMENT_COLUMNS = ("event_id", "customer_id", "order_id", "kind", "occurred_at", "revenue_minor", "value_minor",
                     "log_partition", "log_position")


@dataclass(frozen=True)
class Mismatch:
    customer_id: str
    store: str
    detail: str


_LIVE_RECORDS = pa.schema([
    ("store", pa.string()), ("ordinal", pa.int64()), ("customer_id", pa.string()), ("sequence", pa.int64()),
    ("hash", pa.string()),
])


class Verification:
    """The live stores against a replay's parts, in a scratch database."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, parts: Path, policy: Policy,
                 scope: Sequence[str] | None = None) -> None:
        """`connection`: a scratch database with the live projections attached as `live`;
        `policy`: the one the replay decided under; `scope`: the log partitions replayed,
        if not all (the live rows of others are left out)."""
        self.parts = parts
        self.policy = policy
        self.connection = connection
        self.scope = None if scope is None else ", ".join("'" + name.replace("'", "''") + "'" for name in scope)
        self.connection.execute(
            "CREATE TABLE live_records (store VARCHAR, ordinal BIGINT, customer_id VARCHAR, sequence BIGINT,"
            " hash VARCHAR)"
        )

    def add_records(self, store: str, first: int, rows: list[tuple[str | None, int | None, str]]) -> None:
        """A run of a lifecycle log's records in log order, numbered from `first`:
        (customer id, sequence, SHA-256 of the bytes); None for an undecodable record."""
        if not rows:
            return
        customer_ids, sequences, hashes = zip(*rows)
        table = pa.table([
            pa.array([store] * len(rows)), pa.array(range(first, first + len(rows)), pa.int64()),
            pa.array(customer_ids, pa.string()), pa.array(sequences, pa.int64()), pa.array(hashes, pa.string()),
        ], schema=_LIVE_RECORDS)
        self.connection.register("_records", table)
        self.connection.execute("INSERT INTO live_records SELECT * FROM _records")
        self.connection.unregister("_records")

    def mismatches(self, stores: list[str]) -> list[Mismatch]:
        """Every customer that differs, in each store, sorted by customer and store."""
        found = [*self._customers(), *self._transitions(), *self._movements(), *self._facts(), *self._estimates()]
        for store in stores:
            found += self._records(store)
        return sorted(found, key=lambda m: (m.customer_id, m.store))

    def counts(self) -> tuple[int, int]:
        """(customers, lifecycle events) in the replay."""
        return (
            self._count(f"SELECT count(*) FROM read_parquet('{parts_glob(self.parts, 'customers')}')", "customers"),
            self._count(f"SELECT count(*) FROM read_parquet('{parts_glob(self.parts, 'transitions')}')",
                        "transitions"),
        )

    def _count(self, query: str, kind: str) -> int:
        if not any(self.parts.glob(f"{kind}-*.parquet")):
            return 0
        return self.connection.execute(query).fetchone()[0]  # type: ignore[index]

    def _live(self, table: str) -> str:
        """A live table, or its rows in the partitions replayed."""
        if self.scope is None:
            return f"live.{table}"
        return f"(SELECT * FROM live.{table} WHERE log_partition IN ({self.scope}))"

    def _replayed(self, kind: str, columns: str) -> str:
        live = {"customers": "live.customer_rows", "transitions": f"live.{TRANSITIONS}", "movements": f"live.{MOVEMENTS}",
                "facts": f"live.{FACTS}"}
        return parts_relation(self.parts, kind, columns, live[kind])

    def _movements(self) -> list[Mismatch]:
        return self._appended(MOVEMENTS, "movements", _MOVEMENT_COLUMNS)

    def _facts(self) -> list[Mismatch]:
        return self._appended(FACTS, "facts", customer_facts.COLUMNS)

    def _appended(self, table: str, kind: str, names: Sequence[str]) -> list[Mismatch]:
        """Each customer's rows of an append-only table as a multiset: in no set order."""
        columns = ", ".join(names)
        rows = self.connection.execute(
            f"WITH l AS (SELECT {columns}, count(*) AS n FROM {self._live(table)} GROUP BY ALL),"
            f" r AS (SELECT {columns}, count(*) AS n FROM {self._replayed(kind, columns)} GROUP BY ALL)"
            f" SELECT DISTINCT coalesce(l.customer_id, r.customer_id) FROM l FULL JOIN r ON "
            + " AND ".join(f"l.{c} IS NOT DISTINCT FROM r.{c}" for c in (*names, "n"))
            + " WHERE l.customer_id IS NULL OR r.customer_id IS NULL"
        ).fetchall()
        return [Mismatch(c, table, "its rows differ from the replay's") for (c,) in rows]

    def _estimates(self) -> list[Mismatch]:
        """Each partition's figures from its latest fit on the log, made again from the
        replayed movements, against the live ones."""
        movements = self._replayed("movements", ", ".join(_MOVEMENT_COLUMNS))
        latest = {partition: fit for partition, _, fit in value_fits(self.parts)}
        self.connection.execute(f"CREATE TEMP TABLE replayed_estimates AS FROM live.{ESTIMATES} LIMIT 0")
        write = partial(append, self.connection, "replayed_estimates")
        for partition, fit in latest.items():
            if partition in fit.data:
                value_estimates.estimates(self.connection, fit, partition, self.policy, movements, write)
        return self._rows_differing(ESTIMATES, self._live(ESTIMATES), "replayed_estimates", _ESTIMATE_COLUMNS)

    def _customers(self) -> list[Mismatch]:
        names = [name for name, _, _, _ in customers.COLUMNS if name != "customer_id"] + ["log_partition"]
        replayed = self._replayed("customers", "customer_id, " + ", ".join(names))
        return self._rows_differing(CUSTOMERS, self._live("customer_rows"), replayed, names)

    def _rows_differing(self, store: str, live: str, replayed: str, names: Sequence[str]) -> list[Mismatch]:
        """The customers whose one row differs between `live` and `replayed`, naming the
        columns that differ (`names`), or that only one of them has."""
        differ = ", ".join(f"CASE WHEN l.{n} IS DISTINCT FROM r.{n} THEN '{n}' END" for n in names)
        differing = f"list_filter([{differ}], lambda x: x IS NOT NULL)"
        rows = self.connection.execute(
            f"SELECT coalesce(l.customer_id, r.customer_id), l.customer_id IS NULL, r.customer_id IS NULL, {differing}"
            f" FROM {live} l FULL JOIN {replayed} r ON l.customer_id = r.customer_id"
            f" WHERE l.customer_id IS NULL OR r.customer_id IS NULL OR len({differing}) > 0"
        ).fetchall()
        return [Mismatch(c, store, _row_detail(missing, extra, columns)) for c, missing, extra, columns in rows]

    def _transitions(self) -> list[Mismatch]:
        names = [n for n in TRANSITION_COLUMNS if n not in ("customer_id", "sequence")]
        same = " AND ".join(f"l.{n} IS NOT DISTINCT FROM r.{n}" for n in names)
        replayed = self._replayed("transitions", ", ".join(TRANSITION_COLUMNS))
        rows = self.connection.execute(
            f"SELECT coalesce(l.customer_id, r.customer_id) AS c, min(coalesce(l.sequence, r.sequence))"
            f" FROM {self._live(TRANSITIONS)} l FULL JOIN {replayed} r"
            f" ON l.customer_id = r.customer_id AND l.sequence = r.sequence"
            f" WHERE l.customer_id IS NULL OR r.customer_id IS NULL OR NOT ({same}) GROUP BY c"
        ).fetchall()
        return [Mismatch(c, TRANSITIONS, f"first differs at sequence {s}") for c, s in rows]

    def _records(self, store: str) -> list[Mismatch]:
        replayed = self._replayed("transitions", "customer_id, sequence, payload")
        undecodable = self.connection.execute(
            "SELECT ordinal FROM live_records WHERE store = ? AND customer_id IS NULL ORDER BY ordinal", [store]
        ).fetchall()
        found = [Mismatch("?", store, f"record {n + 1} is not a lifecycle event") for (n,) in undecodable]
        # A lifecycle log holds every partition's customers: those of the partitions replayed are kept.
        scoped = "" if self.scope is None else (
            f" AND customer_id IN (SELECT customer_id FROM {self._live('customer_rows')}"
            f" UNION SELECT customer_id FROM {self._replayed('customers', 'customer_id')})")
        rows = self.connection.execute(
            "WITH l AS (SELECT customer_id, sequence, hash,"
            "  row_number() OVER (PARTITION BY customer_id ORDER BY ordinal) AS n"
            f"  FROM live_records WHERE store = ? AND customer_id IS NOT NULL{scoped}),"
            f" r AS (SELECT customer_id, sequence, sha256(payload) AS hash,"
            f"  row_number() OVER (PARTITION BY customer_id ORDER BY sequence) AS n FROM {replayed})"
            " SELECT coalesce(l.customer_id, r.customer_id) AS c,"
            "  arg_min(coalesce(r.sequence, l.sequence), coalesce(l.n, r.n)),"
            "  arg_min(l.sequence, coalesce(l.n, r.n)), arg_min(r.sequence, coalesce(l.n, r.n))"
            " FROM l FULL JOIN r ON l.customer_id = r.customer_id AND l.n = r.n"
            " WHERE l.hash IS DISTINCT FROM r.hash GROUP BY c",
            [store],
        ).fetchall()
        found += [Mismatch(c, store, _record_detail(s, live, replayed)) for c, s, live, replayed in rows]
        return found

    def close(self) -> None:
        self.connection.close()


def _row_detail(missing: bool, extra: bool, columns: list[str]) -> str:
    if missing:
        return "the customer is missing from the live projections"
    if extra:
        return "a customer the log does not have"
    return f"differs in {', '.join(columns)}"


def _record_detail(sequence: int, live: int | None, replayed: int | None) -> str:
    if live is None:
        return f"first differs at sequence {sequence}: missing from the live log"
    if replayed is None:
        return f"first differs at sequence {sequence}: a record the replay does not make"
    if live != replayed:
        return f"first differs at sequence {sequence}: the live log has sequence {live} there (removed or reordered)"
    return f"first differs at sequence {sequence}: the record was altered"
