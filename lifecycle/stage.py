# cython: annotation_typing=False
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
from lifecycle.rule_settings import RuleSettings
from lifecycle.state import CustomerState
from schemas.lifecycle_events import DIMENSION_VALUES

LADDER = DIMENSION_VALUES["stage"]
PROSPECT, QUALIFIED, FIRST_TIME, REPEAT, LOYAL, MEMBER, ADVOCATE = LADDER


def purchases_within(state: CustomerState, now: int, window: int, rules: RuleSettings,
                     enough: int | None = None) -> int:
    """Purchase occasions within the trailing `window` seconds (counting stops at `enough`, if given)."""
    return occasions.within(state.purchase_times, now - window, rules.occasion, enough)


def stage_of(state: CustomerState, now: int, attitude: str, rules: RuleSettings) -> tuple[str, str]:
    """(stage, rule) as of `now`, given the customer's attitude."""
    if state.purchase_occasions >= 2:
        needed = rules.loyal_min_purchases
        loyal = (
            purchases_within(state, now, rules.loyal_window, rules, needed) >= needed
            and not state.open_complaints
            and attitude != NEGATIVE
        )
        if not loyal:
            return _REPEAT
        if _advocates(state, now, rules):
            return _ADVOCATE
        if state.programmes:
            return _MEMBER
        return _LOYAL
    if state.purchase_occasions == 1:
        return _FIRST_TIME
    if state.showed_intent:
        return _QUALIFIED
    return _PROSPECT


def _advocates(state: CustomerState, now: int, rules: RuleSettings) -> bool:
    if state.referral_times and state.referral_times[-1] > now - rules.advocate_window:
        return True
    return state.latest_nps is not None and state.latest_nps >= rules.advocate_min_nps


def next_window_end(state: CustomerState, now: int, window: int, rules: RuleSettings) -> int | None:
    """The next moment a purchase occasion leaves a window of `window` seconds."""
    return occasions.next_window_end(state.purchase_times, now - window, window, rules.occasion)


def next_referral_end(state: CustomerState, rules: RuleSettings) -> int | None:
    """When the latest referral stops making the customer an advocate."""
    if not state.referral_times:
        return None
    return state.referral_times[-1] + rules.advocate_window


# (stage, rule): made once, so a decision allocates nothing.
_PROSPECT = (PROSPECT, "stage.prospect")
_QUALIFIED = (QUALIFIED, "stage.qualified_by_intent")
_FIRST_TIME = (FIRST_TIME, "stage.first_purchase")
_REPEAT = (REPEAT, "stage.repeat_purchases")
_LOYAL = (LOYAL, "stage.loyal_regular_purchases")
_MEMBER = (MEMBER, "stage.member_enrolled_while_loyal")
_ADVOCATE = (ADVOCATE, "stage.advocate_referral_or_promoter")
