"""Per-customer state: the facts folded from a customer's events, and where they stand.

Facts (purchases, orders, complaints, surveys, ...) are what the events said; the
dimensions (stage, activity, loyalty, value band, relationship level) are decided from
the facts, the policy and the customer's event time, and kept here so that a change
can be told from a non-change. Times are whole seconds since the Unix epoch (UTC): a
state is persisted and compared, and integers are exact. A state is stored as a msgpack
array (0.57 KB on the benchmark population, against 1.27 KB as a map of field names),
so changes to `StoredState` are additive *at its end* (new fields with defaults, last),
and a state stored by an older engine still decodes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

DAY = 86_400
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)

NOT_PAID = -1
"""An order seen only through its refund so far."""


def epoch_seconds(moment: datetime) -> int:
    """Whole seconds since the epoch, exactly (no float rounding)."""
    return (moment - _EPOCH) // _SECOND


def as_datetime(seconds: int) -> datetime:
    return _EPOCH + timedelta(seconds=seconds)


class Order(msgspec.Struct, array_like=True, gc=False):
    """One order: what was paid, what was refunded (minor units, order currency), its
    value in the base currency (margin where given, else revenue), when it was paid,
    and (for a refund still waiting for its purchase) when it was refunded."""

    paid: int
    refunded: int
    value: int
    revenue: int
    at: int | None = None
    refunded_at: int | None = None

    def held_since(self) -> int | None:
        """The time a refund window of the order runs from: its payment, or its refund."""
        return self.at if self.at is not None else self.refunded_at

    @property
    def counts(self) -> bool:
        """An order is a purchase once paid, unless it was fully refunded."""
        return self.paid != NOT_PAID and (self.refunded == 0 or self.refunded < self.paid)


class Entry(msgspec.Struct, array_like=True, gc=False):
    """A dated change of value and points, kept while inside the rolling window."""

    at: int
    value: int
    points: int


class StoredState(msgspec.Struct, kw_only=True, gc=False, array_like=True):
    """A `CustomerState` as stored: its fields, in this order, with these defaults.

    The stored form is this Struct's msgpack array; the engine works on `CustomerState`,
    whose typed layout (state.pxd) the compiler turns into C fields. A field added here
    is added there too, with the same default: a test keeps the two in step.
    """

    customer_id: str
    now: int = 0
    first_event_at: int | None = None
    last_event_at: int | None = None
    last_active_at: int | None = None
    events: int = 0
    # The ids of the customer's latest events: a repeat of one of them (two producers
    # racing to publish the same event) is ignored, and counted.
    recent_event_ids: list[int] = msgspec.field(default_factory=list)
    duplicates_ignored: int = 0
    showed_intent: bool = False
    erased: bool = False
    # Purchases: orders by id; the dates of counted purchases, oldest first.
    orders: dict[str, Order] = msgspec.field(default_factory=dict)
    purchases: int = 0
    purchase_times: list[int] = msgspec.field(default_factory=list)
    purchase_orders: list[str] = msgspec.field(default_factory=list)
    usual_gap: int | None = None
    # Value, in base-currency minor units; `ledger` holds the rolling window's entries.
    historical_value_minor: int = 0
    revenue_with_margin_minor: int = 0
    margin_minor: int = 0
    ledger: list[Entry] = msgspec.field(default_factory=list)
    current_value_minor: int = 0
    points: int = 0
    unpriced_purchases: int = 0
    # Attitude: complaints, service recovery, surveys, referrals.
    open_complaints: dict[str, int] = msgspec.field(default_factory=dict)
    closed_complaints: list[str] = msgspec.field(default_factory=list)
    # Resolutions seen before their complaint (late events): id -> (resolved at, satisfied).
    early_resolutions: dict[str, tuple[int, bool]] = msgspec.field(default_factory=dict)
    complaints_filed: int = 0
    complaints_resolved: int = 0
    recoveries_satisfied: int = 0
    resolve_seconds_total: int = 0
    last_recovery_at: int | None = None
    last_recovery_satisfied: bool | None = None
    latest_nps: int | None = None
    latest_nps_at: int | None = None
    latest_csat: int | None = None
    latest_csat_at: int | None = None
    referral_times: list[int] = msgspec.field(default_factory=list)
    # Membership and the tiered programme.
    programmes: list[str] = msgspec.field(default_factory=list)
    member_since: int | None = None
    next_review_at: int | None = None
    # Where the customer stands, and how the engine got there.
    stage: str = "prospect"
    activity: str = "active"
    attitude: str = "neutral"
    loyalty_type: str = "none"
    loyalty_tier: str = "none"
    value_band: str = "small"
    relationship_level: str = "basic"
    clv_minor: int = 0
    win_backs: int = 0
    sequence: int = 0
    next_deadline: int | None = None
    # The hash of the customer's latest lifecycle event (schemas/chain.py).
    chain_head: str = ""
    # Net revenue so far, in base-currency minor units (beside the value, which is margin
    # where given): what each purchase and refund moved is `value_movements`' revenue.
    historical_revenue_minor: int = 0
    # Purchase occasions so far: a day's counted purchases (`[stage] occasion_days`) are one.
    purchase_occasions: int = 0
    # The sources the customer's events came from (the first `MAX_SOURCES`), for the
    # partners' grants; no rule reads them.
    sources: list[str] = msgspec.field(default_factory=list)
    # Consent by purpose, as the latest `consent_changed` of each left it, in purpose
    # order; no rule reads it: it goes on each lifecycle event for subscribers acting
    # for a purpose.
    consents: dict[str, bool] = msgspec.field(default_factory=dict)


class CustomerState:
    """One customer, as of `now`: the latest event time that reached the customer.

    The fields are `StoredState`'s (what each holds is said there). Compiled, this is a
    C struct (state.pxd: times, counts and money int64, the rest typed objects), so a
    rule reads a field as a C load instead of an attribute lookup; interpreted, it is a
    plain class with the same fields.
    """

    def __init__(self, customer_id: str, **fields: object) -> None:
        self.customer_id = customer_id
        self.now = 0
        self.first_event_at = None
        self.last_event_at = None
        self.last_active_at = None
        self.events = 0
        self.recent_event_ids = []
        self.duplicates_ignored = 0
        self.showed_intent = False
        self.erased = False
        self.orders = {}
        self.purchases = 0
        self.purchase_times = []
        self.purchase_orders = []
        self.usual_gap = None
        self.historical_value_minor = 0
        self.revenue_with_margin_minor = 0
        self.margin_minor = 0
        self.ledger = []
        self.current_value_minor = 0
        self.points = 0
        self.unpriced_purchases = 0
        self.open_complaints = {}
        self.closed_complaints = []
        self.early_resolutions = {}
        self.complaints_filed = 0
        self.complaints_resolved = 0
        self.recoveries_satisfied = 0
        self.resolve_seconds_total = 0
        self.last_recovery_at = None
        self.last_recovery_satisfied = None
        self.latest_nps = None
        self.latest_nps_at = None
        self.latest_csat = None
        self.latest_csat_at = None
        self.referral_times = []
        self.programmes = []
        self.member_since = None
        self.next_review_at = None
        self.stage = "prospect"
        self.activity = "active"
        self.attitude = "neutral"
        self.loyalty_type = "none"
        self.loyalty_tier = "none"
        self.value_band = "small"
        self.relationship_level = "basic"
        self.clv_minor = 0
        self.win_backs = 0
        self.sequence = 0
        self.next_deadline = None
        self.chain_head = ""
        self.historical_revenue_minor = 0
        self.purchase_occasions = 0
        self.sources = []
        self.consents = {}
        for name, value in fields.items():
            setattr(self, name, value)

    def __repr__(self) -> str:
        return repr(_as_stored(self))


MAX_SOURCES = 32
"""Sources kept per customer: a producer writing a new source on every event must not
grow a state without bound."""


STATE_FIELDS = StoredState.__struct_fields__
_state_encoder = msgspec.msgpack.Encoder()
_state_decoder = msgspec.msgpack.Decoder(StoredState)


def encode_state(state: CustomerState) -> bytes:
    """The state as `StoredState`'s msgpack array: the fields in their order."""
    return _state_encoder.encode(_fields_of(state))


def decode_state(data: bytes) -> CustomerState:
    """A stored state, of this engine or an older one (missing trailing fields take
    their defaults)."""
    state = CustomerState.__new__(CustomerState)
    _restore(state, msgspec.structs.astuple(_state_decoder.decode(data)))
    return state


def _fields_of(state: CustomerState) -> tuple:  # type: ignore[type-arg]
    """The state's fields in `STATE_FIELDS` order (compiled: C loads, no lookups)."""
    return (
        state.customer_id, state.now, state.first_event_at, state.last_event_at, state.last_active_at,
        state.events, state.recent_event_ids, state.duplicates_ignored, state.showed_intent, state.erased,
        state.orders, state.purchases, state.purchase_times, state.purchase_orders, state.usual_gap,
        state.historical_value_minor, state.revenue_with_margin_minor, state.margin_minor, state.ledger,
        state.current_value_minor, state.points, state.unpriced_purchases, state.open_complaints,
        state.closed_complaints, state.early_resolutions, state.complaints_filed, state.complaints_resolved,
        state.recoveries_satisfied, state.resolve_seconds_total, state.last_recovery_at,
        state.last_recovery_satisfied, state.latest_nps, state.latest_nps_at, state.latest_csat,
        state.latest_csat_at, state.referral_times, state.programmes, state.member_since,
        state.next_review_at, state.stage, state.activity, state.attitude, state.loyalty_type,
        state.loyalty_tier, state.value_band, state.relationship_level, state.clv_minor, state.win_backs,
        state.sequence, state.next_deadline, state.chain_head, state.historical_revenue_minor,
        state.purchase_occasions, state.sources, state.consents,
    )


def _restore(state: CustomerState, values: tuple) -> None:  # type: ignore[type-arg]
    """Set the state's fields from `values`, in `STATE_FIELDS` order."""
    (
        state.customer_id, state.now, state.first_event_at, state.last_event_at, state.last_active_at,
        state.events, state.recent_event_ids, state.duplicates_ignored, state.showed_intent, state.erased,
        state.orders, state.purchases, state.purchase_times, state.purchase_orders, state.usual_gap,
        state.historical_value_minor, state.revenue_with_margin_minor, state.margin_minor, state.ledger,
        state.current_value_minor, state.points, state.unpriced_purchases, state.open_complaints,
        state.closed_complaints, state.early_resolutions, state.complaints_filed, state.complaints_resolved,
        state.recoveries_satisfied, state.resolve_seconds_total, state.last_recovery_at,
        state.last_recovery_satisfied, state.latest_nps, state.latest_nps_at, state.latest_csat,
        state.latest_csat_at, state.referral_times, state.programmes, state.member_since,
        state.next_review_at, state.stage, state.activity, state.attitude, state.loyalty_type,
        state.loyalty_tier, state.value_band, state.relationship_level, state.clv_minor, state.win_backs,
        state.sequence, state.next_deadline, state.chain_head, state.historical_revenue_minor,
        state.purchase_occasions, state.sources, state.consents,
    ) = values


def _as_stored(state: CustomerState) -> StoredState:
    return StoredState(**dict(zip(STATE_FIELDS, _fields_of(state))))
