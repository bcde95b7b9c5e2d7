"""Tamper evidence: each customer's lifecycle events form a hash chain that a
downstream consumer checks with `schemas.chain.check_chain` and the published schema."""

from __future__ import annotations

import json
from pathlib import Path

from lifecycle.engine import LifecycleEngine
from lifecycle.policy import Policy
from lifecycle.state import CustomerState
from schemas import decode_event, decode_lifecycle_event, encode_event
from schemas.chain import GENESIS, check_chain, record_hash
from tests.cli import lifecycle

FIXTURES = Path(__file__).parent / "fixtures"


def _records() -> list[bytes]:
    """The lifecycle records of the fixture customers, as the engine encodes them."""
    engine, states, records = LifecycleEngine(Policy(version="test")), {}, []
    for line in (FIXTURES / "events_v1.jsonl").read_bytes().splitlines():
        event = decode_event(line)
        if not hasattr(event, "customer_id"):
            continue
        state = states.setdefault(event.customer_id, CustomerState(customer_id=event.customer_id))
        records += [encode_event(e) for e in engine.on_event(state, event)]
    assert len(records) >= 4
    return records


def _edited(record: bytes, **change: object) -> bytes:
    return json.dumps({**json.loads(record), **change}, separators=(",", ":")).encode()


def test_an_untouched_chain_holds_and_starts_at_genesis():
    records = _records()
    assert check_chain(records) == []
    assert decode_lifecycle_event(records[0]).previous_hash == GENESIS
    assert decode_lifecycle_event(records[1]).previous_hash == record_hash(records[0])


def test_an_altered_event_breaks_the_chain_at_the_next_one():
    records = _records()
    records[1] = _edited(records[1], to_value="advocate")
    [found] = check_chain(records)
    assert found.sequence == decode_lifecycle_event(records[2]).sequence
    assert "altered, removed or reordered" in found.problem


def test_a_removed_or_reordered_event_is_named_by_its_sequence():
    records = _records()
    assert check_chain(records[:1] + records[2:])[0].sequence == 3
    swapped = [records[0], records[2], records[1], *records[3:]]
    assert check_chain(swapped)[0].problem.startswith("sequence 3 follows 1")


def test_removed_latest_events_are_caught_against_the_projections_head():
    records = _records()
    customer = decode_lifecycle_event(records[-1]).customer_id
    head = record_hash(records[-1])
    assert check_chain(records, {customer: head}) == []
    [found] = check_chain(records[:-1], {customer: head})
    assert "chain head" in found.problem


def test_events_from_before_chains_still_decode_and_are_reported_unchained():
    old = (FIXTURES / "lifecycle_events_v1.jsonl").read_bytes().splitlines()
    assert [decode_lifecycle_event(r).previous_hash for r in old] == [None, None]
    assert "before chains" in check_chain(old)[0].problem


def test_the_published_log_chains_to_the_heads_in_customers(settings, capsys):
    assert lifecycle(settings, "publish", str(FIXTURES / "events_v1.jsonl")) == 0
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    capsys.readouterr()
    assert lifecycle(settings, "tail", "customer-lifecycle") == 0
    records = capsys.readouterr().out.encode().splitlines()
    assert lifecycle(settings, "sql", "SELECT customer_id, chain_head FROM customers", "--format", "json") == 0
    heads = {row["customer_id"]: row["chain_head"] for row in json.loads(capsys.readouterr().out)}
    assert records and check_chain(records, heads) == []
    assert check_chain(records[:-1], heads) != []

