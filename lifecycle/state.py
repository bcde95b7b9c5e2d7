"""Per-customer state: everything the rules need to know about one customer.

A `CustomerState` is what folding a customer's events yields; it is persisted with
the log position it reflects, so the fold resumes where it stopped. Changes to it are
additive (new fields with defaults), so a stored state from an older engine decodes.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

PROSPECT = "prospect"
QUALIFIED = "qualified"
FIRST_TIME = "first_time"
REPEAT = "repeat"


class CustomerState(msgspec.Struct, kw_only=True, gc=False):
    """One customer, as of the last event folded into it."""

    customer_id: str
    stage: str = PROSPECT
    first_event_at: datetime | None = None
    last_event_at: datetime | None = None
    showed_intent: bool = False
    # Per order id: (amount paid or NOT_PAID, amount refunded), in minor units.
    orders: dict[str, tuple[int, int]] = msgspec.field(default_factory=dict)
    purchases: int = 0
    events: int = 0
    erased: bool = False


NOT_PAID = -1
"""An order seen only through its refund so far."""


def order_counts(paid: int, refunded: int) -> bool:
    """An order is a purchase once paid, unless it was fully refunded."""
    return paid != NOT_PAID and (refunded == 0 or refunded < paid)


_state_encoder = msgspec.msgpack.Encoder()
_state_decoder = msgspec.msgpack.Decoder(CustomerState)


def encode_state(state: CustomerState) -> bytes:
    return _state_encoder.encode(state)


def decode_state(data: bytes) -> CustomerState:
    return _state_decoder.decode(data)
