"""The customer ladder (docs/domain.md section 2): which rung a customer stands on.

prospect -> qualified (showed intent: an inbound contact or a visit) -> first_time (one
purchase occasion, not fully refunded) -> repeat (two or more occasions) -> loyal
(enough occasions in the window, no open complaint, attitude not negative) -> member
(loyal and enrolled) -> advocate (loyal or member, and a recent referral or a promoter
NPS). Purchases are counted as occasions (lifecycle/occasions.py: a day's orders are
one). The upper rungs depend on a window, so a customer can step down when time passes.
"""

from __future__ import annotations

from lifecycle import occasions
from lifecycle.attitude import NEGATIVE
from lifecycle.policy import Policy
from lifecycle.state import DAY, CustomerState
from schemas.lifecycle_events import DIMENSION_VALUES

LADDER = DIMENSION_VALUES["stage"]
PROSPECT, QUALIFIED, FIRST_TIME, REPEAT, LOYAL, MEMBER, ADVOCATE = LADDER


def purchases_within(state: CustomerState, now: int, days: int, policy: Policy, enough: int | None = None) -> int:
    """Purchase occasions within the trailing `days` (counting stops at `enough`, if given)."""
    return occasions.within(state.purchase_times, now - days * DAY, occasions.unit(policy), enough)


def stage_of(state: CustomerState, now: int, attitude: str, policy: Policy) -> tuple[str, str]:
    """(stage, rule) as of `now`, given the customer's attitude."""
    p = policy.stage
    if state.purchase_occasions >= 2:
        loyal = (
            purchases_within(state, now, p.loyal_window_days, policy, p.loyal_min_purchases) >= p.loyal_min_purchases
            and not state.open_complaints
            and attitude != NEGATIVE
        )
        if not loyal:
            return REPEAT, "stage.repeat_purchases"
        if _advocates(state, now, policy):
            return ADVOCATE, "stage.advocate_referral_or_promoter"
        if state.programmes:
            return MEMBER, "stage.member_enrolled_while_loyal"
        return LOYAL, "stage.loyal_regular_purchases"
    if state.purchase_occasions == 1:
        return FIRST_TIME, "stage.first_purchase"
    if state.showed_intent:
        return QUALIFIED, "stage.qualified_by_intent"
    return PROSPECT, "stage.prospect"


def _advocates(state: CustomerState, now: int, policy: Policy) -> bool:
    p = policy.stage
    recent_referral = bool(state.referral_times) and state.referral_times[-1] > now - p.advocate_window_days * DAY
    return recent_referral or (state.latest_nps is not None and state.latest_nps >= p.advocate_min_nps)


def next_window_end(state: CustomerState, now: int, days: int, policy: Policy) -> int | None:
    """The next moment a purchase occasion leaves a window of `days`."""
    return occasions.next_window_end(state.purchase_times, now - days * DAY, days, occasions.unit(policy))


def next_referral_end(state: CustomerState, policy: Policy) -> int | None:
    """When the latest referral stops making the customer an advocate."""
    if not state.referral_times:
        return None
    return state.referral_times[-1] + policy.stage.advocate_window_days * DAY
