"""The derived lifecycle events: the wire contract of the `customer-lifecycle` log.

Every change of a customer's stage, activity, loyalty type, loyalty tier, value band or
relationship level is one event, named for what changed (past tense), carrying the
rule that decided it, the facts that rule read, the policy version in force and the
events that caused it.
`event_id` is derived from the cause, so replaying the same log gives the same ids.
`sequence` numbers a customer's lifecycle events 1, 2, 3 ... with no gaps, and
`previous_hash` chains them (schemas/chain.py: tamper evidence; schema version 2).
"""

from __future__ import annotations

import uuid
from typing import Literal, Union

import msgspec

from schemas.events import CustomerId, EventTime

Dimension = Literal[
    "stage", "activity", "loyalty_type", "loyalty_tier", "value_band", "relationship_level"
]


class LifecycleEvent(msgspec.Struct, tag_field="type", kw_only=True, gc=False):
    """Fields every lifecycle event carries; the subclass's tag is its ``type``."""

    event_id: uuid.UUID
    customer_id: CustomerId
    sequence: int
    dimension: Dimension
    from_value: str
    to_value: str
    occurred_at: EventTime
    rule: str
    policy_version: str
    caused_by: list[uuid.UUID]
    schema_version: int = 3
    # Since schema version 2 (None on older events): what the rule read when it decided
    # (lifecycle/reasons.py), and the chain (schemas/chain.py).
    facts: dict[str, int | str | bool | None] | None = None
    previous_hash: str | None = None
    # Since schema version 3 (None on older events): the customer's consent by purpose
    # when the change happened, so a subscriber acting for a purpose needs no lookup.
    consents: dict[str, bool] | None = None


class StageChanged(LifecycleEvent, tag="stage_changed", kw_only=True, gc=False):
    """The customer moved on the ladder (prospect ... advocate)."""


class ActivityChanged(LifecycleEvent, tag="activity_changed", kw_only=True, gc=False):
    """The customer declined (drowsy ... churned) or came back (a win-back)."""


class LoyaltyTypeChanged(LifecycleEvent, tag="loyalty_type_changed", kw_only=True, gc=False):
    """Attitude x repeat behaviour gave another loyalty type."""


class LoyaltyTierChanged(LifecycleEvent, tag="loyalty_tier_changed", kw_only=True, gc=False):
    """The programme tier went up, or down at a review."""


class ValueBandChanged(LifecycleEvent, tag="value_band_changed", kw_only=True, gc=False):
    """The customer's lifetime value crossed a band boundary."""


class RelationshipLevelChanged(
    LifecycleEvent, tag="relationship_level_changed", kw_only=True, gc=False
):
    """The relationship level to offer (Kotler's five levels) changed."""


AnyLifecycleEvent = Union[
    StageChanged,
    ActivityChanged,
    LoyaltyTypeChanged,
    LoyaltyTierChanged,
    ValueBandChanged,
    RelationshipLevelChanged,
]

DIMENSION_VALUES: dict[str, tuple[str, ...]] = {
    "stage": ("prospect", "qualified", "first_time", "repeat", "loyal", "member", "advocate"),
    "activity": ("active", "drowsy", "half_asleep", "dormant", "churned"),
    "loyalty_type": ("none", "latent", "spurious", "true"),
    "loyalty_tier": ("none", "silver", "gold", "platinum"),
    "value_band": ("small", "normal", "key"),
    "relationship_level": ("basic", "reactive", "accountable", "proactive", "partnership"),
}
"""The values each dimension takes, in their order (the ladder, decline, the tiers, the
pyramid, Kotler's levels): `from_value` and `to_value` of its lifecycle events are
among them. The rules (lifecycle/) name their values from here, so that the contract
and the rules cannot drift apart."""

EVENT_FOR_DIMENSION: dict[str, type[LifecycleEvent]] = {
    "stage": StageChanged,
    "activity": ActivityChanged,
    "loyalty_type": LoyaltyTypeChanged,
    "loyalty_tier": LoyaltyTierChanged,
    "value_band": ValueBandChanged,
    "relationship_level": RelationshipLevelChanged,
}
