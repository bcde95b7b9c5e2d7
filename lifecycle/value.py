# cython: annotation_typing=False
"""Customer value (docs/domain.md section 4) and the relationship level it calls for (section 5).

historical value: net revenue, or margin where given, in base-currency minor units;
current value: the same over the trailing window; lifetime value (CLV): a simple
discounted sum - the current yearly value repeated over the horizon, weighted by the
chance the customer is still buying (from their activity) and discounted at the
policy's yearly rate, less the acquisition cost. The value band (small, normal, key:
the value pyramid) comes from CLV; the relationship level to offer (Kotler's five) from
the band and the margin ratio.
"""

from __future__ import annotations

from lifecycle.policy import Policy
from lifecycle.rule_settings import RuleSettings
from lifecycle.state import CustomerState
from schemas.lifecycle_events import DIMENSION_VALUES

SMALL, NORMAL, KEY = DIMENSION_VALUES["value_band"]


def clv_factors(policy: Policy) -> dict[str, float]:
    """Per activity: the sum over the horizon of survival^y / (1 + rate)^y.

    Repeated products, not powers: basic float operations are exact to the bit on
    every IEEE-754 machine, so the same log gives the same CLV everywhere.
    """
    p = policy.value
    factors = {}
    for activity, survival in p.yearly_survival.items():
        weight, total = 1.0, 0.0
        for _ in range(p.horizon_years):
            weight = weight * survival / (1.0 + p.discount_rate)
            total += weight
        factors[activity] = total
    return factors


def clv_of(state: CustomerState, factor: float, rules: RuleSettings) -> int:
    """The current yearly value, repeated over the horizon with `factor` (see `clv_factors`)."""
    yearly = max(state.current_value_minor, 0) if state.purchases else 0
    return round(yearly * factor) - rules.acquisition_cost_minor


def value_band_of(clv_minor: int, rules: RuleSettings) -> tuple[str, str]:
    if clv_minor >= rules.key_band_min_minor:
        return _KEY
    if clv_minor >= rules.normal_band_min_minor:
        return _NORMAL
    return _SMALL


def relationship_level_of(state: CustomerState, band: str, rules: RuleSettings) -> tuple[str, str]:
    """Many low-margin customers: basic/reactive; few high-margin ones: partnership."""
    revenue = state.revenue_with_margin_minor
    high_margin = revenue > 0 and state.margin_minor >= revenue * rules.high_margin_ratio
    return _LEVELS[band][high_margin]


def next_value_change(state: CustomerState, now: int, rules: RuleSettings) -> int | None:
    """The next moment an entry leaves the value window."""
    if not state.ledger:
        return None
    return state.ledger[0].at + rules.value_window


_KEY, _NORMAL, _SMALL = (KEY, "value_band.key_clv"), (NORMAL, "value_band.normal_clv"), (SMALL, "value_band.small_clv")
# (level, rule) by band, then by high margin (False, True): made once, allocating nothing.
_LEVELS = {
    band: tuple((level, f"relationship_level.{band}_{margin}")
                for level, margin in ((low, "low_margin"), (high, "high_margin")))
    for band, low, high in ((KEY, "proactive", "partnership"), (NORMAL, "reactive", "accountable"),
                            (SMALL, "basic", "reactive"))
}
