"""The DuckDB projection store: every read model, written one batch per transaction.

A batch's effects (changed customers, lifecycle transitions, personal data, dead
letters) and the log position after the batch are committed together, so after any
crash the rows and the position agree: the batch is either wholly there or wholly to
be done again. The rows are built first (`prepare`), so that a batch whose data cannot
be stored fails before anything of it is written anywhere.

The engine's states are written after the projections (projections/stores/state_store.py), so
after a crash the projections may be ahead of where the engine resumes. The batches in
between are derived again, identically; `prepare` then leaves out the transitions and
dead letters of records the projections already hold, and the rest (a customer's row,
a profile merge) is written again to the same result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
from eventsourcing.persistence import Tracking

from lifecycle.policy import Policy
from lifecycle.state import CustomerState
from projections.catalog import views as catalog
from projections.catalog import customer_facts
from projections.catalog import customers
from projections.catalog import dead_letters
from projections.catalog import history
from projections.catalog import policies
from projections.catalog import profiles
from projections.stores import snapshot
from projections.catalog import transitions
from projections.catalog import trends
from projections.catalog import value_estimates
from projections.catalog import value_movements
from projections.catalog.dead_letters import DeadLetter
from projections.stores.duckdb_tracking_recorder import DuckDBTrackingRecorder
from projections.reading.roles import Role, publish_role_snapshot
from schemas.events import ValueModelFitted

PartitionTimes = tuple[int | None, int | None]
"""A partition's (latest time taken, latest clock), in epoch seconds (lifecycle/partition_time.py)."""


@dataclass
class BatchEffects:
    """What processing one batch of the log changed, to be committed with its position."""

    tracking: Tracking
    states: list[CustomerState] = field(default_factory=list)
    lifecycle_events: list[transitions.Derived] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)
    """The record of each of `lifecycle_events`, as the engine encoded it for its chain."""
    partition_times: PartitionTimes | None = None
    held: list[dead_letters.HeldRecord] = field(default_factory=list)
    released: list[tuple[str, int]] = field(default_factory=list)
    """(partition, seq) of the records taken out of waiting for time."""
    profiles: profiles.ProfileChanges = field(default_factory=profiles.ProfileChanges)
    movements: value_movements.ValueMovements = field(default_factory=value_movements.ValueMovements)
    value_fits: list[tuple[int, ValueModelFitted]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    facts: customer_facts.CustomerFacts = field(default_factory=customer_facts.CustomerFacts)


@dataclass(frozen=True)
class PreparedBatch:
    """A batch's rows, built and ready to be written in one transaction."""

    tracking: Tracking
    customers: pa.Table | None
    transitions: pa.Table | None
    partition_times: PartitionTimes | None
    erased: list[str]
    profiles: pa.Table | None
    movements: pa.Table | None
    value_fits: list[tuple[int, ValueModelFitted]]
    dead_letters: pa.Table | None
    held: list[dead_letters.HeldRecord]
    released: list[tuple[str, int]]
    facts: pa.Table | None = None


class DuckDBProjectionStore:
    """The read models in one DuckDB database, with their tracking recorder."""

    def __init__(self, database: str | Path = ":memory:", memory_limit: str | None = None) -> None:
        self.database = None if str(database) == ":memory:" else Path(database)
        self.recorder = DuckDBTrackingRecorder(str(database))
        self.policy: Policy | None = None
        if memory_limit is not None:
            self.recorder.connection.execute(f"SET memory_limit = '{memory_limit}'")
        # A batch writes tens of MB of customer states; with DuckDB's default 16 MB
        # the write-ahead log was checkpointed after nearly every batch, and commits
        # ran at 5.8-26 k events/s. At 256 MB: +30% commit rate (paired runs, 600 k
        # events), and a crash leaves at most 256 MB of log to replay on restart.
        self.recorder.connection.execute("SET checkpoint_threshold = '256MB'")
        with self.recorder.transaction() as connection:
            ddl = (*value_estimates.DDL, *customers.DDL, *profiles.DDL, *dead_letters.DDL, *transitions.DDL, *policies.DDL,
                   *value_movements.DDL, *customer_facts.DDL, *history.DDL, *catalog.DDL,
                   *trends.DDL)
            for statement in ddl:
                connection.execute(statement)

    def adopt_policy(self, policy: Policy) -> None:
        """Record the policy about to decide; `PolicyConflict` if its version means other rules."""
        with self.recorder.transaction() as connection:
            policies.adopt(connection, policy)
        self.policy = policy

    def fit_value_models(self, cutoff: int, source: str) -> ValueModelFitted:
        """Fit the value models to the purchases these projections hold, as of `cutoff`
        (epoch seconds): the event to append to the log (projections/catalog/value_estimates.py)."""
        assert self.policy is not None, "adopt_policy first"
        positions = self.positions()
        with self.recorder.transaction() as connection:
            return value_estimates.fit_event(connection, cutoff, positions, self.policy, source)

    def latest_value_model_cutoff(self) -> int | None:
        """The cutoff of the latest fit, in epoch seconds; None before the first."""
        with self.recorder.transaction() as connection:
            row = connection.execute("SELECT epoch(max(cutoff))::BIGINT FROM value_models").fetchone()
        return None if row is None else row[0]

    def position_of(self, application_name: str) -> int | None:
        return self.recorder.max_tracking_id(application_name)

    def positions(self) -> dict[str, int]:
        return self.recorder.positions()

    @staticmethod
    def prepare(effects: BatchEffects, written: int | None = None) -> PreparedBatch:
        """Build the batch's rows; nothing is written. `written`: the position the
        projections already hold in this partition, if the batch is derived again."""
        partition = effects.tracking.application_name
        events, letters = effects.lifecycle_events, effects.dead_letters
        fits = effects.value_fits
        if written is not None:
            events = [derived for derived in events if derived[0] > written]
            letters = [letter for letter in letters if (letter.taken_at or letter.position) > written]
            fits = [(position, fit) for position, fit in fits if position > written]
        return PreparedBatch(
            tracking=effects.tracking,
            customers=customers.customers_table(effects.states, [partition] * len(effects.states))
            if effects.states else None,
            transitions=transitions.table([partition] * len(events), events),
            partition_times=effects.partition_times,
            erased=effects.profiles.erased,
            profiles=profiles.table(effects.profiles.updates),
            movements=value_movements.table(effects.movements.after(written)),
            value_fits=fits,
            dead_letters=dead_letters.table(letters),
            held=effects.held,
            released=effects.released,
            facts=customer_facts.table(effects.facts.after(written)),
        )

    def write(self, batch: PreparedBatch, also: Tracking | None = None) -> None:
        """Write a prepared batch and its position in one transaction, with `also`, where
        its effects were read from, if they came from elsewhere than the log."""
        with self.recorder.transaction() as connection:
            customers.upsert(connection, batch.customers)
            transitions.insert(connection, batch.transitions)
            if batch.partition_times is not None:
                connection.execute(
                    "INSERT OR REPLACE INTO partition_clocks (log_partition, event_time, clock_at) VALUES (?, ?, ?)",
                    [batch.tracking.application_name, *batch.partition_times],
                )
            profiles.apply(connection, batch.erased, batch.profiles)
            value_movements.insert(connection, batch.movements)
            customer_facts.insert(connection, batch.facts)
            for position, fit in batch.value_fits:
                assert self.policy is not None, "adopt_policy first"
                value_estimates.apply_fit(connection, fit, batch.tracking.application_name, position, self.policy)
            dead_letters.insert(connection, batch.dead_letters)
            dead_letters.apply_held(connection, batch.held, batch.released)
            tracking = batch.tracking
            connection.execute(history.RECORD_COMMIT, [tracking.application_name, tracking.notification_id])
            self.recorder.record(connection, tracking)
            if also is not None:
                self.recorder.record(connection, also)

    def commit(self, effects: BatchEffects) -> None:
        """Write the batch's effects and its position in one transaction."""
        self.write(self.prepare(effects))

    def publish_snapshot(self) -> Path | None:
        """Publish a read-only copy for analysts (see `projections.stores.snapshot`); None in memory."""
        if self.database is None:
            return None
        with self.recorder.exclusive() as connection:
            return snapshot.publish_snapshot(connection, self.database)

    def publish_role_snapshot(self, role: Role) -> Path | None:
        """Build a partner role's own snapshot (projections/reading/roles.py); None in memory."""
        if self.database is None:
            return None
        with self.recorder.exclusive() as connection:
            return publish_role_snapshot(connection, self.database, role)

    def close(self) -> None:
        self.recorder.close()


_HEADERS = 3 * 4096
"""A DuckDB file's main header and its two database headers, before the first block."""
_SMALL_TABLES = ("tracking", "policies")


def check_projections(path: Path, thorough: bool) -> str | None:
    """Why the projections at `path` cannot be trusted, or None if they can. The file
    must hold every block its header counts in use (a truncated file fails this) and the
    tables the engine reads first must read back; `thorough` reads every table in
    full, and DuckDB checks each block's checksum as it reads it. Blocks of an index
    are read only when a write uses them: damage there is found then, and told the same
    way. Read-only: nothing is written or repaired."""
    try:
        connection = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as error:
        return str(error)
    try:
        # Blocks in use lie at distinct places in the file, so it holds at least that many
        # (the total counts free blocks at the end, which may not be written yet).
        block_size, blocks = connection.execute("SELECT block_size, used_blocks FROM pragma_database_size()").fetchone()
        size = path.stat().st_size
        wal = path.with_name(path.name + ".wal")
        # A crash leaves committed changes in the write-ahead log, replayed on opening:
        # the counts then include blocks not checkpointed into the file yet.
        if not (wal.exists() and wal.stat().st_size) and size < _HEADERS + blocks * block_size:
            return (f"the file holds {size:,} bytes, less than the {_HEADERS + blocks * block_size:,} its blocks in use "
                    "take (truncated)")
        tables = [name for (name,) in connection.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() ORDER BY table_name"
        ).fetchall()]
        for table in tables if thorough else [t for t in _SMALL_TABLES if t in tables]:
            for _ in connection.sql(f'SELECT * FROM "{table}"').to_arrow_reader(65_536):
                pass
        return None
    except duckdb.Error as error:
        return str(error)
    finally:
        connection.close()
