# cython: annotation_typing=False
"""Activity, the decline dimension (docs/domain.md section 2): active ... churned.

Measured as the time since the last purchase against the customer's own usual gap
between purchases (their rhythm), with fixed thresholds for customers with too few
purchases to have one; churned after `churned_days` without a purchase whatever the
rhythm (the material's one-year rule). A customer who never bought is measured from
their last own activity (an inbound contact, a visit, ...). The rhythm is the usual
gap between purchase occasions (lifecycle/occasions.py).
"""

from __future__ import annotations

from lifecycle.rule_settings import RuleSettings
from lifecycle.state import CustomerState
from schemas.lifecycle_events import DIMENSION_VALUES

ACTIVE, DROWSY, HALF_ASLEEP, DORMANT, CHURNED = DIMENSION_VALUES["activity"]
ASLEEP = frozenset({DORMANT, CHURNED})
"""Where a purchase is a win-back (wake the sleepers, 激活和唤醒)."""


def reference_time(state: CustomerState) -> int:
    """The moment the customer's silence is measured from."""
    if state.purchase_times:
        return state.purchase_times[-1]
    if state.last_active_at:
        return state.last_active_at
    if state.first_event_at:
        return state.first_event_at
    return state.now


Limits = tuple[tuple[int, int, int, int], str]
"""Seconds of silence after which a customer is drowsy, half asleep, dormant, churned;
and what they are based on (the customer's own rhythm, or the fixed thresholds)."""


def thresholds(usual_gap: int | None, rules: RuleSettings) -> Limits:
    churned = rules.churned
    if usual_gap is None:
        return (rules.drowsy, rules.half_asleep, rules.dormant, churned), _FIXED
    gap = max(usual_gap, rules.rhythm_floor)
    drowsy = min(int(gap * rules.drowsy_gaps), churned)
    half_asleep = min(int(gap * rules.half_asleep_gaps), churned)
    dormant = min(int(gap * rules.dormant_gaps), churned)
    return (drowsy, half_asleep, dormant, churned), _OWN


def activity_of(elapsed: int, limits: Limits) -> tuple[str, str]:
    """(activity, rule) after `elapsed` seconds of silence."""
    (drowsy, half_asleep, dormant, churned), basis = limits
    if elapsed < drowsy:
        return _ACTIVE
    if elapsed >= churned:
        return _CHURNED
    level = 2 if elapsed >= dormant else 1 if elapsed >= half_asleep else 0
    return _DECLINE[basis][level]


def next_activity_change(start: int, now: int, limits: Limits) -> int | None:
    """When the activity would next change if nothing happened, or None if never."""
    for limit in limits[0]:
        if start + limit > now:
            return start + limit
    return None


_FIXED, _OWN = "fixed_thresholds", "own_rhythm"
_ACTIVE = (ACTIVE, "activity.active")
_CHURNED = (CHURNED, "activity.churned_after_no_purchase")
# (activity, rule) of each decline level by basis, made once: a decision allocates nothing.
_DECLINE = {basis: [(level, f"activity.{level}_by_{basis}") for level in (DROWSY, HALF_ASLEEP, DORMANT)]
            for basis in (_FIXED, _OWN)}
