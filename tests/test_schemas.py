"""The event contract: what is accepted, what is rejected and how the error reads."""

from __future__ import annotations

import json
import re
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import EVENT_TYPES, Clock, InvalidEvent, Purchase, customer_events_schema, decode_event, encode_event
from lifecycle.population import PopulationSpec, generate
from schemas.events import MAX_AMOUNT_MINOR
from tests.cli import lifecycle

FIXTURES = Path(__file__).parent / "fixtures"
V1 = FIXTURES / "events_v1.jsonl"


def _v1() -> list[bytes]:
    return V1.read_bytes().splitlines()


def test_every_type_has_a_version_1_payload_that_still_decodes():
    events = [decode_event(line) for line in _v1()]
    assert sorted(e.__struct_config__.tag for e in events) == sorted(EVENT_TYPES)


def test_a_clock_has_no_customer():
    clock = decode_event(_v1()[-1])
    assert isinstance(clock, Clock) and not hasattr(clock, "customer_id")


def test_unknown_fields_are_ignored():
    line = json.loads(_v1()[1])
    line["loyalty_card"] = {"added": "by a newer producer"}
    assert isinstance(decode_event(json.dumps(line)), Purchase)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": "teleport"}, "Invalid value 'teleport' - at `$.type`"),
        ({"customer_id": ""}, "at `$.customer_id`"),
        ({"customer_id": "x" * 129}, "at `$.customer_id`"),
        ({"event_id": "not-a-uuid"}, "at `$.event_id`"),
        ({"occurred_at": "2025-01-02T09:00:00"}, "timezone component - at `$.occurred_at`"),
        ({"occurred_at": "yesterday"}, "at `$.occurred_at`"),
        ({"amount_minor": -1}, "Expected `int` >= 0 - at `$.amount_minor`"),
        ({"amount_minor": 1.5}, "Expected `int`, got `float` - at `$.amount_minor`"),
        ({"currency": "eur"}, "at `$.currency`"),
        ({"currency": "EURO"}, "at `$.currency`"),
        ({"order_id": None}, "at `$.order_id`"),
    ],
)
def test_a_contract_violation_names_the_field(change, message):
    line = {**json.loads(_v1()[1]), **change}
    with pytest.raises(InvalidEvent) as error:
        decode_event(json.dumps(line))
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"type":"survey_answered","event_id":"10000000-0000-4000-8000-000000000007",'
         '"customer_id":"c1","occurred_at":"2025-01-07T09:00:00Z","source":"s"}', "needs `nps`"),
        ('{"type":"survey_answered","event_id":"10000000-0000-4000-8000-000000000007",'
         '"customer_id":"c1","occurred_at":"2025-01-07T09:00:00Z","source":"s","nps":11}', "at `$.nps`"),
        ('{"type":"contact","event_id":"10000000-0000-4000-8000-000000000001","customer_id":"c1",'
         '"occurred_at":"2025-01-01T09:00:00Z","source":"s","channel":"pigeon","direction":"inbound"}',
         "at `$.channel`"),
        ('{"type":"purchase"', "malformed JSON"),
        ("[]", "Expected `object`, got `array`"),
    ],
)
def test_other_violations(line, message):
    with pytest.raises(InvalidEvent, match=re.escape(message)):
        decode_event(line)


def test_json_schema_lists_every_type(capsys):
    schema = customer_events_schema()
    tags = {
        definition["properties"]["type"]["const"]
        for definition in schema["$defs"].values()
        if "type" in definition.get("properties", {})
    }
    assert tags == set(EVENT_TYPES)
    assert len(schema["oneOf"]) == len(EVENT_TYPES)


def test_schema_command_prints_the_contract(tmp_path, capsys):
    from consumers.settings import Settings

    assert lifecycle(Settings(home=tmp_path), "schema") == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(customer_events_schema()))


# What `str.isprintable` accepts: no control, format, surrogate, private or separator
# characters other than the plain space.
PRINTABLE = st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs")) | st.just(" ")


@given(
    amount=st.integers(min_value=0, max_value=MAX_AMOUNT_MINOR),
    order=st.text(PRINTABLE, min_size=1, max_size=40),
    customer=st.text(PRINTABLE, min_size=1, max_size=128),
)
def test_encoding_round_trips(amount, order, customer):
    event = decode_event(_v1()[1])
    changed = msgspec.structs.replace(event, amount_minor=amount, order_id=order, customer_id=customer)
    assert decode_event(encode_event(changed)) == changed


def _one_of_each() -> list:
    return [decode_event(line) for line in _v1()]


@pytest.mark.parametrize("event", _one_of_each(), ids=lambda e: e.__struct_config__.tag)
def test_every_identifier_is_checked_and_named(event):
    """The fast check (`_names`) joins exactly the fields `identifiers` lists, so a
    control character in any of them is refused, naming that field."""
    fields = {name: f"<{name}>" for name in event.identifiers}
    named = msgspec.structs.replace(event, **fields)
    assert named._names() == "".join(fields.values())
    raw = json.loads(encode_event(event))
    for name in event.identifiers:
        with pytest.raises(InvalidEvent, match=re.escape(f"(U+001B) - at `$.{name}`")):
            decode_event(json.dumps({**raw, name: "x\x1b[31m"}))


def test_a_value_model_fit_names_a_bad_parameter():
    fit = next(json.loads(line) for line in _v1() if b"value_model_fitted" in line)
    fit["gamma_gamma"]["q"] = 0.5  # an unbounded mean spend
    with pytest.raises(InvalidEvent) as error:
        decode_event(json.dumps(fit))
    assert "at `$.gamma_gamma.q`" in str(error.value)


def test_the_published_schemas_are_draft_2020_12_and_real_payloads_validate(tmp_path, capsys):
    from jsonschema import Draft202012Validator

    from consumers.settings import Settings
    from schemas import customer_lifecycle_schema
    from schemas.lifecycle_events import DIMENSION_VALUES

    events, changes = (Draft202012Validator(make()) for make in (customer_events_schema, customer_lifecycle_schema))
    for validator in (events, changes):
        Draft202012Validator.check_schema(validator.schema)
        assert validator.schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    raw = [line for line in (FIXTURES / "events_v1.jsonl").read_text().splitlines() if line.strip()]
    assert raw and all(events.is_valid(json.loads(line)) for line in raw)

    settings = Settings(home=tmp_path / "home")
    source = tmp_path / "population.jsonl"
    source.write_bytes(b"\n".join(generate(PopulationSpec(customers=300, seed=4, days=400))) + b"\n")
    assert lifecycle(settings, "publish", str(source)) == 0
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    capsys.readouterr()
    assert lifecycle(settings, "tail") == 0
    derived = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    old = [json.loads(line) for line in (FIXTURES / "lifecycle_events_v1.jsonl").read_text().splitlines() if line]
    assert {e["dimension"] for e in derived} == set(DIMENSION_VALUES)
    for event in [*derived, *old]:
        assert not list(changes.iter_errors(event)), event
    wrong = {**derived[0], "to_value": "platinum" if derived[0]["dimension"] != "loyalty_tier" else "advocate"}
    assert not changes.is_valid(wrong), "a value of another dimension is refused"
