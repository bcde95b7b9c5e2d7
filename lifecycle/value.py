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
from lifecycle.state import DAY, CustomerState
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


def clv_of(state: CustomerState, factor: float, policy: Policy) -> int:
    """The current yearly value, repeated over the horizon with `factor` (see `clv_factors`)."""
    yearly = max(state.current_value_minor, 0) if state.purchases else 0
    return round(yearly * factor) - policy.value.acquisition_cost_minor


def value_band_of(clv_minor: int, policy: Policy) -> tuple[str, str]:
    p = policy.value
    if clv_minor >= p.key_band_min_minor:
        return KEY, "value_band.key_clv"
    if clv_minor >= p.normal_band_min_minor:
        return NORMAL, "value_band.normal_clv"
    return SMALL, "value_band.small_clv"


def relationship_level_of(state: CustomerState, band: str, policy: Policy) -> tuple[str, str]:
    """Many low-margin customers: basic/reactive; few high-margin ones: partnership."""
    revenue = state.revenue_with_margin_minor
    high_margin = revenue > 0 and state.margin_minor >= revenue * policy.relationship.high_margin_ratio
    margin = "high_margin" if high_margin else "low_margin"
    if band == KEY:
        level = "partnership" if high_margin else "proactive"
    elif band == NORMAL:
        level = "accountable" if high_margin else "reactive"
    else:
        level = "reactive" if high_margin else "basic"
    return level, f"relationship_level.{band}_{margin}"


def next_value_change(state: CustomerState, now: int, policy: Policy) -> int | None:
    """The next moment an entry leaves the value window."""
    if not state.ledger:
        return None
    return state.ledger[0].at + policy.value.window_days * DAY
