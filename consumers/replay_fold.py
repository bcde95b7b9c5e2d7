"""The replay's third step, in worker processes: fold one bucket of customers, one
customer at a time, and write the results as parts (projections/bulk.py).

A bucket's records come from every scanned range, in log order; they are grouped by
customer, and the customers are folded in the order of their ids, each with the clocks
of their partition (`lifecycle/customer_fold.py`). Records the partition-time rule
refused are dead-lettered here, where their bytes are. Only one bucket's records and
states are in memory at a time.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from consumers.replay_scan import read_bucket
from lifecycle.customer_fold import CustomerFoldFailed, FoldedCustomer, PartitionClocks, fold_customer
from lifecycle.engine import LifecycleEngine
from lifecycle.policy import Policy
from lifecycle.state import CustomerState, epoch_seconds
from projections import bulk
from projections.dead_letters import DeadLetter
from projections.profiles import ProfileChanges
from projections.value_movements import ValueMovements
from schemas import Clock, Purchase, decode_event
from schemas.events import AnyCustomerEvent
from schemas.lifecycle_events import LifecycleEvent

# Fold parts are numbered after the scans' dead-letter parts.
FOLD_PART_BASE = 1_000_000


@dataclass(frozen=True)
class FoldTask:
    bucket: int
    scans: list[tuple[str, Path]]
    """(partition, scan directory) of every scanned range, in log order per partition."""
    clocks: dict[str, list[tuple[int, int, bytes]]]
    """Per partition, the clocks that move time: (seq, epoch seconds, raw record)."""
    refused: dict[str, dict[int, str]]
    """Per partition, the customer events the partition-time rule refused, by seq."""


@dataclass
class FoldResult:
    records: int = 0
    customers: int = 0
    lifecycle_events: int = 0
    dead_letters: int = 0
    unpriced: Counter[str] = field(default_factory=Counter)


def fold_bucket(task: FoldTask, parts: Path, policy: Policy) -> FoldResult:
    engine = LifecycleEngine(policy)
    clocks = {
        partition: PartitionClocks([(seq, at, _clock(raw)) for seq, at, raw in listed])
        for partition, listed in task.clocks.items()
    }
    result = FoldResult()
    states: list[tuple[str, CustomerState]] = []
    derived: list[tuple[str, int, LifecycleEvent]] = []
    dead: list[DeadLetter] = []
    changes = ProfileChanges()
    movements = ValueMovements()
    for customer_id, partition, records in _customers(task):
        result.records += len(records)
        refused = task.refused.get(partition, {})
        events = []
        for seq, raw in records:
            if seq in refused:
                dead.append(DeadLetter(partition, seq >> 10, refused[seq], raw, len(raw)))
            else:
                event = decode_event(raw)
                events.append((seq, event, epoch_seconds(event.occurred_at)))
        folded = _fold(engine, customer_id, events, clocks.get(partition) or PartitionClocks([]))
        raws = dict(records)
        dead.extend(DeadLetter(partition, seq >> 10, reason, raws[seq], len(raws[seq])) for seq, reason in folded.refused)
        if folded.state is not None:
            states.append((partition, folded.state))
        derived.extend((partition, seq, e) for seq, e in folded.derived)
        _taken(events, folded, partition, changes, movements, engine.policy, result.unpriced)
    result.customers, result.lifecycle_events, result.dead_letters = len(states), len(derived), len(dead)
    bulk.write_fold(parts, FOLD_PART_BASE + task.bucket, states, derived, changes, movements)
    bulk.write_dead_letters(parts, FOLD_PART_BASE + task.bucket, dead)
    return result


def _customers(task: FoldTask) -> list[tuple[str, str, list[tuple[int, bytes]]]]:
    """(customer id, partition, [(seq, raw)] in log order), by customer id."""
    grouped: dict[str, list[tuple[int, bytes]]] = defaultdict(list)
    partition_of: dict[str, str] = {}
    for partition, directory in task.scans:
        for customer_id, seq, raw in read_bucket(directory / f"bucket-{task.bucket}.bin"):
            if partition_of.setdefault(customer_id, partition) != partition:
                msg = (
                    f"customer {customer_id!r} has events in two log partitions ({partition_of[customer_id]}, "
                    f"{partition}): the log's keying changed; a replay needs each customer in one partition"
                )
                raise ValueError(msg)
            grouped[customer_id].append((seq, raw))
    return [(customer_id, partition_of[customer_id], grouped[customer_id]) for customer_id in sorted(grouped)]


def _fold(engine: LifecycleEngine, customer_id: str, events: list, clocks: PartitionClocks) -> FoldedCustomer:  # type: ignore[type-arg]
    """Fold one customer; an event the engine fails on is refused, and the customer
    folded again without it (as the processor does again a batch)."""
    failed: dict[int, str] = {}
    while True:
        try:
            return fold_customer(engine, customer_id, events, clocks, failed)
        except CustomerFoldFailed as error:
            failed[error.seq] = error.reason


def _taken(
    events: list[tuple[int, AnyCustomerEvent, int]],
    folded: FoldedCustomer,
    partition: str,
    changes: ProfileChanges,
    movements: ValueMovements,
    policy: Policy,
    unpriced: Counter[str],
) -> None:
    """What the taken events say of personal data, purchases and prices, as the processor notes it."""
    refused = {seq for seq, _ in folded.refused}
    rates = policy.value.rates_to_base
    for seq, event, _ in events:
        if seq in refused:
            continue
        changes.take(event)
        movements.take(event, partition, seq >> 10, policy)
        if type(event) is Purchase and event.currency not in rates:
            unpriced[event.currency] += 1


def _clock(raw: bytes) -> Clock:
    clock = decode_event(raw)
    assert type(clock) is Clock
    return clock
