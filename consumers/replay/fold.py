"""The replay's third step, in worker processes: fold one bucket of customers, one
customer at a time, and write the results as parts (projections/bulk/parts.py).

A bucket's records come from every scanned range, in log order; they are grouped by
customer, and the customers are folded in the order of their ids, each with the clocks
of their partition, every record placed where the time rule takes it
(`consumers/replay/timing.py`, `lifecycle/customer_fold.py`). Records the time rule
refused are dead-lettered here, and those still waiting written as waiting, where
their bytes are. Only one bucket's records and states are in memory at a time.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from consumers.replay.scan import read_bucket
from consumers.replay.timing import PartitionTaking
from lifecycle.customer_fold import (
    CustomerFoldFailed,
    FoldedCustomer,
    PartitionClocks,
    fold_customer,
    release_of,
    seq_of,
    take_order,
)
from lifecycle.engine import LifecycleEngine
from lifecycle.partition_time import EVENT, Held, customer_key
from lifecycle.policy import Policy
from lifecycle.state import CustomerState, epoch_seconds
from projections.bulk import parts as bulk
from projections.catalog.dead_letters import ENGINE_FAILED, OUT_OF_RANGE, TIME, DeadLetter, HeldRecord
from projections.catalog.profiles import ProfileChanges
from projections.catalog.customer_facts import CustomerFacts
from projections.catalog.value_movements import ValueMovements
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
    taking: dict[str, PartitionTaking]
    """Per partition, where the time rule takes its records."""


@dataclass
class FoldResult:
    records: int = 0
    customers: int = 0
    lifecycle_events: int = 0
    dead_letters: int = 0
    waiting: int = 0
    unpriced: Counter[str] = field(default_factory=Counter)


@dataclass
class _Parts:
    """What one bucket's customers derived, to be written as its parts."""

    states: list[tuple[str, CustomerState]] = field(default_factory=list)
    derived: list[tuple[str, int, LifecycleEvent, int | None]] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)
    """The record of each of `derived`, as the engine encoded it for its chain."""
    dead: list[DeadLetter] = field(default_factory=list)
    waiting: list[tuple[HeldRecord, Held, bytes]] = field(default_factory=list)
    changes: ProfileChanges = field(default_factory=ProfileChanges)
    movements: ValueMovements = field(default_factory=ValueMovements)
    facts: CustomerFacts = field(default_factory=CustomerFacts)


def fold_bucket(task: FoldTask, parts: Path, policy: Policy) -> FoldResult:
    engine = LifecycleEngine(policy)
    clocks = {
        partition: PartitionClocks([(order, at, _clock(raw)) for order, at, raw in taking.clocks])
        for partition, taking in task.taking.items()
    }
    result, out = FoldResult(), _Parts()
    for customer_id, partition, records in _customers(task):
        result.records += len(records)
        taking = task.taking.get(partition) or PartitionTaking()
        events, raws = _placed(customer_id, partition, records, taking, out)
        folded, failed = _fold(engine, customer_id, events, clocks.get(partition) or PartitionClocks([]))
        own = {order: seq for seq, order in raws}
        for order, reason in folded.refused:
            seq = own[order]
            raw = raws[seq, order]
            kind = ENGINE_FAILED if order in failed else OUT_OF_RANGE
            out.dead.append(DeadLetter(partition, seq >> 10, reason, raw, len(raw), kind))
        if folded.state is not None:
            out.states.append((partition, folded.state))
        out.derived.extend((partition, order, e, _cause(order, e, own)) for order, e in folded.derived)
        out.payloads.extend(folded.payloads)
        _taken(events, folded, own, partition, out, policy.value.rates_to_base, result.unpriced)
    result.customers, result.lifecycle_events = len(out.states), len(out.derived)
    result.dead_letters, result.waiting = len(out.dead), len(out.waiting)
    number = FOLD_PART_BASE + task.bucket
    bulk.write_fold(parts, number, out.states, out.derived, out.payloads, out.changes, out.movements, out.facts)
    bulk.write_dead_letters(parts, number, out.dead)
    bulk.write_waiting(parts, number, out.waiting)
    return result


def _placed(customer_id: str, partition: str, records: list[tuple[int, bytes]], taking: PartitionTaking,
            out: _Parts) -> tuple[list[tuple[int, AnyCustomerEvent, int]], dict[tuple[int, int], bytes]]:
    """The customer's events to fold, (take order, event, epoch seconds) in take order,
    and each one's bytes by (seq, take order); the refused and waiting ones go to `out`."""
    events, raws = [], {}
    for seq, raw in records:
        if seq in taking.refused:
            out.dead.append(DeadLetter(partition, seq >> 10, taking.refused[seq], raw, len(raw), TIME))
            continue
        event = decode_event(raw)
        at = epoch_seconds(event.occurred_at)
        if seq in taking.waiting:
            row = HeldRecord(partition, seq, "event", customer_id, at, taking.waiting[seq])
            out.waiting.append((row, Held(seq, at, EVENT, customer_key(customer_id)), raw))
            continue
        order = taking.released.get(seq, take_order(seq))
        events.append((order, event, at))
        raws[seq, order] = raw
    events.sort(key=lambda placed: placed[0])
    return events, raws


def _cause(order: int, event: LifecycleEvent, own: dict[int, int]) -> int | None:
    """The own position of what caused `event`, if it was taken at a later position."""
    if not event.caused_by or not release_of(order):
        return None
    position = own[order] >> 10
    return None if position == seq_of(order) >> 10 else position

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


def _fold(engine: LifecycleEngine, customer_id: str, events: list, clocks: PartitionClocks  # type: ignore[type-arg]
          ) -> tuple[FoldedCustomer, dict[int, str]]:
    """Fold one customer; an event the engine fails on is refused, and the customer
    folded again without it (as the processor does again a batch). Also the take
    orders of the events the engine failed on."""
    failed: dict[int, str] = {}
    while True:
        try:
            return fold_customer(engine, customer_id, events, clocks, failed), failed
        except CustomerFoldFailed as error:
            failed[error.seq] = error.reason


def _taken(events: list[tuple[int, AnyCustomerEvent, int]], folded: FoldedCustomer, own: dict[int, int],
           partition: str, out: _Parts, rates: dict[str, float], unpriced: Counter[str]) -> None:
    """What the taken events say of personal data, purchases and what they booked, as
    the processor notes it."""
    event_of = {order: event for order, event, _ in events}
    for order, booked in folded.taken:
        event = event_of[order]
        out.changes.take(event)
        out.movements.take(event, partition, own[order] >> 10, booked)
        out.facts.take(event, partition, own[order] >> 10, booked)
        if type(event) is Purchase and event.currency not in rates:
            unpriced[event.currency] += 1


def _clock(raw: bytes) -> Clock:
    clock = decode_event(raw)
    assert type(clock) is Clock
    return clock
