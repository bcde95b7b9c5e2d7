"""The customer ladder (DOMAIN.md section 2): which rung a customer stands on.

Prospect -> qualified prospect (showed intent: an inbound contact or a visit) ->
first-time customer (one purchase not fully refunded) -> repeat customer (two or
more). The rungs above repeat (loyal, member, advocate) need the policy's windows.
"""

from __future__ import annotations

from lifecycle.state import FIRST_TIME, PROSPECT, QUALIFIED, REPEAT, CustomerState


def ladder_stage(state: CustomerState) -> str:
    """The highest rung the customer's history reaches."""
    if state.purchases >= 2:
        return REPEAT
    if state.purchases == 1:
        return FIRST_TIME
    if state.showed_intent:
        return QUALIFIED
    return PROSPECT
