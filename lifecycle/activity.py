"""Activity, the decline dimension (docs/domain.md section 2): active ... churned.

Measured as the time since the last purchase against the customer's own usual gap
between purchases (their rhythm), with fixed thresholds for customers with too few
purchases to have one; churned after `churned_days` without a purchase whatever the
rhythm (the material's one-year rule). A customer who never bought is measured from
their last own activity (an inbound contact, a visit, ...). The rhythm is the usual
gap between purchase occasions (lifecycle/occasions.py).
"""

from __future__ import annotations

from lifecycle.policy import Policy
from lifecycle.state import DAY, CustomerState
from schemas.lifecycle_events import DIMENSION_VALUES

ACTIVE, DROWSY, HALF_ASLEEP, DORMANT, CHURNED = DIMENSION_VALUES["activity"]
ASLEEP = frozenset({DORMANT, CHURNED})
"""Where a purchase is a win-back (wake the sleepers, 激活和唤醒)."""


def reference_time(state: CustomerState) -> int:
    if state.purchase_times:
        return state.purchase_times[-1]
    return state.last_active_at or state.first_event_at or state.now


Limits = tuple[tuple[int, int, int, int], str]
"""Seconds of silence after which a customer is drowsy, half asleep, dormant, churned;
and what they are based on (the customer's own rhythm, or the fixed thresholds)."""


def thresholds(usual_gap: int | None, policy: Policy) -> Limits:
    p = policy.activity
    churned = p.churned_days * DAY
    if usual_gap is None:
        fixed = (p.drowsy_days * DAY, p.half_asleep_days * DAY, p.dormant_days * DAY, churned)
        return fixed, "fixed_thresholds"
    gap = max(usual_gap, p.rhythm_floor_days * DAY)
    drowsy, half_asleep, dormant = (
        min(int(gap * multiple), churned) for multiple in (p.drowsy_gaps, p.half_asleep_gaps, p.dormant_gaps)
    )
    return (drowsy, half_asleep, dormant, churned), "own_rhythm"


def activity_of(elapsed: int, limits: Limits) -> tuple[str, str]:
    """(activity, rule) after `elapsed` seconds of silence."""
    (drowsy, half_asleep, dormant, churned), basis = limits
    if elapsed < drowsy:
        return ACTIVE, "activity.active"
    if elapsed >= churned:
        return CHURNED, "activity.churned_after_no_purchase"
    level = DORMANT if elapsed >= dormant else HALF_ASLEEP if elapsed >= half_asleep else DROWSY
    return level, f"activity.{level}_by_{basis}"


def next_activity_change(start: int, now: int, limits: Limits) -> int | None:
    """When the activity would next change if nothing happened, or None if never."""
    for limit in limits[0]:
        if start + limit > now:
            return start + limit
    return None
