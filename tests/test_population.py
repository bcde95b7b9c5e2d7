"""The synthetic population: deterministic, valid, ordered and coherent event streams."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from lifecycle.population import PopulationSpec, generate
from schemas import EVENT_TYPES, decode_event

SPEC = PopulationSpec(customers=2_000, seed=11)


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    return list(generate(SPEC))


@pytest.fixture(scope="module")
def events(lines):
    return [decode_event(line) for line in lines]


def digest(spec: PopulationSpec) -> str:
    return hashlib.sha256(b"\n".join(generate(spec))).hexdigest()


def test_the_same_spec_gives_the_same_bytes(lines):
    assert hashlib.sha256(b"\n".join(lines)).hexdigest() == digest(SPEC)


def test_different_seeds_give_different_populations():
    small = PopulationSpec(customers=200, seed=1, days=60)
    assert digest(small) != digest(PopulationSpec(customers=200, seed=2, days=60))


def test_every_line_is_one_valid_event(lines, events):
    assert len(events) == len(lines)
    assert all(not line.endswith(b"\n") for line in lines)
    assert len({event.event_id for event in events}) == len(events)


def test_every_event_type_appears(events):
    seen = {type(event).__struct_config__.tag for event in events}
    # A fit of the value models is the engine's (`lifecycle fit-value-model`), no producer's.
    assert seen == set(EVENT_TYPES) - {"value_model_fitted"}


def test_events_are_ordered_by_occurred_at(events):
    times = [event.occurred_at for event in events]
    assert times == sorted(times)
    assert events[0].occurred_at == SPEC.start


def test_a_clock_at_every_midnight(events):
    clocks = [event for event in events if event.source == "clock"]
    assert len(clocks) == SPEC.days + 1
    assert all(clock.occurred_at.time() == datetime.min.time() for clock in clocks)
    assert not list(generate(PopulationSpec(customers=0, days=3, clock_every_days=0)))


def test_refunds_refer_to_earlier_orders_of_the_same_customer(events):
    orders = {}
    refunds = 0
    for event in events:
        if event.__struct_config__.tag == "purchase":
            assert event.order_id not in orders
            orders[event.order_id] = event
        elif event.__struct_config__.tag == "refund":
            order = orders[event.order_id]
            assert order.customer_id == event.customer_id
            assert order.currency == event.currency
            assert event.amount_minor <= order.amount_minor
            assert order.occurred_at < event.occurred_at
            refunds += 1
    assert refunds > 0


def test_customers_are_coherent(events):
    """Sign-up comes first, referrals name customers of the population, and nothing of
    an erased customer follows the erasure."""
    first, erased = {}, set()
    for event in events:
        customer = getattr(event, "customer_id", None)
        if customer is None:
            continue
        assert customer not in erased
        first.setdefault(customer, event.__struct_config__.tag)
        if event.__struct_config__.tag == "customer_erased":
            erased.add(customer)
    assert set(first.values()) == {"profile_updated"}
    referred = {e.referred_customer_id for e in events if hasattr(e, "referred_customer_id")}
    assert referred <= set(first)
    assert erased


def test_timestamps_are_rfc3339_utc(lines):
    assert b'"occurred_at":"2025-01-01T00:00:00Z"' in lines[0]


def test_a_spec_must_be_sensible():
    with pytest.raises(ValueError):
        PopulationSpec(days=0)
    with pytest.raises(ValueError):
        PopulationSpec(start=datetime(2025, 1, 1))  # noqa: DTZ001 - naive on purpose
    assert PopulationSpec().start.tzinfo is UTC
