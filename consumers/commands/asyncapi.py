"""`lifecycle schema asyncapi`: the AsyncAPI 3.0 document of the engine's Kafka topics.

What a subscriber or a producer needs to generate a client: each topic, who sends and
who receives on it, each record's key, headers and value. The values are the JSON
Schemas of `lifecycle schema` (schemas/contract.py), embedded whole as draft 2020-12
schemas, each with an `$id` of its own so that its `#/$defs/...` references resolve
within it. The headers are those of consumers/logs/record_headers.py (CloudEvents'
Kafka binding), the dead letters' those of Kafka Connect. docs/asyncapi.json is this
document; a test keeps them equal and validates it against AsyncAPI's own schema.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from consumers.group.changelog import CHECKPOINT_HEADER
from consumers.group.transactional_outputs import DEAD_LETTER_TOPIC
from consumers.logs.event_log import CUSTOMER_EVENTS, CUSTOMER_LIFECYCLE
from consumers.logs.record_headers import CONTENT_TYPE, LIFECYCLE_SOURCE, SPEC_VERSION
from schemas import customer_events_schema, customer_lifecycle_schema

SCHEMA_FORMAT = "application/schema+json;version=draft-2020-12"
_SCHEMA_ID = "urn:customer-lifecycle:schema:"


def asyncapi_document() -> dict[str, Any]:
    """The document (see the module text), as JSON-ready values."""
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Customer lifecycle engine",
            "version": version("customer-lifecycle"),
            "description": "The Kafka topics of the event-sourced customer lifecycle engine: the customer events it "
                           "reads, the lifecycle events it derives, and the records it refuses. Subscribers read "
                           f"{CUSTOMER_LIFECYCLE} with isolation.level=read_committed.",
        },
        "channels": {
            "customerEvents": _channel(CUSTOMER_EVENTS, "Every contact, purchase, complaint, visit, refund, survey, "
                                       "membership, referral and consent of a customer: the log of record.",
                                       "customerEvent"),
            "customerLifecycle": _channel(CUSTOMER_LIFECYCLE, "Every change of a customer's stage, activity, loyalty "
                                          "type, tier, value band or relationship level, with the rule that decided "
                                          "it.", "lifecycleEvent"),
            "deadLetters": _channel(DEAD_LETTER_TOPIC, "What members of a consumer group refused, after Kafka "
                                    "Connect's convention: the original record, and why in its headers.",
                                    "deadLetter"),
        },
        "operations": {
            "publishCustomerEvents": _operation("send", "customerEvents", "customerEvent",
                                                "Producers (or `lifecycle publish`) append customer events."),
            "processCustomerEvents": _operation("receive", "customerEvents", "customerEvent",
                                                "The engine reads them in order per partition."),
            "deriveLifecycleEvents": _operation("send", "customerLifecycle", "lifecycleEvent",
                                                "The engine writes each lifecycle event once."),
            "subscribeToLifecycleEvents": _operation("receive", "customerLifecycle", "lifecycleEvent",
                                                     "Downstream systems subscribe, read_committed."),
            "refuseRecords": _operation("send", "deadLetters", "deadLetter",
                                        "A member of a consumer group sends each record it refuses."),
        },
        "components": {
            "messages": {
                "customerEvent": _message(
                    "One customer event", customer_events_schema(), "customer-events",
                    "the customer id; none for a clock, which is written to every partition"),
                "lifecycleEvent": _message(
                    "One lifecycle event", customer_lifecycle_schema(), "customer-lifecycle", "the customer id"),
                "deadLetter": _dead_letter(),
            },
        },
    }


def _channel(address: str, description: str, message: str) -> dict[str, Any]:
    return {"address": address, "description": description,
            "messages": {message: {"$ref": f"#/components/messages/{message}"}}}


def _operation(action: str, channel: str, message: str, description: str) -> dict[str, Any]:
    return {"action": action, "description": description, "channel": {"$ref": f"#/channels/{channel}"},
            "messages": [{"$ref": f"#/channels/{channel}/messages/{message}"}]}


def _message(title: str, payload: dict[str, Any], name: str, key: str) -> dict[str, Any]:
    topic = CUSTOMER_LIFECYCLE if name == "customer-lifecycle" else CUSTOMER_EVENTS
    headers = {
        "content-type": {"type": "string", "const": CONTENT_TYPE.decode()},
        "ce_specversion": {"type": "string", "const": SPEC_VERSION.decode()},
        "ce_id": {"type": "string", "format": "uuid", "description": "the event's `event_id`"},
        "ce_type": {"type": "string", "pattern": f"^{topic}\\.[a-z_]+$",
                    "description": "the topic and the event's `type`, e.g. "
                                   f"`{topic}.{'stage_changed' if topic == CUSTOMER_LIFECYCLE else 'purchase'}`"},
        "ce_source": {"type": "string", "description": f"`{LIFECYCLE_SOURCE.decode()}` for a lifecycle event; `/` "
                                                      "and the event's percent-encoded `source` for a customer event"},
        "ce_time": {"type": "string", "format": "date-time", "description": "the event's `occurred_at`"},
    }
    required = list(headers)
    if topic == CUSTOMER_LIFECYCLE:
        headers[CHECKPOINT_HEADER] = {"type": "string", "description": "written by members of a consumer group: "
                                      "the checkpoint the record was committed with"}
    return {
        "name": name,
        "title": title,
        "contentType": CONTENT_TYPE.decode(),
        "summary": "The value is one JSON object; the record timestamp is the event's `occurred_at` (CreateTime).",
        "headers": {"type": "object", "properties": headers, "required": required},
        "payload": {"schemaFormat": SCHEMA_FORMAT, "schema": {"$id": f"{_SCHEMA_ID}{name}", **payload}},
        "bindings": {"kafka": {"key": {"type": "string", "description": key}, "bindingVersion": "0.5.0"}},
    }


def _dead_letter() -> dict[str, Any]:
    def text(description: str) -> dict[str, Any]:
        return {"type": "string", "description": description}

    return {
        "name": "customer-events-dlq",
        "title": "One refused record",
        "summary": "The value is the original record's value, unchanged (its bytes may be anything).",
        "headers": {"type": "object", "required": ["__connect.errors.topic", "__connect.errors.partition",
                                                   "__connect.errors.offset",
                                                   "__connect.errors.exception.class.name",
                                                   "__connect.errors.exception.message"],
                    "properties": {
                        "__connect.errors.topic": text("the topic the record came from"),
                        "__connect.errors.partition": text("its partition, in decimal"),
                        "__connect.errors.offset": text("its offset, in decimal"),
                        "__connect.errors.exception.class.name": text(
                            "the kind of refusal: too_large, invalid, out_of_range, engine_failed or time "
                            "(`lifecycle dead-letters` explains each)"),
                        "__connect.errors.exception.message": text("why, in words"),
                        "lifecycle.dead_letter.bytes": text("the record's size in bytes, in decimal"),
                        CHECKPOINT_HEADER: text("the checkpoint the record was committed with"),
                    }},
        "payload": {"description": "the original record's value"},
    }
