"""The published contract: JSON Schema documents of what flows on the logs."""

from __future__ import annotations

from typing import Any

import msgspec

from schemas.events import AnyEvent


def customer_events_schema() -> dict[str, Any]:
    """JSON Schema of one event on the `customer-events` log."""
    return msgspec.json.schema(AnyEvent)
