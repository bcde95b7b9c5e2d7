"""The AsyncAPI document of the Kafka topics (`lifecycle schema asyncapi`,
docs/asyncapi.json): valid against AsyncAPI's own schema, kept equal to what the engine
generates, and true to the records the engine writes: their headers and their values.

tests/fixtures/asyncapi-3.0.0.schema.json is AsyncAPI's JSON Schema of version 3.0.0
documents, from the npm package @asyncapi/specs 6.11.1 (Apache-2.0), unchanged."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from jsonschema import Draft7Validator, Draft202012Validator, FormatChecker

from consumers.commands.asyncapi import asyncapi_document
from consumers.group.changelog import CHECKPOINT_HEADER
from consumers.group.transactional_outputs import _connect_headers
from consumers.logs import record_headers
from projections.catalog.dead_letters import DeadLetter
from schemas import decode_event, decode_lifecycle_event
from consumers.settings import Settings
from tests.cli import ROOT, lifecycle

FIXTURES = Path(__file__).parent / "fixtures"
ASYNCAPI = Draft7Validator(json.loads((FIXTURES / "asyncapi-3.0.0.schema.json").read_text()))


def _lines(name: str) -> list[bytes]:
    return [line for line in (FIXTURES / name).read_bytes().splitlines() if line.strip()]


def test_the_document_is_valid_asyncapi_and_the_checked_in_copy_is_current(tmp_path, capsys):
    document = asyncapi_document()
    assert not list(ASYNCAPI.iter_errors(document))
    broken = copy.deepcopy(document)
    broken["operations"]["subscribeToLifecycleEvents"]["action"] = "subscribe"  # AsyncAPI 2's word
    assert list(ASYNCAPI.iter_errors(broken)), "the validator finds what is wrong"
    assert lifecycle(Settings(home=tmp_path), "schema", "asyncapi") == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == document == json.loads((ROOT / "docs" / "asyncapi.json").read_text()), \
        "docs/asyncapi.json is stale: `lifecycle schema asyncapi > docs/asyncapi.json`"


def _message(name: str) -> dict:  # type: ignore[type-arg]
    return asyncapi_document()["components"]["messages"][name]


def test_the_values_the_logs_hold_validate_against_their_messages_payloads():
    for name, lines, decode in (("customerEvent", _lines("events_v1.jsonl"), decode_event),
                                ("lifecycleEvent", _lines("lifecycle_events_v1.jsonl"), decode_lifecycle_event)):
        payload = _message(name)["payload"]
        assert payload["schemaFormat"] == "application/schema+json;version=draft-2020-12"
        validator = Draft202012Validator(payload["schema"], format_checker=FormatChecker())
        for line in lines:
            decode(line)
            assert not list(validator.iter_errors(json.loads(line))), line
        assert list(validator.iter_errors({"type": "no_such_event"}))


def test_the_headers_documented_are_the_headers_written():
    for name, line, decode, topic in (("customerEvent", _lines("events_v1.jsonl")[0], decode_event, "customer-events"),
                                      ("lifecycleEvent", _lines("lifecycle_events_v1.jsonl")[0],
                                       decode_lifecycle_event, "customer-lifecycle")):
        written = {key: value.decode() for key, value in record_headers.headers(topic, decode(line))}
        schema = _message(name)["headers"]
        documented = set(schema["properties"]) - {CHECKPOINT_HEADER}
        assert documented == set(written) == set(schema["required"])
        validator = Draft202012Validator(schema, format_checker=FormatChecker())
        assert not list(validator.iter_errors(written)), written
        assert list(validator.iter_errors({**written, "ce_specversion": "0.3"}))

    letter = DeadLetter("customer-events:3", 42, "malformed JSON", b"x", 1, "invalid")
    written = {key: value.decode() for key, value in _connect_headers(letter)}
    schema = _message("deadLetter")["headers"]
    assert set(schema["properties"]) - {CHECKPOINT_HEADER} == set(written)
    assert not list(Draft202012Validator(schema).iter_errors(written))
