# cython: annotation_typing=False
"""The lifecycle engine: from a customer's events to the lifecycle events they cause.

Two kinds of cause change a customer's dimensions:

- **time alone**: decline, a window ending, a tier review. Each customer's state names
  the next moment (a *deadline*) at which time alone could change a dimension; when
  time passes it, the customer is decided again *at that moment*, whatever record
  revealed that time had passed (a clock, the customer's own next event), and the
  change is a lifecycle event dated at the deadline with no causing event. So a
  customer declines at the same moments whether clocks come hourly, nightly, in steps
  or not at all, live or replayed, and its id does not depend on which record noticed;
- **the customer's own event**: its facts are folded in and every dimension decided
  again, as of the event's time; each dimension that changed is one lifecycle event
  caused by it, carrying the net change. A `clock` event only moves time.

Time is event time: never the wall clock, so a replay decides exactly the same. Late
events (earlier than the customer's latest time) are folded in at their own time but
never move the customer's time backwards: dimensions are decided as of the latest
time, and the lifecycle event carries the late event's time as `occurred_at`.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime

import msgspec

from lifecycle.activity import ACTIVE, ASLEEP, Limits, activity_of, next_activity_change, reference_time, thresholds
from lifecycle.attitude import attitude_of, next_attitude_change
from lifecycle.facts import NEW_PURCHASE, apply_facts, check_bounds, drop_unrefundable, expire
from lifecycle.loyalty import loyalty_type_of, tier_of
from lifecycle.policy import Policy
from lifecycle.reasons import Facts, facts_read
from lifecycle.rule_settings import RuleSettings
from lifecycle.stage import next_referral_end, next_window_end, stage_of
from lifecycle.state import CustomerState, as_datetime, epoch_seconds
from lifecycle.value import clv_factors, clv_of, next_value_change, relationship_level_of, value_band_of
from schemas import Clock, Purchase, encode_event
from schemas.chain import record_hash
from schemas.events import AnyCustomerEvent
from schemas.lifecycle_events import EVENT_FOR_DIMENSION, Dimension, LifecycleEvent

LIFECYCLE_NAMESPACE = uuid.UUID("5b0e7d1c-3f3a-4c55-9a57-1c6b0f4e2a10")
"""Fixed forever: lifecycle event ids are uuid5 names under it."""

Cause = tuple[uuid.UUID | None, datetime]
"""What caused a decision: an event's id (None: time alone) and the moment."""

TIME_CAUSE = "time"
"""The cause part of the id of a change time alone brought: no record caused it."""


class LifecycleEngine:
    """Applies the policy's rules to customers' events; holds no customer's state (only
    `booked`: what the latest event added to its customer's value, and `payloads`: the
    log bytes of the lifecycle events the latest call returned)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.rules = RuleSettings(policy)
        self._clv_factors = clv_factors(policy)
        self._limits: dict[int | None, Limits] = {}
        self.booked: tuple[int, int] | None = None
        self.payloads: list[bytes] = []
        """The record of each lifecycle event the latest `on_event` or `on_clock` returned,
        in order: the bytes its successor's `previous_hash` chains, for the log as they are
        (encoded once)."""

    def on_event(self, state: CustomerState, event: AnyCustomerEvent, at: int | None = None) -> list[LifecycleEvent]:
        """Fold one customer event into `state`; return the lifecycle events it causes.

        `at` is the event's time in epoch seconds, if the caller has it already. Raises
        `FactOutOfRange`, with `state` unchanged, for an event the customer's totals
        cannot take. Afterwards `booked` holds what the event added to the customer's
        historical value and revenue, or None if it was not taken (a repeat).
        """
        money = check_bounds(state, event, self.rules)
        self.booked = None
        self.payloads = []
        if self._seen(state, event):
            return []
        if at is None:
            at = epoch_seconds(event.occurred_at)
        out: list[LifecycleEvent] = []
        # Deadlines before the event are time's own changes; one at the event's very
        # moment is decided with the event, so that one moment gives one change.
        passed = self._pass_deadlines(state, at - 1, out)
        due = self._advance(state, at)
        if passed or due:
            drop_unrefundable(state, self.rules)
        asleep = type(event) is Purchase and self._asleep_at(state, at)
        value, revenue = state.historical_value_minor, state.historical_revenue_minor
        folded = apply_facts(state, event, at, self.rules, money)
        self.booked = (state.historical_value_minor - value, state.historical_revenue_minor - revenue)
        if folded or due:
            reviewing = due and self._review(state)
            self._decide(state, (event.event_id, event.occurred_at), out, reviewing, folded == NEW_PURCHASE and asleep)
        return out

    def on_clock(self, state: CustomerState, clock: Clock) -> list[LifecycleEvent]:
        """Move the customer's time to the clock's; return what time alone changed."""
        out: list[LifecycleEvent] = []
        self.payloads = []
        if self._pass_deadlines(state, epoch_seconds(clock.occurred_at), out):
            drop_unrefundable(state, self.rules)
        return out

    def _seen(self, state: CustomerState, event: AnyCustomerEvent) -> bool:
        """Is this a repeat of one of the customer's latest events (same event id)?"""
        # The id's low 64 bits: plain ints, cheap to compare and to store (msgpack takes
        # at most 64 bits); two of a customer's latest events will not share them.
        key = event.event_id.int & _LOW_64_BITS
        recent = state.recent_event_ids
        if key in recent:
            state.duplicates_ignored += 1
            return True
        recent.append(key)
        if len(recent) > _RECENT_EVENT_IDS:
            del recent[0]
        return False

    def _asleep_at(self, state: CustomerState, at: int) -> bool:
        """Was the customer dormant or churned at `at` (a win-back if they buy then)?

        Asked at the purchase's own time: a late purchase from before the customer fell
        asleep is no win-back, even if they are asleep by now.
        """
        if state.activity not in ASLEEP:
            return False
        return activity_of(at - reference_time(state), self._limits_of(state.usual_gap))[0] in ASLEEP

    def _limits_of(self, usual_gap: int | None) -> Limits:
        limits = self._limits.get(usual_gap)
        if limits is None:
            # Gaps are in seconds, so nearly every customer has their own: keep it bounded.
            if len(self._limits) >= _LIMITS_CACHED:
                self._limits.clear()
            limits = self._limits[usual_gap] = thresholds(usual_gap, self.rules)
        return limits

    def _pass_deadlines(self, state: CustomerState, until: int, out: list[LifecycleEvent]) -> bool:
        """Move time forward to `until`, deciding the customer again at each deadline on
        the way, at the deadline's own moment (before a deadline nothing can change);
        whether one was passed."""
        passed = False
        while state.next_deadline is not None and state.now < state.next_deadline <= until:
            deadline = state.next_deadline
            state.now = deadline
            expire(state, self.rules)
            self._decide(state, (None, as_datetime(deadline)), out, self._review(state), False)
            passed = True
        if until > state.now:
            state.now = until
        return passed

    def _advance(self, state: CustomerState, at: int) -> bool:
        """Move time to `at`; whether a deadline falls at that very moment."""
        if at <= state.now:
            return False
        state.now = at
        if state.next_deadline is None or state.next_deadline > at:
            return False
        expire(state, self.rules)
        return True

    def _review(self, state: CustomerState) -> bool:
        """Whether a tier review is due now; if so, the next one is set."""
        if state.next_review_at is None or state.next_review_at > state.now:
            return False
        while state.next_review_at <= state.now:
            state.next_review_at += self.rules.review_every
        return True

    def _decide(self, state: CustomerState, cause: Cause, out: list[LifecycleEvent], reviewing: bool,
                win_back: bool) -> None:
        rules, now = self.rules, state.now
        limits = self._limits_of(state.usual_gap)
        silent_since = reference_time(state)
        state.attitude = attitude_of(state, now, rules)
        activity = activity_of(now - silent_since, limits)
        if win_back and activity[0] == ACTIVE and state.activity in ASLEEP:
            activity = _WON_BACK
            state.win_backs += 1
        state.clv_minor = clv_of(state, self._clv_factors[activity[0]], rules)
        band = value_band_of(state.clv_minor, rules)
        decided = (
            stage_of(state, now, state.attitude, rules),
            activity,
            loyalty_type_of(state, now, state.attitude, rules),
            tier_of(state, reviewing, rules),
            band,
            relationship_level_of(state, band[0], rules),
        )
        before = (state.stage, state.activity, state.loyalty_type, state.loyalty_tier, state.value_band,
                  state.relationship_level)
        prefix = None
        for index in range(len(_DIMENSIONS)):
            value, rule = decided[index]
            if value != before[index]:
                if prefix is None:  # the cause's part of the ids, made once per decision
                    prefix = f"{TIME_CAUSE if cause[0] is None else uuid_text(cause[0])}/{state.customer_id}/"
                dimension = _DIMENSIONS[index]
                facts = facts_read(dimension, state, rules, limits, silent_since, band[0], reviewing)
                out.append(self._changed(state, dimension, before[index], value, rule, cause, prefix, facts))
        if prefix is not None:
            (state.stage, state.activity, state.loyalty_type, state.loyalty_tier, state.value_band,
             state.relationship_level) = (value for value, _ in decided)
        state.next_deadline = self._deadline(state, next_activity_change(silent_since, now, limits))

    def _changed(
        self, state: CustomerState, dimension: Dimension, before: str, after: str, rule: str, cause: Cause,
        prefix: str, facts: Facts,
    ) -> LifecycleEvent:
        state.sequence += 1
        cause_id, occurred_at = cause
        # The name is "<cause id>/<customer>/<sequence>/<dimension>/<new value>", fixed
        # forever; "time" stands for the cause id of a change time alone brought.
        name = f"{prefix}{state.sequence}/{dimension}/{after}"
        event = EVENT_FOR_DIMENSION[dimension](
            event_id=lifecycle_event_id(name),
            customer_id=state.customer_id,
            sequence=state.sequence,
            dimension=dimension,
            from_value=before,
            to_value=after,
            occurred_at=occurred_at,
            rule=rule,
            policy_version=self.policy.version,
            caused_by=[] if cause_id is None else [cause_id],
            facts=facts,
            previous_hash=state.chain_head,
            consents=dict(state.consents),  # a copy: the state goes on changing
        )
        # The bytes hashed are those the log holds.
        payload = encode_event(event)
        state.chain_head = record_hash(payload)
        self.payloads.append(payload)
        return event

    def _deadline(self, state: CustomerState, activity_change: int | None) -> int | None:
        """The next event time at which time alone could change a dimension."""
        rules, now = self.rules, state.now
        soonest = activity_change
        for at in (
            next_window_end(state, now, rules.loyal_window, rules),
            next_window_end(state, now, rules.loyalty_window, rules),
            next_referral_end(state, rules),
            next_attitude_change(state, now, rules),
            next_value_change(state, now, rules),
            state.next_review_at,
        ):
            if at is not None and at > now and (soonest is None or at < soonest):
                soonest = at
        return soonest


_DIMENSIONS: tuple[Dimension, ...] = (
    "stage", "activity", "loyalty_type", "loyalty_tier", "value_band", "relationship_level")
"""In the order a decision emits their changes; `_decide` reads and sets them in this order."""
_WON_BACK = (ACTIVE, "activity.win_back")
_LIMITS_CACHED = 65_536
# Racing producers write the same event close together; a few ids per customer catch that.
_RECENT_EVENT_IDS = 8
_LOW_64_BITS = (1 << 64) - 1
_NAMESPACE_SHA1 = hashlib.sha1(LIFECYCLE_NAMESPACE.bytes)
_VERSION_5 = (0x5000 << 64) | (0x8000 << 48)
_VERSION_MASK = ~((0xF000 << 64) | (0xC000 << 48))
_json = msgspec.json.Encoder().encode


def lifecycle_event_id(name: str) -> uuid.UUID:
    """`uuid.uuid5(LIFECYCLE_NAMESPACE, name)`, without `UUID.__init__`'s checks (a hot path).

    The same bits as the standard library's: a test compares the two.
    """
    hashing = _NAMESPACE_SHA1.copy()  # the namespace hashed once: a copy costs less than a new hash
    hashing.update(name.encode())
    digest = hashing.digest()
    value = (_from_bytes(digest[:16]) & _VERSION_MASK) | _VERSION_5
    made = _new(_UUID)
    _set(made, "int", value)
    _set(made, "is_safe", _SAFETY_UNKNOWN)
    return made


def uuid_text(value: uuid.UUID) -> str:
    """`str(value)`, written by msgspec's encoder in C (a hot path: compiled, 0.33 µs
    against 0.58 for formatting `value.int` here, and more for `UUID.__str__`)."""
    return _json(value)[1:-1].decode()


# Looked up once: each lifecycle event's id makes all of these calls.
_from_bytes, _new, _set = int.from_bytes, object.__new__, object.__setattr__
_UUID, _SAFETY_UNKNOWN = uuid.UUID, uuid.SafeUUID.unknown
