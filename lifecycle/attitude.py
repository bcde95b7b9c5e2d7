# cython: annotation_typing=False
"""Attitude (docs/domain.md sections 3 and 5): what the customer feels about us.

A score from the recent signals: the latest NPS and CSAT answers, an open complaint,
the outcome of the latest service recovery, a referral. Positive at +1 or more,
negative at -1 or less, else neutral. Signals count while inside the attitude window.
"""

from __future__ import annotations

from lifecycle.rule_settings import RuleSettings
from lifecycle.state import CustomerState

POSITIVE, NEUTRAL, NEGATIVE = "positive", "neutral", "negative"


def attitude_of(state: CustomerState, now: int, rules: RuleSettings) -> str:
    since = now - rules.attitude_window
    score = 0
    if state.latest_nps is not None and state.latest_nps_at is not None and state.latest_nps_at > since:
        score += (state.latest_nps >= rules.promoter_nps) - (state.latest_nps <= rules.detractor_nps)
    if state.latest_csat is not None and state.latest_csat_at is not None and state.latest_csat_at > since:
        score += (state.latest_csat >= rules.satisfied_csat) - (state.latest_csat <= rules.dissatisfied_csat)
    if state.open_complaints:
        score -= 1
    if state.last_recovery_at is not None and state.last_recovery_at > since:
        # Service recovery: a complaint resolved to satisfaction can win more loyalty.
        score += 1 if state.last_recovery_satisfied else -1
    if state.referral_times and state.referral_times[-1] > since:
        score += 1
    if score >= 1:
        return POSITIVE
    return NEGATIVE if score <= -1 else NEUTRAL


def next_attitude_change(state: CustomerState, now: int, rules: RuleSettings) -> int | None:
    """The next moment a signal leaves the attitude window."""
    window = rules.attitude_window
    soonest = None
    for at in (state.latest_nps_at, state.latest_csat_at, state.last_recovery_at,
               state.referral_times[-1] if state.referral_times else None):
        if at is not None and at + window > now and (soonest is None or at + window < soonest):
            soonest = at + window
    return soonest
