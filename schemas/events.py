"""The raw customer events: the wire contract of the `customer-events` log.

One flat JSON object per event, tagged by ``type`` (docs/domain.md section 1). The base
Struct carries the tag and the fields every event has; ``AnyEvent`` lists the events.
Schema changes are additive: a new field gets a default, so old payloads still decode
(they are kept under ``tests/fixtures/``). Unknown extra fields are ignored, so newer
producers may add fields without breaking older engines.

The contract also bounds what it accepts, so that no record, from any producer, can
stop the engine or move time for everyone: event times lie in [1970, 2100), amounts
in [0, 10^13] minor units, identifiers are printable text of bounded length (no
control characters, so no line breaks or terminal escapes), currencies are ISO 4217.
The checks run wherever an event is decoded: at `publish`, and again in the engine.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, ClassVar, Literal, Union

import msgspec

from schemas.currencies import ISO_4217

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
"""Event times lie in [EARLIEST, LATEST): a year 0001 or 9999 is a producer's bug."""

MAX_AMOUNT_MINOR = 10**13
"""The largest amount one event may carry, in minor units (100 billion major units)."""

EventTime = Annotated[
    datetime,
    msgspec.Meta(
        tz=True,
        description="RFC 3339 timestamp with a UTC offset, from 1970-01-01 up to (not including) 2100-01-01",
    ),
]
CustomerId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=128, description="printable text, no control characters")
]
Identifier = Annotated[
    str, msgspec.Meta(min_length=1, max_length=256, description="printable text, no control characters")
]
Label = Annotated[str, msgspec.Meta(max_length=256, description="printable text, no control characters")]
"""An optional name (a source, a channel, a member number): may be empty, as it always could."""
FreeText = Annotated[str, msgspec.Meta(max_length=2_000)]
AmountMinor = Annotated[int, msgspec.Meta(ge=0, le=MAX_AMOUNT_MINOR, description="minor currency units")]
MarginMinor = Annotated[int, msgspec.Meta(ge=-MAX_AMOUNT_MINOR, le=MAX_AMOUNT_MINOR)]
Currency = Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$", description="an ISO 4217 code")]

SealedValue = Annotated[
    str,
    msgspec.Meta(pattern="^[A-Za-z0-9_-]{38,11000}$",
                 description="AES-GCM ciphertext under the customer's key, base64url: nonce, tag, data"),
]
"""A personal value as the log holds it: readable only with its customer's key, which
erasure destroys (consumers/privacy/personal_data.py)."""

ContactChannel = Literal["phone", "email", "chat", "social", "store", "field", "web"]
Direction = Literal["inbound", "outbound"]
Severity = Literal["low", "medium", "high", "critical"]
Place = Literal["store", "web", "app"]


def _what_is_wrong(event: Event) -> str:
    """Why `event` failed its check, and where (the slow path: only for bad input)."""
    if not EARLIEST <= event.occurred_at < LATEST:
        return (
            f"{event.occurred_at.isoformat()} is outside the plausible range of event times "
            "[1970-01-01, 2100-01-01) - at `$.occurred_at`"
        )
    for name in event.identifiers:
        value = getattr(event, name)
        if value is not None and not value.isprintable():
            bad = next(f"U+{ord(c):04X}" for c in value if not c.isprintable())
            return f"a control or non-printable character ({bad}) - at `$.{name}`"
    currency = getattr(event, "currency", None)
    return f"{currency!r} is not an ISO 4217 currency code - at `$.currency`"


class Event(msgspec.Struct, tag_field="type", kw_only=True, gc=False):
    """Fields every event on the log carries; the subclass's tag is its ``type``."""

    event_id: uuid.UUID
    occurred_at: EventTime
    source: Label
    schema_version: Annotated[int, msgspec.Meta(ge=1, le=1_000)] = 1

    # The fields that name things (ids, categories), checked for printable text: listed
    # for error messages, and joined by `_names` for the check itself (a test keeps the
    # two in step). One flat check, because a Python call per decoded event is what
    # costs here: ~1 µs of a ~3.5 µs decode (docs/benchmarks.md).
    identifiers: ClassVar[tuple[str, ...]] = ("source",)

    def _names(self) -> str:
        return self.source

    def __post_init__(self) -> None:
        # msgspec turns a ValueError raised here into a ValidationError with this text.
        if not (EARLIEST <= self.occurred_at < LATEST and self._names().isprintable()):
            raise ValueError(_what_is_wrong(self))


class CustomerEvent(Event, kw_only=True, gc=False):
    """An event that happened to one customer; the customer id is the log key."""

    customer_id: CustomerId

    identifiers: ClassVar[tuple[str, ...]] = ("source", "customer_id")

    def _names(self) -> str:
        return self.source + self.customer_id


class Contact(CustomerEvent, tag="contact", kw_only=True, gc=False):
    channel: ContactChannel
    direction: Direction
    topic: FreeText | None = None
    sealed: dict[Literal["topic"], SealedValue] | None = None


class _Priced(CustomerEvent, kw_only=True, gc=False):
    """An amount of money for an order: the currency must be an ISO 4217 code."""

    order_id: Identifier
    amount_minor: AmountMinor
    currency: Currency

    identifiers: ClassVar[tuple[str, ...]] = ("source", "customer_id", "order_id")

    def _names(self) -> str:
        return self.source + self.customer_id + self.order_id

    def __post_init__(self) -> None:
        if not (EARLIEST <= self.occurred_at < LATEST and self._names().isprintable() and self.currency in ISO_4217):
            raise ValueError(_what_is_wrong(self))


class Purchase(_Priced, tag="purchase", kw_only=True, gc=False):
    margin_minor: MarginMinor | None = None
    channel: Label | None = None
    items: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] | None = None

    identifiers: ClassVar[tuple[str, ...]] = ("source", "customer_id", "order_id", "channel")

    def _names(self) -> str:
        return self.source + self.customer_id + self.order_id + (self.channel or "")


class Refund(_Priced, tag="refund", kw_only=True, gc=False):
    pass


class ComplaintFiled(CustomerEvent, tag="complaint_filed", kw_only=True, gc=False):
    complaint_id: Identifier
    category: Identifier
    severity: Severity

    identifiers: ClassVar[tuple[str, ...]] = ("source", "customer_id", "complaint_id", "category")

    def _names(self) -> str:
        return self.source + self.customer_id + self.complaint_id + self.category


class ComplaintResolved(CustomerEvent, tag="complaint_resolved", kw_only=True, gc=False):
    complaint_id: Identifier
    satisfied: bool
    resolution: FreeText | None = None
    sealed: dict[Literal["resolution"], SealedValue] | None = None

    identifiers: ClassVar[tuple[str, ...]] = ("source", "customer_id", "complaint_id")

    def _names(self) -> str:
        return self.source + self.customer_id + self.complaint_id


class Visit(CustomerEvent, tag="visit", kw_only=True, gc=False):
    place: Place
    duration_s: Annotated[int, msgspec.Meta(ge=0, le=31 * 86_400)] | None = None


class SurveyAnswered(CustomerEvent, tag="survey_answered", kw_only=True, gc=False):
    nps: Annotated[int, msgspec.Meta(ge=0, le=10)] | None = None
    csat: Annotated[int, msgspec.Meta(ge=1, le=5)] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()  # surveys are few: the second call costs little
        if self.nps is None and self.csat is None:
            msg = "a survey answer needs `nps` (0-10) or `csat` (1-5) - at `$`"
            raise ValueError(msg)


class MembershipJoined(CustomerEvent, tag="membership_joined", kw_only=True, gc=False):
    programme: Identifier
    member_id: Label | None = None

    identifiers: ClassVar[tuple[str, ...]] = ("source", "customer_id", "programme", "member_id")

    def _names(self) -> str:
        return self.source + self.customer_id + self.programme + (self.member_id or "")


class MembershipLeft(CustomerEvent, tag="membership_left", kw_only=True, gc=False):
    programme: Identifier

    identifiers: ClassVar[tuple[str, ...]] = ("source", "customer_id", "programme")

    def _names(self) -> str:
        return self.source + self.customer_id + self.programme


class ReferralMade(CustomerEvent, tag="referral_made", kw_only=True, gc=False):
    referred_customer_id: CustomerId

    identifiers: ClassVar[tuple[str, ...]] = ("source", "customer_id", "referred_customer_id")

    def _names(self) -> str:
        return self.source + self.customer_id + self.referred_customer_id


class ProfileUpdated(CustomerEvent, tag="profile_updated", kw_only=True, gc=False):
    """Personal data: kept apart from derived data, and sealed with the customer's key
    before it reaches the log."""

    name: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    email: Annotated[str, msgspec.Meta(max_length=320)] | None = None
    phone: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    city: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    birth_date: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    sealed: dict[Literal["name", "email", "phone", "city", "birth_date"], SealedValue] | None = None


class ConsentChanged(CustomerEvent, tag="consent_changed", kw_only=True, gc=False):
    purpose: Identifier
    granted: bool

    identifiers: ClassVar[tuple[str, ...]] = ("source", "customer_id", "purpose")

    def _names(self) -> str:
        return self.source + self.customer_id + self.purpose


class CustomerErased(CustomerEvent, tag="customer_erased", kw_only=True, gc=False):
    """The customer asked to be forgotten: personal data must go."""


class LogWideEvent(Event, kw_only=True, gc=False):
    """An event for every customer, not one: it goes to every partition of the log."""


class Clock(LogWideEvent, tag="clock", kw_only=True, gc=False):
    """Advances event time for every customer."""


Positive = Annotated[float, msgspec.Meta(gt=0, le=1e12)]


class BetaGeoParameters(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """BG/NBD (Fader, Hardie and Lee 2005): purchase rates are gamma(r, alpha) across
    customers, in purchases per day; the chance of dropping out after a purchase is
    beta(a, b) across customers."""

    r: Positive
    alpha: Positive
    a: Positive
    b: Positive


class GammaGammaParameters(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Gamma-Gamma (Fader and Hardie 2013): a purchase's spend is gamma(p, nu) with
    nu gamma(q, gamma) across customers; gamma in the base currency's minor units."""

    p: Positive
    q: Annotated[float, msgspec.Meta(gt=1, le=1e12)]
    gamma: Positive


class FittedPartition(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a fit read of one log partition: its purchases up to `position` (the
    position after the last record read), the customers with a purchase by the cutoff,
    and the SHA-256 of their purchase summaries (projections/catalog/value_estimates.py)."""

    position: Annotated[int, msgspec.Meta(ge=0)]
    customers: Annotated[int, msgspec.Meta(ge=0)]
    fingerprint: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]


ValueModelName = Literal["bg_nbd", "mbg_nbd"]


class ValueModelFitted(LogWideEvent, tag="value_model_fitted", kw_only=True, gc=False):
    """The customer value models, fitted to the purchases as of `occurred_at` (the
    cutoff): every customer's figures follow from this event and the log before it."""

    time_unit: Literal["day"] = "day"
    currency: Currency
    policy_version: Identifier
    bg_nbd: BetaGeoParameters
    gamma_gamma: GammaGammaParameters
    bg_nbd_log_likelihood: float
    gamma_gamma_log_likelihood: float
    customers: Annotated[int, msgspec.Meta(ge=1)]
    repeat_customers: Annotated[int, msgspec.Meta(ge=1)]
    fingerprint: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
    data: dict[Annotated[str, msgspec.Meta(min_length=1, max_length=256)], FittedPartition]
    model: ValueModelName = "bg_nbd"
    """Which purchase model `bg_nbd` holds the parameters of: BG/NBD, or the modified
    BG/NBD (`mbg_nbd`), under which a one-purchase customer may have dropped out."""

    identifiers: ClassVar[tuple[str, ...]] = ("source", "policy_version")

    def _names(self) -> str:
        return self.source + self.policy_version


PERSONAL_FIELDS: dict[str, tuple[str, ...]] = {
    "profile_updated": ("name", "email", "phone", "city", "birth_date"),
    # Free text may hold anything a customer said.
    "contact": ("topic",),
    "complaint_resolved": ("resolution",),
}
"""By event type, the fields that may hold personal data: sealed at `publish`, masked
wherever a raw event is shown. No rule reads them."""

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
AnyEvent = Union[AnyCustomerEvent, Clock, ValueModelFitted]

EVENT_TYPES: tuple[str, ...] = tuple(
    cls.__struct_config__.tag for cls in AnyEvent.__args__  # type: ignore[attr-defined]
)
