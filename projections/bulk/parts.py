"""Bulk writing, for the replay: worker processes write their results as Parquet parts,
and one pass assembles the parts into a fresh projections database.

Rows go through Arrow and DuckDB's own Parquet reader, never row by row, with the same
row builders the live path uses (`customers`, `transitions`, `profiles`,
`dead_letters`), so a replayed row and a live one cannot differ in shape. Parts of a
kind are named `<kind>-<n>.parquet` in one directory.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from eventsourcing.persistence import Tracking

from lifecycle.customer_fold import release_of, seq_of
from lifecycle.partition_time import Held
from lifecycle.policy import Policy
from lifecycle.state import CustomerState, encode_state
from projections.catalog import customers
from projections.catalog import dead_letters
from projections.catalog import history
from projections.catalog import policies
from projections.catalog import profiles
from projections.catalog import transitions
from projections.catalog import value_estimates
from projections.catalog import customer_facts
from projections.catalog import value_movements
from projections.catalog.dead_letters import DeadLetter, HeldRecord
from projections.stores.duckdb_tracking_recorder import DuckDBTrackingRecorder
from projections.stores.projection_store import DuckDBProjectionStore, PartitionTimes, check_projections
from schemas import decode_event
from schemas.events import ValueModelFitted
from schemas.lifecycle_events import LifecycleEvent

# Replays use at most this much memory for each DuckDB, spilling to disk beyond it: the
# projections' assembly and each stream read beside it (less for the stream, 256 MB,
# ran out of memory sorting the lifecycle log's 9 M payloads at 10 M events).
MEMORY_LIMIT = "768MB"


def _write(directory: Path, kind: str, number: int, table: pa.Table | None) -> None:
    if table is not None and table.num_rows:
        pq.write_table(table, directory / f"{kind}-{number}.parquet", compression="zstd")


def write_dead_letters(directory: Path, number: int, letters: Sequence[DeadLetter]) -> None:
    _write(directory, "dead", number, dead_letters.table(letters))


_WAITING = pa.schema([
    ("partition", pa.string()), ("position", pa.int64()), ("record_index", pa.int32()), ("kind", pa.string()),
    ("customer_id", pa.string()), ("occurred_at", pa.timestamp("s", tz="UTC")), ("reason", pa.string()),
    ("seq", pa.int64()), ("at_seconds", pa.int64()), ("rule_kind", pa.int8()), ("customer_key", pa.int64()),
    ("payload", pa.binary()),
])
"""Records still waiting for time when the replay ended: `held_records`' columns, and
what the state store keeps of them (lifecycle/partition_time.py `Held`, the bytes)."""


def write_waiting(directory: Path, number: int, waiting: Sequence[tuple[HeldRecord, Held, bytes]]) -> None:
    if not waiting:
        return
    rows = [(row.partition, row.seq >> 10, row.seq & 1023, row.kind, row.customer_id, row.occurred_at, row.reason,
             held.seq, held.at, held.kind, held.customer, raw) for row, held, raw in waiting]
    _write(directory, "waiting", number,
           pa.table([pa.array(column, kind) for column, kind in zip(zip(*rows), _WAITING.types)], schema=_WAITING))


def waiting_records(parts: Path) -> Iterator[tuple[str, Held, bytes]]:
    """(partition, record, bytes) of every record still waiting for time."""
    for partition, seq, at, kind, customer, payload in _streamed(
        parts, "waiting", "SELECT \"partition\", seq, at_seconds, rule_kind, customer_key, payload FROM {parts}", 10_000
    ):
        yield partition, Held(seq, at, kind, customer), payload


def write_fits(directory: Path, fits: Sequence[tuple[str, int, bytes]]) -> None:
    """The value model fits on the log: (partition, position, raw event)."""
    if fits:
        _write(directory, "fits", 0, pa.table({
            "log_partition": pa.array([partition for partition, _, _ in fits], pa.string()),
            "log_position": pa.array([position for _, position, _ in fits], pa.int64()),
            "payload": pa.array([raw for _, _, raw in fits], pa.binary()),
        }))


def value_fits(parts: Path) -> list[tuple[str, int, ValueModelFitted]]:
    """The fits a replay met, in log order within each partition."""
    rows = _streamed(parts, "fits", "SELECT log_partition, log_position, payload FROM {parts} "
                     "ORDER BY log_partition, log_position", 1_000)
    return [(partition, position, _fit(payload)) for partition, position, payload in rows]


def _fit(payload: bytes) -> ValueModelFitted:
    fit = decode_event(payload)  # the scan took it as valid
    assert type(fit) is ValueModelFitted
    return fit


def write_fold(
    directory: Path,
    number: int,
    states: Sequence[tuple[str, CustomerState]],
    derived: Sequence[tuple[str, int, LifecycleEvent, int | None]],
    payloads: Sequence[bytes],
    changes: profiles.ProfileChanges,
    movements: value_movements.ValueMovements,
    facts: customer_facts.CustomerFacts,
) -> None:
    """One bucket's results: final states (with their partitions), lifecycle events
    (partition, the order their cause was taken in, event, the cause's own position if
    it was taken later than there: `consumers/replay/__init__.py`) with their records
    (`payloads`, as the engine encoded them) and personal data."""
    partitions = [partition for partition, _ in states]
    folded = [state for _, state in states]
    if folded:
        _write(directory, "customers", number, customers.customers_table(folded, partitions))
        _write(directory, "states", number, pa.table({
            "log_partition": pa.array(partitions, pa.string()),
            "customer_id": pa.array([s.customer_id for s in folded], pa.string()),
            "next_deadline": pa.array([s.next_deadline for s in folded], pa.int64()),
            "state": pa.array([encode_state(s) for s in folded], pa.binary()),
        }))
    if derived:
        seqs = [seq_of(order) for _, order, _, _ in derived]
        rows = transitions.table([p for p, _, _, _ in derived],
                                 [(seq >> 10, e, cause) for seq, (_, _, e, cause) in zip(seqs, derived)])
        assert rows is not None
        rows = rows.append_column("cause_seq", pa.array(seqs, pa.int64()))
        rows = rows.append_column("cause_sub", pa.array([release_of(order) for _, order, _, _ in derived], pa.int32()))
        rows = rows.append_column("payload", pa.array(payloads, pa.binary()))
        _write(directory, "transitions", number, rows)
    _write(directory, "profiles", number, profiles.table(changes.updates))
    _write(directory, "movements", number, value_movements.table(movements.rows))
    _write(directory, "facts", number, customer_facts.table(facts.rows))


def parts_glob(directory: Path, kind: str) -> str:
    """The parts of one kind, as a quoted-safe glob for `read_parquet`."""
    return str(directory / f"{kind}-*.parquet").replace("'", "''")


def parts_relation(directory: Path, kind: str, columns: str, empty: str) -> str:
    """SQL for `columns` of the parts of one kind; with no such parts, of `empty` (a
    table with the same columns), so that a query over them still runs."""
    if not _any(directory, kind):
        return f"(SELECT {columns} FROM {empty} LIMIT 0)"
    return f"(SELECT {columns} FROM read_parquet('{parts_glob(directory, kind)}'))"


def _any(directory: Path, kind: str) -> bool:
    return any(directory.glob(f"{kind}-*.parquet"))


def assemble(
    database: Path,
    parts: Path,
    policy: Policy,
    previous: Path | None,
    times: Mapping[str, PartitionTimes],
    positions: Mapping[str, int],
) -> str | None:
    """Build the projections at `database` from the parts: every table, the policies
    already used in `previous` (so a version cannot come back with other thresholds),
    the partition times and the positions the replay reached. Returns why `previous`
    could not be carried over (it is damaged), or None."""
    store = DuckDBProjectionStore(database)
    lost = None
    try:
        connection = store.recorder.connection
        connection.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        if previous is not None and previous.exists():
            lost = _carry(connection, previous)
        with store.recorder.transaction() as writing:
            policies.adopt(writing, policy)
            _insert_parts(writing, parts)
            _apply_fits(writing, parts, policy)
            for partition, (latest, clock_at) in times.items():
                writing.execute("INSERT INTO partition_clocks VALUES (?, ?, ?)", [partition, clock_at, latest])
            for name, position in positions.items():
                writing.execute(history.RECORD_COMMIT, [name, position])
                DuckDBTrackingRecorder.record(writing, Tracking(name, position))
        connection.execute("CHECKPOINT")
    finally:
        store.close()
    return lost


def _carry(connection: duckdb.DuckDBPyConnection, previous: Path) -> str | None:
    """What a replay keeps of the generation it replaces: the policies used, and when
    the engine committed what (the known-at axis, projections/catalog/history.py); all of it or
    none. None when carried over, else why `previous` could not be read."""
    damage = check_projections(previous, thorough=False)
    if damage is not None:
        return damage
    quoted = str(previous).replace("'", "''")
    try:
        connection.execute(f"ATTACH '{quoted}' AS previous (READ_ONLY)")
    except duckdb.Error as error:
        return str(error)
    try:
        connection.execute("BEGIN")
        connection.execute("INSERT INTO policies SELECT * FROM previous.policies")
        kept = connection.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'previous' AND table_name = 'engine_commits'"
        ).fetchone()
        if kept and kept[0]:
            connection.execute("INSERT INTO engine_commits SELECT * FROM previous.engine_commits")
        connection.execute("COMMIT")
        return None
    except duckdb.Error as error:
        connection.execute("ROLLBACK")
        return str(error)
    finally:
        connection.execute("DETACH previous")


def _insert_parts(connection: duckdb.DuckDBPyConnection, parts: Path) -> None:
    if _any(parts, "customers"):
        connection.execute(
            f"INSERT INTO customer_rows BY NAME SELECT * FROM read_parquet('{parts_glob(parts, 'customers')}')"
        )
    if _any(parts, "transitions"):
        columns = ", ".join(TRANSITION_COLUMNS)
        connection.execute(
            f"INSERT INTO lifecycle_transitions SELECT {columns} FROM read_parquet('{parts_glob(parts, 'transitions')}') "
            "ORDER BY log_partition, cause_seq, cause_sub, customer_id, sequence"
        )
    if _any(parts, "profiles"):
        connection.execute(
            f"INSERT INTO customer_profiles BY NAME SELECT * FROM read_parquet('{parts_glob(parts, 'profiles')}')"
        )
    if _any(parts, "movements"):
        connection.execute(
            f"INSERT INTO value_movements SELECT * FROM read_parquet('{parts_glob(parts, 'movements')}') "
            "ORDER BY log_partition, log_position, customer_id"
        )
    if _any(parts, "facts"):
        connection.execute(
            f"INSERT INTO customer_facts SELECT * FROM read_parquet('{parts_glob(parts, 'facts')}') "
            "ORDER BY log_partition, log_position, customer_id"
        )
    if _any(parts, "waiting"):
        connection.execute(
            "INSERT INTO held_records SELECT \"partition\", position, record_index, kind, customer_id, occurred_at, "
            f"reason FROM read_parquet('{parts_glob(parts, 'waiting')}')"
        )
    if _any(parts, "dead"):
        connection.execute(
            f"INSERT INTO dead_letters BY NAME SELECT * FROM read_parquet('{parts_glob(parts, 'dead')}') "
            "ORDER BY partition, position"
        )


def _apply_fits(connection: duckdb.DuckDBPyConnection, parts: Path, policy: Policy) -> None:
    """Every fit is listed; each partition's figures come from its latest fit alone
    (live processing applies each in turn, and each replaces the one before)."""
    fits = value_fits(parts)
    latest = {partition: position for partition, position, _ in fits}
    for partition, position, fit in fits:
        if latest[partition] == position:
            value_estimates.apply_fit(connection, fit, partition, position, policy)
        else:
            value_estimates.record_fit(connection, fit, partition, position)


# The columns of `lifecycle_transitions`, in its order (the parts carry two more).
TRANSITION_COLUMNS = (
    "event_id", "customer_id", "sequence", "dimension", "from_value", "to_value", "occurred_at", "rule",
    "policy_version", "caused_by", "log_partition", "log_position", "facts", "cause_position",
)


def lifecycle_payloads(parts: Path, batch_rows: int = 50_000) -> Iterator[tuple[str, int, list[bytes]]]:
    """The replayed lifecycle events, encoded, in the order of the replayed lifecycle log
    (by log partition, then the position of the cause, then customer and sequence):
    runs of (partition, position of the last cause, payloads), each run ending where a
    position ends, so that each can be recorded with a position of its own."""
    rows = _streamed(
        parts, "transitions", "SELECT log_partition, log_position, payload FROM {parts} "
        "ORDER BY log_partition, cause_seq, cause_sub, customer_id, sequence", batch_rows,
    )
    pending: list[bytes] = []
    current: tuple[str, int] | None = None
    for partition, position, payload in rows:
        if current is not None and (partition, position) != current and pending:
            if partition != current[0] or len(pending) >= batch_rows:
                yield current[0], current[1], pending
                pending = []
        current = (partition, position)
        pending.append(payload)
    if current is not None and pending:
        yield current[0], current[1], pending


def encoded_states(parts: Path, batch_rows: int = 50_000) -> Iterator[tuple[str, str, int | None, bytes]]:
    """(partition, customer id, next deadline, encoded state) of every replayed customer."""
    yield from _streamed(
        parts, "states", "SELECT log_partition, customer_id, next_deadline, state FROM {parts}", batch_rows
    )


def _streamed(parts: Path, kind: str, query: str, batch_rows: int) -> Iterator[tuple]:  # type: ignore[type-arg]
    """The rows of `query` over the parts of one kind (`{parts}` in it), streamed through
    Arrow batches with DuckDB's memory bounded; nothing if there are no such parts."""
    if not _any(parts, kind):
        return
    connection = duckdb.connect(config={"memory_limit": MEMORY_LIMIT})
    try:
        reader = connection.sql(query.format(parts=f"read_parquet('{parts_glob(parts, kind)}')"))
        for batch in reader.to_arrow_reader(batch_rows):
            yield from zip(*(column.to_pylist() for column in batch.columns))
    finally:
        connection.close()
