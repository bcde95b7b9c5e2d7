# cython: annotation_typing=False
"""Loyalty (docs/domain.md section 3): the loyalty type, and the programme tier.

Type: attitude x repeat behaviour - true (positive attitude, high repeat), latent
(positive, low repeat), spurious (not positive, high repeat: at risk when a competitor
offers more), none; repeat behaviour counts purchase occasions. Tier (tiered programme, 梯度忠诚计划): points earned on purchases net
of refunds over the rolling window. Only members have a tier; it goes up as soon as the
points allow, and down only at a review, on each anniversary of joining.
"""

from __future__ import annotations

from lifecycle.attitude import POSITIVE
from lifecycle.rule_settings import RuleSettings
from lifecycle.stage import purchases_within
from lifecycle.state import CustomerState
from schemas.lifecycle_events import DIMENSION_VALUES

TIERS = DIMENSION_VALUES["loyalty_tier"]
_RANK = {tier: rank for rank, tier in enumerate(TIERS)}


def loyalty_type_of(state: CustomerState, now: int, attitude: str, rules: RuleSettings) -> tuple[str, str]:
    needed = rules.high_repeat_purchases
    high_repeat = purchases_within(state, now, rules.loyalty_window, rules, needed) >= needed
    high_attitude = attitude == POSITIVE
    if high_attitude and high_repeat:
        return _TRUE
    if high_attitude:
        return _LATENT
    if high_repeat:
        return _SPURIOUS
    return _NEITHER


def earned_tier(points: int, rules: RuleSettings) -> str:
    if points >= rules.platinum_points:
        return "platinum"
    if points >= rules.gold_points:
        return "gold"
    return "silver" if points >= rules.silver_points else "none"


def tier_of(state: CustomerState, reviewing: bool, rules: RuleSettings) -> tuple[str, str]:
    """(tier, rule): up at once, down only when `reviewing`; none outside the programme."""
    if not state.programmes:
        return _NOT_A_MEMBER
    earned = earned_tier(state.points, rules)
    if reviewing:
        return earned, "loyalty_tier.anniversary_review"
    if _RANK[earned] > _RANK[state.loyalty_tier]:
        return earned, "loyalty_tier.points_earned"
    return state.loyalty_tier, "loyalty_tier.kept_until_review"


# (value, rule): made once, so a decision allocates nothing.
_TRUE = ("true", "loyalty_type.positive_attitude_high_repeat")
_LATENT = ("latent", "loyalty_type.positive_attitude_low_repeat")
_SPURIOUS = ("spurious", "loyalty_type.high_repeat_without_positive_attitude")
_NEITHER = ("none", "loyalty_type.neither")
_NOT_A_MEMBER = ("none", "loyalty_tier.not_a_member")
