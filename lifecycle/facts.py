# cython: annotation_typing=False
"""Folding one raw event into a customer's facts: what the event says, nothing decided.

Each event is applied at its own event time, so a late event (earlier than the
customer's latest) lands where it belongs: a late purchase counts in the windows that
contain it, a late survey answer does not replace a newer one. Decisions about stage,
activity and so on are taken afterwards, from the facts (see `lifecycle.engine`).
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections.abc import Callable
from typing import Any

from lifecycle import occasions
from lifecycle.errors import FactOutOfRange
from lifecycle.rule_settings import RuleSettings
from lifecycle.state import MAX_SOURCES, NOT_PAID, CustomerState, Entry, Order
from schemas import (
    ComplaintFiled,
    ComplaintResolved,
    ConsentChanged,
    Contact,
    CustomerErased,
    MembershipJoined,
    MembershipLeft,
    Purchase,
    ReferralMade,
    Refund,
    SurveyAnswered,
    Visit,
)
from schemas.events import AnyCustomerEvent


MAX_TOTAL_MINOR = 2**53
"""Per customer, money totals stay within this, in minor units: integers well inside
64 bits (the projections' BIGINT), and exact as floats (CLV is computed in floats)."""

UNCHANGED, CHANGED, NEW_PURCHASE = 0, 1, 3
"""What folding an event did: nothing the decisions read; facts they read; and a new
purchase (which also changed facts). A bit mask: `NEW_PURCHASE & CHANGED` is true."""


def apply_facts(state: CustomerState, event: AnyCustomerEvent, at: int, rules: RuleSettings,
                money: tuple[int, int] | None = None) -> int:
    """Fold `event` (at `at`, epoch seconds) into `state`; return UNCHANGED, CHANGED or NEW_PURCHASE.

    `money`: the event's `priced` (revenue, value), if the caller has it already.
    """
    state.events += 1
    # The first event always decides (it sets the first deadline); an earlier first
    # event moves where a customer with no activity yet is measured from.
    changed = CHANGED if state.first_event_at is None or at < state.first_event_at else UNCHANGED
    if changed:
        state.first_event_at = at
    if state.last_event_at is None or at > state.last_event_at:
        state.last_event_at = at
    sources = state.sources
    if event.source not in sources and len(sources) < MAX_SOURCES:
        sources.append(event.source)
    kind = type(event)
    if kind is Purchase:  # half of all events: called directly
        return changed | _purchase(state, event, at, rules, priced(event, rules) if money is None else money)
    handler = _HANDLERS.get(kind)
    return changed if handler is None else changed | handler(state, event, at, rules)


def check_bounds(state: CustomerState, event: AnyCustomerEvent, rules: RuleSettings) -> tuple[int, int] | None:
    """Raise `FactOutOfRange` if folding `event` could take one of the customer's money
    totals beyond `MAX_TOTAL_MINOR`; changes nothing, so a refused event leaves the
    customer as before it. Conservative: each total is checked with the event's whole
    amount, value or revenue added. Returns the event's `priced` (None if it moves no
    money), for `apply_facts`."""
    kind = type(event)
    if kind is not Purchase and kind is not Refund:
        return None
    money = priced(event, rules)
    revenue, value = money
    step = max(event.amount_minor, abs(revenue), abs(value))
    # Spelled out rather than max(map(abs, totals)): compiled, these are C comparisons.
    largest = max(abs(state.historical_value_minor), abs(state.historical_revenue_minor),
                  abs(state.current_value_minor), abs(state.points), abs(state.margin_minor),
                  abs(state.revenue_with_margin_minor))
    order = state.orders.get(event.order_id)
    if order is not None:
        largest = max(largest, abs(order.paid), abs(order.refunded), abs(order.value), abs(order.revenue))
    if largest + step > MAX_TOTAL_MINOR:
        msg = (
            f"folding it would take one of the customer's money totals to {largest + step:,} minor "
            f"units, beyond the {MAX_TOTAL_MINOR:,} kept exactly: the event is refused, and the "
            "customer stays as before it"
        )
        raise FactOutOfRange(msg)
    return money


def priced(event: Purchase | Refund, rules: RuleSettings) -> tuple[int, int]:
    """(revenue, value) of the event in base-currency minor units; 0 without a rate."""
    rate = rules.rates_to_base.get(event.currency, 0.0)
    revenue = round(event.amount_minor * rate)
    margin = event.margin_minor if type(event) is Purchase else None
    return revenue, revenue if margin is None else round(margin * rate)


def _active(state: CustomerState, at: int) -> None:
    if state.last_active_at is None or at > state.last_active_at:
        state.last_active_at = at


def _purchase(state: CustomerState, event: Purchase, at: int, rules: RuleSettings, money: tuple[int, int]) -> int:
    _active(state, at)
    if event.currency not in rules.rates_to_base:
        state.unpriced_purchases += 1
    revenue, value = money
    if event.margin_minor is not None:
        state.revenue_with_margin_minor += revenue
        state.margin_minor += value
    order = _held(state, event.order_id, rules)
    before = order is not None and order.counts
    if order is None:
        order = state.orders[event.order_id] = Order(event.amount_minor, 0, value, revenue, at)
        refunded_share = 0
    else:
        # Refunds that came before their purchase (late events) net out now.
        paid_before = max(order.paid, 0)
        refunded_share = min(order.refunded - min(order.refunded, paid_before), event.amount_minor)
        order.paid = paid_before + event.amount_minor
        order.value += value
        order.revenue += revenue
        order.at = at if order.at is None else order.at
    value_in = value - value * refunded_share // max(event.amount_minor, 1)
    revenue_in = revenue - revenue * refunded_share // max(event.amount_minor, 1)
    _book(state, at, value_in, revenue_in, rules)
    if order.counts and not before:
        _count_purchase(state, event.order_id, at, rules)
        return NEW_PURCHASE
    return CHANGED


def _refund(state: CustomerState, event: Refund, at: int, rules: RuleSettings) -> int:
    _active(state, at)
    order = _held(state, event.order_id, rules)
    if order is None:
        # Held for its purchase, which may still come (a late event), as long as an order is.
        state.orders[event.order_id] = Order(NOT_PAID, event.amount_minor, 0, 0, None, at)
        return CHANGED
    before = order.counts
    refundable = max(order.paid - order.refunded, 0) if order.paid != NOT_PAID else 0
    share = min(event.amount_minor, refundable)
    order.refunded += event.amount_minor
    if share and order.paid > 0:
        # A refund counts where its purchase counted: a purchase that has left the
        # window took its value with it, so its refund lowers only the history.
        when = at if order.at is None or order.at > state.now - rules.value_window else None
        _book(state, when, -(order.value * share // order.paid), -(order.revenue * share // order.paid), rules)
    if before and not order.counts:
        _uncount_purchase(state, event.order_id, rules)
    return CHANGED


def _held(state: CustomerState, order_id: str, rules: RuleSettings) -> Order | None:
    """The order, if it is still held for refunds as of the customer's time.

    Orders are held `refund_window_days` from their payment (or a refund waiting for its
    purchase, from the refund), as of the customer's time, which only moves forward: an
    order this drops can never match again, so `expire` dropping it earlier or later
    changes nothing.
    """
    order = state.orders.get(order_id)
    if order is None:
        return None
    since = order.held_since()
    if since is not None and since <= state.now - rules.refund_window:
        del state.orders[order_id]
        return None
    return order


def _book(state: CustomerState, at: int | None, value: int, revenue: int, rules: RuleSettings) -> None:
    """Add value and revenue to the history, and with the points the revenue earns to
    the rolling window if `at` lies inside it (None: history only)."""
    state.historical_value_minor += value
    state.historical_revenue_minor += revenue
    per_point = rules.minor_units_per_point
    points = revenue // per_point if revenue >= 0 else -((-revenue) // per_point)
    if at is not None and at > state.now - rules.value_window:
        ledger, entry = state.ledger, Entry(at, value, points)
        if not ledger or ledger[-1].at <= at:  # in order, nearly always: where insort puts it
            ledger.append(entry)
        else:
            insort(ledger, entry, key=_entry_time)
        state.current_value_minor += value
        state.points += points


def _entry_time(entry: Entry) -> int:
    return entry.at


def _count_purchase(state: CustomerState, order_id: str, at: int, rules: RuleSettings) -> None:
    state.purchases += 1
    times = state.purchase_times
    index = bisect_right(times, at)
    if not occasions.shares_occasion(times, index, at, rules.occasion):
        state.purchase_occasions += 1
    times.insert(index, at)
    state.purchase_orders.insert(index, order_id)
    state.usual_gap = usual_gap(times, rules)


def _uncount_purchase(state: CustomerState, order_id: str, rules: RuleSettings) -> None:
    state.purchases -= 1
    times = state.purchase_times
    if order_id in state.purchase_orders:
        index = state.purchase_orders.index(order_id)
        at = times.pop(index)
        del state.purchase_orders[index]
        if not occasions.shares_occasion(times, index, at, rules.occasion):
            state.purchase_occasions -= 1
        state.usual_gap = usual_gap(times, rules)
    else:
        # Its date has left the kept purchases (older than the windows): taken as an
        # occasion of its own.
        state.purchase_occasions -= 1
    # A purchase is an occasion, and there are no more occasions than purchases.
    state.purchase_occasions = max(min(state.purchase_occasions, state.purchases), min(state.purchases, 1))


def usual_gap(times: list[int], rules: RuleSettings) -> int | None:
    """The customer's own rhythm: the median gap between recent purchase occasions, if enough."""
    recent = occasions.recent_starts(times, rules.rhythm_purchases_kept, rules.occasion)
    if len(recent) < rules.rhythm_min_purchases:
        return None
    gaps = [later - earlier for earlier, later in zip(recent, recent[1:])]
    gaps.sort()
    return gaps[(len(gaps) - 1) // 2]


def _complaint_filed(state: CustomerState, event: ComplaintFiled, at: int, rules: RuleSettings) -> int:
    _active(state, at)
    complaint = event.complaint_id
    if complaint in state.open_complaints or complaint in state.closed_complaints:
        return UNCHANGED
    state.complaints_filed += 1
    early = state.early_resolutions.pop(complaint, None)
    if early is None:
        state.open_complaints[complaint] = at
    else:
        # Its resolution came first (a late event): the complaint closes as it opens.
        _close(state, complaint, at, *early)
    return CHANGED


def _complaint_resolved(state: CustomerState, event: ComplaintResolved, at: int, rules: RuleSettings) -> int:
    complaint = event.complaint_id
    if complaint in state.closed_complaints or complaint in state.early_resolutions:
        return UNCHANGED
    filed_at = state.open_complaints.pop(complaint, None)
    if filed_at is None:
        # A resolution of a complaint not filed (yet: a late event may bring it) counts
        # for nothing until it is: service recovery needs a failure to recover from.
        state.early_resolutions[complaint] = (at, event.satisfied)
        return UNCHANGED
    _close(state, complaint, filed_at, at, event.satisfied)
    return CHANGED


def _close(state: CustomerState, complaint: str, filed_at: int, resolved_at: int, satisfied: bool) -> None:
    state.closed_complaints.append(complaint)
    state.complaints_resolved += 1
    state.resolve_seconds_total += max(resolved_at - filed_at, 0)
    state.recoveries_satisfied += satisfied
    if state.last_recovery_at is None or resolved_at >= state.last_recovery_at:
        state.last_recovery_at = resolved_at
        state.last_recovery_satisfied = satisfied


def _survey(state: CustomerState, event: SurveyAnswered, at: int, rules: RuleSettings) -> int:
    _active(state, at)
    if event.nps is not None and (state.latest_nps_at is None or at >= state.latest_nps_at):
        state.latest_nps, state.latest_nps_at = event.nps, at
    if event.csat is not None and (state.latest_csat_at is None or at >= state.latest_csat_at):
        state.latest_csat, state.latest_csat_at = event.csat, at
    return CHANGED


def _intent(state: CustomerState, event: Contact | Visit, at: int, rules: RuleSettings) -> int:
    if type(event) is Contact and event.direction != "inbound":
        return UNCHANGED
    _active(state, at)
    # Once a customer has bought, intent no longer decides anything (activity runs on purchases).
    if state.showed_intent and state.purchases:
        return UNCHANGED
    state.showed_intent = True
    return CHANGED


def _joined(state: CustomerState, event: MembershipJoined, at: int, rules: RuleSettings) -> int:
    _active(state, at)
    if event.programme not in state.programmes:
        state.programmes.append(event.programme)
    if state.member_since is None:
        state.member_since = at
        state.next_review_at = at + rules.review_every
    return CHANGED


def _left(state: CustomerState, event: MembershipLeft, at: int, rules: RuleSettings) -> int:
    if event.programme in state.programmes:
        state.programmes.remove(event.programme)
    if not state.programmes:
        state.member_since = state.next_review_at = None
    return CHANGED


def _referral(state: CustomerState, event: ReferralMade, at: int, rules: RuleSettings) -> int:
    _active(state, at)
    insort(state.referral_times, at)
    return CHANGED


def _consent(state: CustomerState, event: ConsentChanged, at: int, rules: RuleSettings) -> int:
    consents = state.consents
    new = event.purpose not in consents
    consents[event.purpose] = event.granted
    if new:  # kept in purpose order, so every lifecycle event copies it as it is
        state.consents = dict(sorted(consents.items()))
    return UNCHANGED


def _erased(state: CustomerState, event: CustomerErased, at: int, rules: RuleSettings) -> int:
    state.erased = True
    return UNCHANGED


_HANDLERS: dict[type, Callable[[CustomerState, Any, int, RuleSettings], int]] = {
    Refund: _refund,
    ComplaintFiled: _complaint_filed,
    ComplaintResolved: _complaint_resolved,
    SurveyAnswered: _survey,
    Contact: _intent,
    Visit: _intent,
    MembershipJoined: _joined,
    MembershipLeft: _left,
    ReferralMade: _referral,
    ConsentChanged: _consent,
    CustomerErased: _erased,
}


def expire(state: CustomerState, rules: RuleSettings) -> None:
    """Drop what has left the rolling windows as of `state.now`."""
    value_since = state.now - rules.value_window
    ledger = state.ledger
    gone = 0
    while gone < len(ledger) and ledger[gone].at <= value_since:
        state.current_value_minor -= ledger[gone].value
        state.points -= ledger[gone].points
        gone += 1
    if gone:
        del ledger[:gone]
    keep_since = state.now - rules.purchase_window
    times, period = state.purchase_times, rules.occasion
    drop = min(bisect_right(times, keep_since),
               occasions.start_of_latest(times, rules.rhythm_purchases_kept, period))
    drop = occasions.whole(times, drop, period)
    if drop:
        del state.purchase_times[:drop]
        del state.purchase_orders[:drop]
    referrals = bisect_right(state.referral_times, state.now - rules.advocate_window)
    if referrals:
        del state.referral_times[:referrals]


def drop_unrefundable(state: CustomerState, rules: RuleSettings) -> None:
    """Drop the orders no refund can match any more as of `state.now` (memory only: a
    refund never matches them, whether they are here or not; see `_held`)."""
    refundable_since = state.now - rules.refund_window
    stale = [order_id for order_id, order in state.orders.items()
             if (since := order.held_since()) is not None and since <= refundable_since]
    for order_id in stale:
        del state.orders[order_id]
