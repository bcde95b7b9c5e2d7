"""Activity, the decline dimension (DOMAIN.md section 2): active ... churned.

Measured as the time since the last purchase against the customer's own usual gap
between purchases (their rhythm), with fixed thresholds for customers with too few
purchases to have one; churned after `churned_days` without a purchase whatever the
rhythm (the material's one-year rule). A customer who never bought is measured from
their last own activity (an inbound contact, a visit, ...).
"""

from __future__ import annotations

from lifecycle.policy import Policy
from lifecycle.state import DAY, CustomerState

ACTIVE, DROWSY, HALF_ASLEEP, DORMANT, CHURNED = "active", "drowsy", "half_asleep", "dormant", "churned"
ASLEEP = frozenset({DORMANT, CHURNED})
"""Where a purchase is a win-back (wake the sleepers, 激活和唤醒)."""


def reference_time(state: CustomerState) -> int:
    if state.purchase_times:
        return state.purchase_times[-1]
    return state.last_active_at or state.first_event_at or state.now


def thresholds(state: CustomerState, policy: Policy) -> tuple[tuple[int, int, int, int], str]:
    """Seconds of silence after which a customer is drowsy, half asleep, dormant, churned."""
    p = policy.activity
    churned = p.churned_days * DAY
    if state.usual_gap is None:
        fixed = (p.drowsy_days * DAY, p.half_asleep_days * DAY, p.dormant_days * DAY, churned)
        return fixed, "fixed_thresholds"
    gap = max(state.usual_gap, p.rhythm_floor_days * DAY)
    own = tuple(min(int(gap * multiple), churned) for multiple in (p.drowsy_gaps, p.half_asleep_gaps, p.dormant_gaps))
    return (*own, churned), "own_rhythm"


def activity_of(state: CustomerState, now: int, policy: Policy) -> tuple[str, str]:
    """(activity, rule) as of `now`."""
    elapsed = now - reference_time(state)
    (drowsy, half_asleep, dormant, churned), basis = thresholds(state, policy)
    if elapsed >= churned:
        return CHURNED, "activity.churned_after_no_purchase"
    for limit, level in ((dormant, DORMANT), (half_asleep, HALF_ASLEEP), (drowsy, DROWSY)):
        if elapsed >= limit:
            return level, f"activity.{level}_by_{basis}"
    return ACTIVE, "activity.active"


def next_activity_change(state: CustomerState, now: int, policy: Policy) -> int | None:
    """When the activity would next change if nothing happened, or None if never."""
    start = reference_time(state)
    for limit in thresholds(state, policy)[0]:
        if start + limit > now:
            return start + limit
    return None
