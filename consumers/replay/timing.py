"""The replay's second step, here in the coordinator: the time rule over each partition in
log order (lifecycle/partition_time.py), as the live processor runs it record by record.

It reads the scans' compact (seq, time, kind, customer) arrays, never the records, and
says for each partition where every record is taken (`take_order`: its own place, or
right after the record that released it), which records are refused, and which still
wait when the log ends, with why. The fold then places each customer's events and the
partition's clocks by take order, so that a replay takes every record where live
processing took it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from consumers.replay.scan import ScanResult, read_times
from lifecycle.customer_fold import take_order
from lifecycle.partition_time import CLOCK, EVENT, REFUSE, TAKE, WAIT, Held, PartitionTime, waiting_reason
from lifecycle.policy import Policy
from projections.catalog.dead_letters import TIME, DeadLetter, HeldRecord
from projections.stores.state_store import PartitionRule


@dataclass
class PartitionTaking:
    """Where one partition's records are taken."""

    clocks: list[tuple[int, int, bytes]] = field(default_factory=list)
    """The clocks taken: (take order, epoch seconds, raw record), in take order."""
    released: dict[int, int] = field(default_factory=dict)
    """Customer events that waited for time: seq -> take order."""
    refused: dict[int, str] = field(default_factory=dict)
    """Customer events the rule refused: seq -> why."""
    waiting: dict[int, str] = field(default_factory=dict)
    """Customer events still waiting at the end: seq -> why."""


@dataclass
class LogTaking:
    """The time rule's outcome over the whole log."""

    partitions: dict[str, PartitionTaking] = field(default_factory=dict)
    rules: dict[str, PartitionRule] = field(default_factory=dict)
    times: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)
    """Each partition's (latest time taken, latest clock)."""
    positions: dict[str, int] = field(default_factory=dict)
    dead: list[DeadLetter] = field(default_factory=list)
    """Clocks refused."""
    waiting_clocks: list[tuple[HeldRecord, Held, bytes]] = field(default_factory=list)
    """Clocks still waiting at the end, with their bytes."""


def take_log(scans: list[ScanResult], policy: Policy) -> LogTaking:
    """Run the time rule over the scans, sorted by partition and range."""
    out = LogTaking()
    rules: dict[str, PartitionTime] = {}
    clock_bytes: dict[str, dict[int, bytes]] = {}
    for result in scans:
        partition = result.unit.partition
        rule = rules.setdefault(partition, PartitionTime(policy))
        taking = out.partitions.setdefault(partition, PartitionTaking())
        raws = clock_bytes.setdefault(partition, {})
        raws.update((seq, raw) for seq, _, raw in result.clocks)
        _take_range(rule, taking, raws, result, partition, out.dead)
        if result.last_position is not None:
            out.positions[partition] = result.last_position
    for partition, rule in rules.items():
        _finish(rule, out.partitions[partition], clock_bytes[partition], partition, out)
    return out


def _take_range(rule: PartitionTime, taking: PartitionTaking, raws: dict[int, bytes], result: ScanResult,
                partition: str, dead: list[DeadLetter]) -> None:
    seqs, ats, kinds, customers = read_times(result.directory / "times.bin")
    offer_event, offer_clock = rule.offer_event, rule.offer_clock
    for seq, at, kind, customer in zip(seqs, ats, kinds, customers):
        verdict = offer_event(seq, at, customer) if kind == EVENT else offer_clock(seq, at)
        if verdict == TAKE:
            if kind == CLOCK:
                taking.clocks.append((take_order(seq), at, raws[seq]))
        elif verdict == REFUSE:
            assert rule.refusal is not None
            if kind == CLOCK:
                dead.append(DeadLetter(partition, seq >> 10, rule.refusal, raws[seq], len(raws[seq]), TIME))
            else:
                taking.refused[seq] = rule.refusal
        elif verdict == WAIT:
            taking.waiting[seq] = waiting_reason(rule.held[seq], rule.confirmed, rule.policy)
        released = rule.released()
        for number, record in enumerate(released, start=1):
            order = take_order(seq, number)
            del taking.waiting[record.seq]
            if record.kind == CLOCK:
                taking.clocks.append((order, record.at, raws[record.seq]))
            else:
                taking.released[record.seq] = order


def _finish(rule: PartitionTime, taking: PartitionTaking, raws: dict[int, bytes], partition: str,
            out: LogTaking) -> None:
    """The partition's rule as the live processor would persist it; clocks still waiting
    leave the customer events' list (the fold writes those, where their bytes are)."""
    out.rules[partition] = rule.state()
    out.times[partition] = (rule.latest, rule.clock_at)
    for record in rule.held_records():
        if record.kind == CLOCK:
            reason = taking.waiting.pop(record.seq)
            row = HeldRecord(partition, record.seq, "clock", None, record.at, reason)
            out.waiting_clocks.append((row, record, raws[record.seq]))
