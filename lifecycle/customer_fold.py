# cython: annotation_typing=False
"""One customer's whole history at once: the bulk replay's unit of work.

The live processor takes the log in its order, all customers mixed, and a clock finds
the customers it has caught up with through their deadlines (`lifecycle/deadlines.py`).
A replay that holds one customer at a time (the log sorted by customer, as Flink runs
a bounded input in batch mode) gets the same answers if each customer sees the clocks
of their partition at the same places among their own events, and is decided by the
same clocks:

- records are placed by the *order they are taken in*, which is their place on the log
  except for records that waited for time (lifecycle/partition_time.py): those are
  taken right after the record that released them, in release order. `take_order`
  encodes both in one integer;
- a clock decides a customer again when it reaches the customer's deadline. Deadlines
  always lie past the latest clock the customer has seen, so the first clock that
  reaches one is found by a binary search over the partition's running maximum of clock
  times (a clock earlier than that maximum, a late one, reaches no deadline);
- when the customer's next event comes, their time first moves to the partition's
  latest clock (as the processor moves it when it next sees them);
- events the engine refuses (`FactOutOfRange`) change nothing but that move.

Nothing else differs, and the engine (`LifecycleEngine`) is the same: the rules are
written once. Tests compare the two on seeded populations and random streams.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate

from lifecycle.engine import LifecycleEngine
from lifecycle.errors import FactOutOfRange, LifecycleDomainError
from lifecycle.state import CustomerState
from schemas import Clock
from schemas.events import AnyCustomerEvent
from schemas.lifecycle_events import LifecycleEvent


RELEASE_BITS = 24
"""Room in a take order for the records released at one place (at most
`[time] max_held_records`, itself at most 10 million)."""


def take_order(seq: int, release: int = 0) -> int:
    """Where a record is taken: at its own `seq` (release 0), or as the `release`-th
    record released right after the record at `seq`."""
    return seq << RELEASE_BITS | release


def seq_of(order: int) -> int:
    """The seq of the record a take order is at (the releasing one, for a released record)."""
    return order >> RELEASE_BITS


def release_of(order: int) -> int:
    return order & ((1 << RELEASE_BITS) - 1)


class PartitionClocks:
    """The clocks a partition's customers take, in the order taken: those the time rule
    took (`PartitionTime.offer_clock`) and that move time."""

    def __init__(self, clocks: Sequence[tuple[int, int, Clock]]) -> None:
        """`clocks`: (take order, epoch seconds, the clock event), in take order."""
        self.sequence = [order for order, _, _ in clocks]
        self.times = [at for _, at, _ in clocks]
        self.running_max = list(accumulate(self.times, max))
        self.events = [clock for _, _, clock in clocks]

    def before(self, order: int) -> int:
        """How many clocks are taken before the record of take order `order`."""
        return bisect_left(self.sequence, order)

    def latest(self, count: int) -> int | None:
        """The latest clock time among the first `count` clocks."""
        return self.running_max[count - 1] if count else None


@dataclass
class FoldedCustomer:
    """What a customer's history derived: the final state (None if no event was taken),
    the lifecycle events with the take order of what derived them (and each one's
    record, in `payloads`), and the take orders of the events refused, with why."""

    state: CustomerState | None
    derived: list[tuple[int, LifecycleEvent]] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)
    taken: list[tuple[int, tuple[int, int] | None]] = field(default_factory=list)
    """The take order of each event taken, with what it booked (`LifecycleEngine.booked`)."""


class CustomerFoldFailed(LifecycleDomainError):
    """The engine failed on the record of take order `seq`: a bug, or an input nobody
    foresaw. The customer is folded again with that record refused (as the processor
    redoes a batch without it)."""

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(reason)
        self.seq = seq
        self.reason = reason


def fold_customer(
    engine: LifecycleEngine,
    customer_id: str,
    events: Sequence[tuple[int, AnyCustomerEvent, int]],
    clocks: PartitionClocks,
    failed: Mapping[int, str] = {},  # noqa: B006 - read only
) -> FoldedCustomer:
    """Fold `events` (take order, event, epoch seconds; in take order) of one customer,
    with their partition's `clocks`. `failed`: records the engine failed on before
    (by take order), refused with the reason given."""
    state: CustomerState | None = None
    changed = False
    out = FoldedCustomer(None)
    seen = 0  # clocks already passed
    for seq, event, at in events:
        if seq in failed:
            out.refused.append((seq, failed[seq]))
            continue
        upto = clocks.before(seq)
        try:
            if state is not None:
                _due_clocks(engine, state, clocks, seen, upto, out)
            seen = upto
            if state is None:
                state = CustomerState(customer_id=customer_id)
            latest = clocks.latest(upto)
            if latest is not None and latest > state.now:
                state.now = latest
            for derived in engine.on_event(state, event, at):
                out.derived.append((seq, derived))
            out.payloads.extend(engine.payloads)
            out.taken.append((seq, engine.booked))
        except FactOutOfRange as error:
            out.refused.append((seq, str(error)))
            continue
        except Exception as error:
            if isinstance(error, MemoryError):
                raise
            reason = f"the engine could not fold this event ({type(error).__name__}: {error})"
            raise CustomerFoldFailed(seq, reason) from error
        changed = True
    if state is not None and changed:
        _due_clocks(engine, state, clocks, seen, len(clocks.times), out)
        out.state = state
    return out


def _due_clocks(
    engine: LifecycleEngine, state: CustomerState, clocks: PartitionClocks, start: int, stop: int, out: FoldedCustomer
) -> None:
    """Decide the customer again at each clock in [start, stop) that reaches their deadline."""
    while state.next_deadline is not None and start < stop:
        index = bisect_left(clocks.running_max, state.next_deadline, start, stop)
        if index == stop:
            return
        seq = clocks.sequence[index]
        for derived in engine.on_clock(state, clocks.events[index]):
            out.derived.append((seq, derived))
        out.payloads.extend(engine.payloads)
        start = index + 1
