"""The published contract: JSON Schema documents (draft 2020-12) of what flows on the logs.

msgspec writes the schemas from the Structs themselves (one source); this module makes
them what subscribers' generators expect: `$schema` named, a `oneOf` of the event types
each tagged by a `const` `type` (rather than OpenAPI's `discriminator`, which JSON
Schema does not know), and, for lifecycle events, each event's one `dimension` as a
`const` and its `from_value` and `to_value` as an `enum` of that dimension's values.
"""

from __future__ import annotations

from typing import Any

import msgspec

from schemas.events import AnyEvent
from schemas.lifecycle_events import DIMENSION_VALUES, EVENT_FOR_DIMENSION, AnyLifecycleEvent

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def customer_events_schema() -> dict[str, Any]:
    """JSON Schema of one event on the `customer-events` log."""
    return _published(msgspec.json.schema(AnyEvent), "One event on the customer-events log")


def customer_lifecycle_schema() -> dict[str, Any]:
    """JSON Schema of one event on the `customer-lifecycle` log."""
    schema = _published(msgspec.json.schema(AnyLifecycleEvent), "One event on the customer-lifecycle log")
    for dimension, event in EVENT_FOR_DIMENSION.items():
        values = list(DIMENSION_VALUES[dimension])
        properties = schema["$defs"][event.__name__]["properties"]
        properties["dimension"] = {"const": dimension}
        properties["from_value"] = {"enum": values, "description": f"the {dimension} before the change"}
        properties["to_value"] = {"enum": values, "description": f"the {dimension} after the change"}
    return schema


def _published(schema: dict[str, Any], title: str) -> dict[str, Any]:
    branches = schema.pop("anyOf")
    schema.pop("discriminator", None)
    for definition in schema["$defs"].values():
        tag = definition.get("properties", {}).get("type", {}).get("enum")
        if tag is not None and len(tag) == 1:
            definition["properties"]["type"] = {"const": tag[0]}
    return {"$schema": DRAFT, "title": title, "oneOf": branches, **schema}
