"""The published contract: JSON Schema documents of what flows on the logs."""

from __future__ import annotations

from typing import Any

import msgspec

from schemas.events import AnyEvent
from schemas.lifecycle_events import AnyLifecycleEvent


def customer_events_schema() -> dict[str, Any]:
    """JSON Schema of one event on the `customer-events` log."""
    return msgspec.json.schema(AnyEvent)


def customer_lifecycle_schema() -> dict[str, Any]:
    """JSON Schema of one event on the `customer-lifecycle` log."""
    return msgspec.json.schema(AnyLifecycleEvent)
