"""Tamper evidence: each customer's lifecycle events form a hash chain.

Every lifecycle event carries `previous_hash`: the SHA-256, in hex, of the previous
lifecycle event of the same customer *as the bytes of its record on the log* (the
record's value, exactly as the engine wrote it); a customer's first event carries
`GENESIS`. So an edited event breaks the chain at the next one, a removed or reordered
one breaks it where it was, and removing a customer's latest events is caught against
the chain head the projections keep (`customers.chain_head`, the hash of the latest).

A downstream consumer checks a chain with the published schema and `check_chain`
(or, in any language: SHA-256 of each record's value, compared with the next
record's `previous_hash`, in `sequence` order). Events made before chains existed
(schema version 1) have no `previous_hash`, and are reported as unchained.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from schemas.codec import decode_lifecycle_event

GENESIS = ""
"""The `previous_hash` of a customer's first lifecycle event."""


def record_hash(record: bytes) -> str:
    """The hash the next event of the same customer carries: SHA-256 of `record`, hex."""
    return hashlib.sha256(record).hexdigest()


@dataclass(frozen=True)
class ChainBreak:
    """Where a customer's chain does not hold: the first sequence number at fault."""

    customer_id: str
    sequence: int
    problem: str


def check_chain(records: Iterable[bytes], heads: dict[str, str] | None = None) -> list[ChainBreak]:
    """The breaks in the chains of the lifecycle records given in log order (all of a
    customer's, any customers mixed); empty if every chain holds. `heads`, if given,
    maps customers to the chain head the projections hold, which catches removed
    latest events (a customer in `heads` with no records has lost them all)."""
    last: dict[str, tuple[int, str]] = {}
    breaks: dict[str, ChainBreak] = {}
    for record in records:
        event = decode_lifecycle_event(record)
        customer = event.customer_id
        sequence, previous = last.get(customer, (0, GENESIS))
        if customer not in breaks:
            problem = _problem(event.sequence, event.previous_hash, sequence, previous)
            if problem is not None:
                breaks[customer] = ChainBreak(customer, event.sequence, problem)
        last[customer] = (event.sequence, record_hash(record))
    for customer, head in (heads or {}).items():
        sequence, latest = last.get(customer, (0, GENESIS))
        if customer not in breaks and latest != head:
            breaks[customer] = ChainBreak(
                customer, sequence,
                "the latest event does not hash to the projections' chain head: it was altered, or later ones removed",
            )
    return sorted(breaks.values(), key=lambda b: b.customer_id)


def _problem(sequence: int, carried: str | None, expected: int, previous: str) -> str | None:
    if carried is None:
        return "no previous_hash: an event made before chains (schema version 1)"
    if sequence != expected + 1:
        return f"sequence {sequence} follows {expected}: an event is missing or out of order"
    if carried != previous:
        return "previous_hash does not match the previous event: it was altered, removed or reordered"
    return None
