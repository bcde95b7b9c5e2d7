"""Wire contracts: the events on the logs, their codecs and their JSON Schema."""

from schemas.codec import decode_event, decode_events, encode_event
from schemas.contract import customer_events_schema
from schemas.errors import InvalidEvent, SchemaError
from schemas.events import (
    EVENT_TYPES,
    AnyCustomerEvent,
    AnyEvent,
    Clock,
    ComplaintFiled,
    ComplaintResolved,
    ConsentChanged,
    Contact,
    CustomerErased,
    CustomerEvent,
    Event,
    MembershipJoined,
    MembershipLeft,
    ProfileUpdated,
    Purchase,
    ReferralMade,
    Refund,
    SurveyAnswered,
    Visit,
)

__all__ = [
    "EVENT_TYPES",
    "AnyCustomerEvent",
    "AnyEvent",
    "Clock",
    "ComplaintFiled",
    "ComplaintResolved",
    "ConsentChanged",
    "Contact",
    "CustomerErased",
    "CustomerEvent",
    "Event",
    "InvalidEvent",
    "MembershipJoined",
    "MembershipLeft",
    "ProfileUpdated",
    "Purchase",
    "ReferralMade",
    "Refund",
    "SchemaError",
    "SurveyAnswered",
    "Visit",
    "customer_events_schema",
    "decode_event",
    "decode_events",
    "encode_event",
]
