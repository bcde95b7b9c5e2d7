"""The raw customer events: the wire contract of the `customer-events` log.

One flat JSON object per event, tagged by ``type`` (DOMAIN.md section 1). The base
Struct carries the tag and the fields every event has; ``AnyEvent`` lists the events.
Schema changes are additive: a new field gets a default, so old payloads still decode
(they are kept under ``tests/fixtures/``). Unknown extra fields are ignored, so newer
producers may add fields without breaking older engines.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal, Union

import msgspec

EventTime = Annotated[
    datetime,
    msgspec.Meta(tz=True, description="RFC 3339 timestamp with a UTC offset"),
]
CustomerId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
AmountMinor = Annotated[int, msgspec.Meta(ge=0, description="minor currency units")]
Currency = Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$", description="ISO 4217")]

ContactChannel = Literal["phone", "email", "chat", "social", "store", "field", "web"]
Direction = Literal["inbound", "outbound"]
Severity = Literal["low", "medium", "high", "critical"]
Place = Literal["store", "web", "app"]


class Event(msgspec.Struct, tag_field="type", kw_only=True, gc=False):
    """Fields every event on the log carries; the subclass's tag is its ``type``."""

    event_id: uuid.UUID
    occurred_at: EventTime
    source: str
    schema_version: int = 1


class CustomerEvent(Event, kw_only=True, gc=False):
    """An event that happened to one customer; the customer id is the log key."""

    customer_id: CustomerId


class Contact(CustomerEvent, tag="contact", kw_only=True, gc=False):
    channel: ContactChannel
    direction: Direction
    topic: str | None = None


class Purchase(CustomerEvent, tag="purchase", kw_only=True, gc=False):
    order_id: NonEmpty
    amount_minor: AmountMinor
    currency: Currency
    margin_minor: int | None = None
    channel: str | None = None
    items: int | None = None


class Refund(CustomerEvent, tag="refund", kw_only=True, gc=False):
    order_id: NonEmpty
    amount_minor: AmountMinor
    currency: Currency


class ComplaintFiled(CustomerEvent, tag="complaint_filed", kw_only=True, gc=False):
    complaint_id: NonEmpty
    category: NonEmpty
    severity: Severity


class ComplaintResolved(CustomerEvent, tag="complaint_resolved", kw_only=True, gc=False):
    complaint_id: NonEmpty
    satisfied: bool
    resolution: str | None = None


class Visit(CustomerEvent, tag="visit", kw_only=True, gc=False):
    place: Place
    duration_s: Annotated[int, msgspec.Meta(ge=0)] | None = None


class SurveyAnswered(CustomerEvent, tag="survey_answered", kw_only=True, gc=False):
    nps: Annotated[int, msgspec.Meta(ge=0, le=10)] | None = None
    csat: Annotated[int, msgspec.Meta(ge=1, le=5)] | None = None

    def __post_init__(self) -> None:
        if self.nps is None and self.csat is None:
            msg = "a survey answer needs `nps` (0-10) or `csat` (1-5) - at `$`"
            raise ValueError(msg)


class MembershipJoined(CustomerEvent, tag="membership_joined", kw_only=True, gc=False):
    programme: NonEmpty
    member_id: str | None = None


class MembershipLeft(CustomerEvent, tag="membership_left", kw_only=True, gc=False):
    programme: NonEmpty


class ReferralMade(CustomerEvent, tag="referral_made", kw_only=True, gc=False):
    referred_customer_id: CustomerId


class ProfileUpdated(CustomerEvent, tag="profile_updated", kw_only=True, gc=False):
    """Personal data: kept apart from derived data, to be encrypted per customer."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None
    city: str | None = None
    birth_date: str | None = None


class ConsentChanged(CustomerEvent, tag="consent_changed", kw_only=True, gc=False):
    purpose: NonEmpty
    granted: bool


class CustomerErased(CustomerEvent, tag="customer_erased", kw_only=True, gc=False):
    """The customer asked to be forgotten: personal data must go."""


class Clock(Event, tag="clock", kw_only=True, gc=False):
    """Advances event time for every customer; goes to every partition of the log."""


AnyCustomerEvent = Union[
    Contact,
    Purchase,
    Refund,
    ComplaintFiled,
    ComplaintResolved,
    Visit,
    SurveyAnswered,
    MembershipJoined,
    MembershipLeft,
    ReferralMade,
    ProfileUpdated,
    ConsentChanged,
    CustomerErased,
]
AnyEvent = Union[AnyCustomerEvent, Clock]

EVENT_TYPES: tuple[str, ...] = tuple(
    cls.__struct_config__.tag for cls in AnyEvent.__args__  # type: ignore[attr-defined]
)
