"""What a Kafka record carries besides its value: its timestamp and its headers.

Subscribers route and order on these without decoding the value. The record timestamp
is the event's `occurred_at` (CreateTime, in milliseconds), not the time it was
produced. The headers follow CloudEvents' Kafka protocol binding in binary mode
(`content-type`, `ce_specversion`, `ce_id`, `ce_type`, `ce_source`, `ce_time`); the
value stays the event's JSON object, and the customer id is the record key. No more
headers than these: kafka-python parses each header of each record in pure Python,
~4 µs a header, so every header costs every consumer (docs/benchmarks.md).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from schemas import AnyEvent
from schemas.lifecycle_events import LifecycleEvent

CONTENT_TYPE = b"application/json"
SPEC_VERSION = b"1.0"
LIFECYCLE_SOURCE = b"/lifecycle-engine"
"""`ce_source` of a lifecycle event; a raw event's is `/` and its `source`, percent-encoded."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)

Headers = list[tuple[str, bytes]]


def timestamp_ms(event: AnyEvent | LifecycleEvent) -> int:
    """The event's `occurred_at`, in whole milliseconds since the epoch."""
    return (event.occurred_at - _EPOCH) // _MILLISECOND


def headers(topic: str, event: AnyEvent | LifecycleEvent) -> Headers:
    """The CloudEvents headers of `event` on `topic`; `ce_type` is `<topic>.<type>`."""
    tag = event.__struct_config__.tag
    source = LIFECYCLE_SOURCE if isinstance(event, LifecycleEvent) else f"/{quote(event.source, safe='')}".encode()
    return [
        ("content-type", CONTENT_TYPE),
        ("ce_specversion", SPEC_VERSION),
        ("ce_id", str(event.event_id).encode()),
        ("ce_type", f"{topic}.{tag}".encode()),
        ("ce_source", source),
        ("ce_time", event.occurred_at.isoformat().encode()),
    ]
