"""Where a processor's results go, besides its own state store: `ProcessorOutputs`.

The processor derives; its outputs take each batch as it is committed and everything
since the last checkpoint at a checkpoint, each with the input position it reflects.
Two kinds stand behind this interface:
- `LocalOutputs`, one engine owning a home: the lifecycle log (SQLite) per batch, the
  DuckDB projections at each checkpoint (this module);
- a member of a consumer group: one Kafka transaction per checkpoint holding the
  lifecycle events, the state changelog, the dead letters and the consumed offsets
  (consumers/group/transactional_outputs.py).
The processor writes its state store after the outputs, so the state store is never
ahead of them: reading resumes where it stands, and the outputs skip what they hold.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

from eventsourcing.persistence import Tracking

from consumers.errors import LifecycleError
from consumers.logs.sqlite_event_log import SQLiteEventLog
from consumers.processing.checkpoint import SinceCheckpoint
from lifecycle.partition_time import PartitionTime
from lifecycle.policy import Policy
from projections.stores.projection_store import BatchEffects, DuckDBProjectionStore
from projections.stores.state_store import StateBatch


class ProcessorOutputs(ABC):
    """The processor's outputs (see the module text)."""

    def adopt_policy(self, policy: Policy) -> None:
        """Told the engine's policy before anything is written."""

    @abstractmethod
    def check(self, positions: Mapping[str, int]) -> None:
        """Refuse to go on if the outputs are behind the state store's `positions`."""

    @abstractmethod
    def batch(self, tracking: Tracking, effects: BatchEffects, start: int) -> None:
        """A batch is committed: its lifecycle events are `effects.lifecycle_events[start:]`."""

    @abstractmethod
    def checkpoint(self, since: Mapping[str, SinceCheckpoint], times: Mapping[str, PartitionTime],
                   batches: list[StateBatch]) -> None:
        """Write what the batches since the last checkpoint changed, per partition, with
        the partitions' time rules as they stand; raise if it cannot be written whole.
        `batches`, the state store's writes to come, may be given marks to write too."""


class LocalOutputs(ProcessorOutputs):
    """The lifecycle log of a home's generation, and its DuckDB projections."""

    def __init__(self, store: DuckDBProjectionStore, lifecycle_log: SQLiteEventLog) -> None:
        self.store = store
        self.lifecycle_log = lifecycle_log

    def adopt_policy(self, policy: Policy) -> None:
        self.store.adopt_policy(policy)

    def check(self, positions: Mapping[str, int]) -> None:
        views = self.store.positions()
        for partition, position in positions.items():
            if views.get(partition, 0) < position:
                msg = (
                    f"the projections are behind the engine's states for {partition} "
                    f"({views.get(partition, 0)} < {position}): they were removed or replaced. "
                    "Run `lifecycle replay` to derive everything again from the log."
                )
                raise LifecycleError(msg)
        for partition, position in views.items():
            recorded = self.lifecycle_log.recorded_position(partition) or 0
            if recorded < position:
                msg = (
                    f"the lifecycle log {self.lifecycle_log.path} is behind the projections "
                    f"for {partition} ({recorded} < {position}): it was removed or replaced. "
                    "Run `lifecycle replay` to derive everything again from the log."
                )
                raise LifecycleError(msg)

    def batch(self, tracking: Tracking, effects: BatchEffects, start: int) -> None:
        """The batch's lifecycle events to the lifecycle log, with the position after the
        batch (those it holds already skipped: a batch derived again after a crash)."""
        name, position = tracking.application_name, tracking.notification_id
        recorded = self.lifecycle_log.recorded_position(name)
        if recorded is None or recorded < position:
            fresh = [payload for (at, _, _), payload in zip(effects.lifecycle_events[start:], effects.payloads[start:],
                                                            strict=True)
                     if recorded is None or at > recorded]
            self.lifecycle_log.record(fresh, tracking)

    def checkpoint(self, since: Mapping[str, SinceCheckpoint], times: Mapping[str, PartitionTime],
                   batches: list[StateBatch]) -> None:
        """The projections' rows, one DuckDB transaction a partition, skipping a
        partition the projections hold already."""
        prepared = []
        for name, changes in since.items():
            in_views = self.store.position_of(name)
            if in_views is None or in_views < changes.effects.tracking.notification_id:
                prepared.append(self.store.prepare(changes.effects, written=in_views))
        for rows in prepared:
            self.store.write(rows)
