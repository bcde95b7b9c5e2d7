"""The policy's numbers as the rules read them: in seconds and minor units, typed.

A rule reads a threshold on every decision; read from the policy, each is two
attribute lookups on frozen Structs and a multiplication by `DAY`. `RuleSettings` is
built once per engine from the `Policy` (which stays the one place the thresholds are
set, and what lifecycle events cite) and compiled it is a C struct (rule_settings.pxd),
so a rule reads a threshold as a C load.
"""

from __future__ import annotations

from lifecycle.policy import Policy
from lifecycle.state import DAY


class RuleSettings:
    """What the rules read of `policy`; days as seconds (`*_window` and the like)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._stage(policy)
        self._activity(policy)
        self._attitude(policy)
        self._tier(policy)
        self._value(policy)
        self.occasion = policy.stage.occasion_days * DAY
        self.purchase_window = max(policy.stage.loyal_window_days, policy.loyalty.window_days) * DAY

    def _stage(self, policy: Policy) -> None:
        p = policy.stage
        self.loyal_min_purchases = p.loyal_min_purchases
        self.loyal_window = p.loyal_window_days * DAY
        self.advocate_window = p.advocate_window_days * DAY
        self.advocate_min_nps = p.advocate_min_nps
        self.high_repeat_purchases = policy.loyalty.high_repeat_purchases
        self.loyalty_window = policy.loyalty.window_days * DAY

    def _activity(self, policy: Policy) -> None:
        p = policy.activity
        self.rhythm_min_purchases = p.rhythm_min_purchases
        self.rhythm_purchases_kept = p.rhythm_purchases_kept
        self.rhythm_floor = p.rhythm_floor_days * DAY
        self.drowsy_gaps, self.half_asleep_gaps, self.dormant_gaps = p.drowsy_gaps, p.half_asleep_gaps, p.dormant_gaps
        self.drowsy, self.half_asleep = p.drowsy_days * DAY, p.half_asleep_days * DAY
        self.dormant, self.churned = p.dormant_days * DAY, p.churned_days * DAY

    def _attitude(self, policy: Policy) -> None:
        p = policy.attitude
        self.attitude_window = p.window_days * DAY
        self.promoter_nps, self.detractor_nps = p.promoter_nps, p.detractor_nps
        self.satisfied_csat, self.dissatisfied_csat = p.satisfied_csat, p.dissatisfied_csat

    def _tier(self, policy: Policy) -> None:
        p = policy.tier
        self.minor_units_per_point = p.minor_units_per_point
        self.review_every = p.review_every_days * DAY
        self.silver_points, self.gold_points, self.platinum_points = p.silver_points, p.gold_points, p.platinum_points

    def _value(self, policy: Policy) -> None:
        p = policy.value
        self.rates_to_base = dict(p.rates_to_base)
        self.value_window = p.window_days * DAY
        self.refund_window = p.refund_window_days * DAY
        self.acquisition_cost_minor = p.acquisition_cost_minor
        self.normal_band_min_minor, self.key_band_min_minor = p.normal_band_min_minor, p.key_band_min_minor
        self.high_margin_ratio = policy.relationship.high_margin_ratio
