"""Loyalty (docs/domain.md section 3): the loyalty type, and the programme tier.

Type: attitude x repeat behaviour - true (positive attitude, high repeat), latent
(positive, low repeat), spurious (not positive, high repeat: at risk when a competitor
offers more), none; repeat behaviour counts purchase occasions. Tier (tiered programme, 梯度忠诚计划): points earned on purchases net
of refunds over the rolling window. Only members have a tier; it goes up as soon as the
points allow, and down only at a review, on each anniversary of joining.
"""

from __future__ import annotations

from lifecycle.attitude import POSITIVE
from lifecycle.policy import Policy
from lifecycle.stage import purchases_within
from lifecycle.state import CustomerState
from schemas.lifecycle_events import DIMENSION_VALUES

TIERS = DIMENSION_VALUES["loyalty_tier"]
_RANK = {tier: rank for rank, tier in enumerate(TIERS)}


def loyalty_type_of(state: CustomerState, now: int, attitude: str, policy: Policy) -> tuple[str, str]:
    needed = policy.loyalty.high_repeat_purchases
    high_repeat = purchases_within(state, now, policy.loyalty.window_days, policy, needed) >= needed
    high_attitude = attitude == POSITIVE
    if high_attitude and high_repeat:
        return "true", "loyalty_type.positive_attitude_high_repeat"
    if high_attitude:
        return "latent", "loyalty_type.positive_attitude_low_repeat"
    if high_repeat:
        return "spurious", "loyalty_type.high_repeat_without_positive_attitude"
    return "none", "loyalty_type.neither"


def earned_tier(points: int, policy: Policy) -> str:
    p = policy.tier
    for tier, needed in (("platinum", p.platinum_points), ("gold", p.gold_points), ("silver", p.silver_points)):
        if points >= needed:
            return tier
    return "none"


def tier_of(state: CustomerState, reviewing: bool, policy: Policy) -> tuple[str, str]:
    """(tier, rule): up at once, down only when `reviewing`; none outside the programme."""
    if not state.programmes:
        return "none", "loyalty_tier.not_a_member"
    earned = earned_tier(state.points, policy)
    if reviewing:
        return earned, "loyalty_tier.anniversary_review"
    if _RANK[earned] > _RANK[state.loyalty_tier]:
        return earned, "loyalty_tier.points_earned"
    return state.loyalty_tier, "loyalty_tier.kept_until_review"
