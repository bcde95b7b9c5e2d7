"""The reasons for a decision: the facts each rule read, and each rule in words.

When a dimension changes, the lifecycle event that says so carries the facts its rule
read at that moment (`facts`: for example 4 purchases in the 365-day window, 200 days
silent against a 120-day dormancy threshold), so an auditor sees why without replaying,
and the hash chain covers the reasons too. The facts are computed by the same helpers
the rules use. `RULES` gives every rule id in words; the rules reference
(docs/rules.md) names each id, and a test keeps the two in step.
"""

from __future__ import annotations

from lifecycle.activity import Limits
from lifecycle.loyalty import earned_tier
from lifecycle.rule_settings import RuleSettings
from lifecycle.stage import purchases_within
from lifecycle.state import DAY, CustomerState

Facts = dict[str, int | str | bool | None]


def _days(seconds: int | None) -> int | None:
    return None if seconds is None else seconds // DAY


def facts_read(
    dimension: str, state: CustomerState, rules: RuleSettings, limits: Limits, silent_since: int, band: str,
    reviewing: bool,
) -> Facts:
    """What the rule of `dimension` read, as of `state.now` (called as it decides)."""
    now, policy = state.now, rules.policy
    if dimension == "stage":
        return {
            "purchases": state.purchases,
            "purchase_occasions": state.purchase_occasions,
            "purchases_in_window": purchases_within(state, now, rules.loyal_window, rules),
            "window_days": policy.stage.loyal_window_days,
            "open_complaints": len(state.open_complaints),
            "attitude": state.attitude,
            "member": bool(state.programmes),
            "days_since_referral": _days(now - state.referral_times[-1]) if state.referral_times else None,
            "latest_nps": state.latest_nps,
            "showed_intent": state.showed_intent,
        }
    if dimension == "activity":
        (drowsy, half_asleep, dormant, churned), basis = limits
        return {
            "days_silent": _days(now - silent_since),
            "usual_gap_days": _days(state.usual_gap),
            "basis": basis,
            "drowsy_after_days": _days(drowsy),
            "half_asleep_after_days": _days(half_asleep),
            "dormant_after_days": _days(dormant),
            "churned_after_days": _days(churned),
        }
    if dimension == "loyalty_type":
        return {
            "attitude": state.attitude,
            "purchases_in_window": purchases_within(state, now, rules.loyalty_window, rules),
            "window_days": policy.loyalty.window_days,
        }
    if dimension == "loyalty_tier":
        return {
            "points": state.points,
            "earned_tier": earned_tier(state.points, rules),
            "member": bool(state.programmes),
            "review": reviewing,
        }
    if dimension == "value_band":
        return {"clv_minor": state.clv_minor, "current_value_minor": state.current_value_minor}
    return {
        "value_band": band,
        "margin_minor": state.margin_minor,
        "revenue_with_margin_minor": state.revenue_with_margin_minor,
    }


POLICY_SECTIONS: dict[str, tuple[str, ...]] = {
    "stage": ("stage", "attitude"),
    "activity": ("activity",),
    "loyalty_type": ("loyalty", "attitude"),
    "loyalty_tier": ("tier",),
    "value_band": ("value",),
    "relationship_level": ("relationship", "value"),
}
"""The policy sections whose thresholds each dimension's rules apply."""

_LEVEL = "silent for at least the {level} threshold, measured against {basis}"
_BASIS = {"own_rhythm": "the customer's own rhythm (usual gap between purchases)",
          "fixed_thresholds": "the fixed thresholds (too few purchases for a rhythm)"}

RULES: dict[str, str] = {
    "stage.prospect": "known, nothing more: no purchase and no sign of intent",
    "stage.qualified_by_intent": "showed intent (an inbound contact or a visit) but bought nothing yet",
    "stage.first_purchase": "one purchase that was not fully refunded",
    "stage.repeat_purchases": "two or more purchases, but not loyal (too few in the window, an open "
                              "complaint, or a negative attitude)",
    "stage.loyal_regular_purchases": "at least loyal_min_purchases purchases within loyal_window_days, "
                                     "no open complaint, attitude not negative",
    "stage.member_enrolled_while_loyal": "loyal, and enrolled in a loyalty programme",
    "stage.advocate_referral_or_promoter": "loyal, and a referral within advocate_window_days or a latest "
                                           "NPS of at least advocate_min_nps",
    "activity.active": "silent for less than the drowsy threshold",
    "activity.churned_after_no_purchase": "no purchase for churned_days, whatever the rhythm",
    "activity.win_back": "a purchase from a dormant or churned customer: won back",
    **{
        f"activity.{level}_by_{basis}": _LEVEL.format(level=level.replace("_", " "), basis=words)
        for level in ("drowsy", "half_asleep", "dormant")
        for basis, words in _BASIS.items()
    },
    "loyalty_type.positive_attitude_high_repeat": "true loyalty: positive attitude and high repeat purchasing",
    "loyalty_type.positive_attitude_low_repeat": "latent loyalty: positive attitude, low repeat purchasing",
    "loyalty_type.high_repeat_without_positive_attitude": "spurious loyalty: high repeat purchasing without "
                                                          "a positive attitude",
    "loyalty_type.neither": "no loyalty: neither a positive attitude nor high repeat purchasing",
    "loyalty_tier.not_a_member": "not enrolled in a programme: no tier",
    "loyalty_tier.points_earned": "the points in the rolling window reached a higher tier: up at once",
    "loyalty_tier.anniversary_review": "the yearly review on the anniversary of joining: the tier the points "
                                       "earn, up or down",
    "loyalty_tier.kept_until_review": "fewer points than the tier needs: kept until the next review",
    "value_band.key_clv": "lifetime value (CLV) at least key_band_min_minor",
    "value_band.normal_clv": "lifetime value (CLV) at least normal_band_min_minor, below the key band",
    "value_band.small_clv": "lifetime value (CLV) below normal_band_min_minor",
    **{
        f"relationship_level.{band}_{margin}": f"{band} value band, {margin.replace('_', ' ')} "
                                                "(margin at least high_margin_ratio of revenue or not)"
        for band in ("key", "normal", "small")
        for margin in ("high_margin", "low_margin")
    },
}


def rule_in_words(rule: str) -> str:
    return RULES.get(rule, "a rule this version of the engine does not know (made by another version)")
