"""The processor's checkpoints: what the batches since the last one changed, and when
it is written.

Each batch's lifecycle events go to the lifecycle log as the batch is committed, so
subscribers see them at once. The projections and the engine's states are written less
often, at a *checkpoint*: after `CheckpointPolicy.batches` batches or `seconds` seconds,
when more customers' states wait to be written than the state cache holds, and at the
end of a batch run. Between two checkpoints a customer's state, row and deadline are
written once however many batches changed them (Kafka Streams' and Flink's
checkpoints, for the same reason: writing every batch rewrote the same customers
batch after batch).

After a crash the engine reads on from the checkpoint, derives the batches since
again (identically: the derivation is deterministic) and each store skips what it
holds already, so every lifecycle event and row is still written exactly once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from eventsourcing.persistence import Tracking

from lifecycle.deadlines import DeadlineQueue
from lifecycle.partition_time import Held
from lifecycle.state import CustomerState
from projections.stores.projection_store import BatchEffects


@dataclass(frozen=True)
class CheckpointPolicy:
    """When the processor writes its projections and states (see the module text).
    `batches` of 1 writes them with every batch, as a checkpoint-less engine would."""

    batches: int = 10
    seconds: float = 10.0


class SinceCheckpoint:
    """What the batches of one log partition since the last checkpoint changed: their
    effects on the projections, and the customers' states, deadlines and waiting
    records, to be written together with the position of the latest batch."""

    def __init__(self, tracking: Tracking) -> None:
        self.effects = BatchEffects(tracking)
        self.touched: dict[str, CustomerState] = {}
        """Every state read since the checkpoint: a failed batch forgets them all."""
        self.changed: dict[str, CustomerState] = {}
        self.deadlines_before: dict[str, int | None] = {}
        """Each touched customer's deadline as the state store's index holds it."""
        self.pending = DeadlineQueue()
        """Deadlines set since the checkpoint: not in the state store's index yet."""
        self.held: dict[int, tuple[Held, bytes]] = {}
        """Records set waiting for time since the checkpoint, with their bytes."""
        self.released: list[int] = []
        """Written waiting records taken since the checkpoint, by seq."""


class CheckpointClock:
    """Counts batches and seconds since the last checkpoint."""

    def __init__(self, policy: CheckpointPolicy) -> None:
        self.policy = policy
        self.batches = 0
        self.since = time.monotonic()

    def batch_done(self) -> None:
        self.batches += 1

    def due(self) -> bool:
        policy = self.policy
        return self.batches >= policy.batches or (
            self.batches > 0 and time.monotonic() - self.since >= policy.seconds)

    def written(self) -> None:
        self.batches = 0
        self.since = time.monotonic()
