"""Folding one raw event into a customer's state: the only place state changes.

Pure and deterministic: the result depends on the state and the event alone (event
time, never the wall clock), so replaying the same log gives the same states.
"""

from __future__ import annotations

from lifecycle.stage import ladder_stage
from lifecycle.state import NOT_PAID, CustomerState, order_counts
from schemas import (
    AnyCustomerEvent,
    Contact,
    CustomerErased,
    Purchase,
    Refund,
    Visit,
)


def fold(state: CustomerState, event: AnyCustomerEvent) -> None:
    """Apply `event` to `state` in place."""
    state.events += 1
    at = event.occurred_at
    if state.first_event_at is None or at < state.first_event_at:
        state.first_event_at = at
    # A late event (earlier than the latest) counts, but never moves time backwards.
    if state.last_event_at is None or at > state.last_event_at:
        state.last_event_at = at
    kind = type(event)
    if kind is Purchase:
        _purchase(state, event)
    elif kind is Refund:
        _refund(state, event)
    elif kind is Visit or (kind is Contact and event.direction == "inbound"):
        state.showed_intent = True
    elif kind is CustomerErased:
        state.erased = True
    state.stage = ladder_stage(state)


def _purchase(state: CustomerState, event: Purchase) -> None:
    paid, refunded = state.orders.get(event.order_id, (NOT_PAID, 0))
    _settle(state, event.order_id, max(paid, 0) + event.amount_minor, refunded)


def _refund(state: CustomerState, event: Refund) -> None:
    # A refund may arrive before its purchase (late events): it is kept, and nets out.
    paid, refunded = state.orders.get(event.order_id, (NOT_PAID, 0))
    _settle(state, event.order_id, paid, refunded + event.amount_minor)


def _settle(state: CustomerState, order_id: str, paid: int, refunded: int) -> None:
    before = order_counts(*state.orders.get(order_id, (NOT_PAID, 0)))
    state.orders[order_id] = (paid, refunded)
    state.purchases += order_counts(paid, refunded) - before
