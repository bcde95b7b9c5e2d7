"""`lifecycle dead-letters`, on both logs: what the engine refused is listed by kind with
what to do, personal data in it stays masked, and once the policy is corrected a replay
derives it again."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from consumers.logs.event_log import CUSTOMER_EVENTS
from consumers.logs import open_event_log
from consumers.settings import Settings
from lifecycle.population import PopulationSpec, generate
from schemas import decode_event
from tests.cli import lifecycle

VALID = [line.strip() for line in generate(PopulationSpec(customers=20, seed=5, days=30))]
PURCHASE = json.loads(next(line for line in VALID if b'"type":"purchase"' in line))
CUSTOMER = PURCHASE["customer_id"]
# A valid purchase of a known customer, too large for SMALL's limit, not for the default's.
BIG = json.dumps({**PURCHASE, "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, "dead-letters/big")),
                  "order_id": "o-big", "pad": "x" * 2_000}).encode()
SMALL = 'version = "small-1"\n[input]\nmax_event_bytes = 1024\n'
LARGE = 'version = "large-1"\n[input]\nmax_event_bytes = 65536\n'
HINT = "see `lifecycle dead-letters`; once the producer or the policy is fixed, `lifecycle replay --policy FILE`"


def _file(path: Path, content: str | bytes) -> str:
    if isinstance(content, str):
        path.write_text(content)
    else:
        path.write_bytes(content)
    return str(path)


def _publish_with_big(settings: Settings, tmp_path: Path) -> None:
    assert lifecycle(settings, "publish", _file(tmp_path / "events.jsonl", b"\n".join([*VALID, BIG]) + b"\n")) == 0


def _run(settings: Settings, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[str, str]:
    capsys.readouterr()
    assert lifecycle(settings, *args) == 0
    captured = capsys.readouterr()
    return captured.out, captured.err


def _events_of(settings: Settings, capsys: pytest.CaptureFixture[str], customer: str) -> int:
    out, _ = _run(settings, capsys, "sql", f"SELECT events FROM customers WHERE customer_id = '{customer}'",
                  "--format", "json")
    return json.loads(out)[0]["events"]


def test_a_refused_record_is_listed_by_kind_with_what_to_do(settings, tmp_path, capsys):
    _publish_with_big(settings, tmp_path)
    _, err = _run(settings, capsys, "process", "--once", "--no-clock", "--policy", _file(tmp_path / "small.toml", SMALL))
    assert "(1 dead letters" in err and HINT in err

    text, _ = _run(settings, capsys, "dead-letters")
    assert text.startswith("1 dead letters: ")
    assert "too_large: 1 - larger than the policy's `[input] max_event_bytes`" in text
    assert "what to do: correct the producer" in text and "`lifecycle replay --policy FILE`" in text
    assert "bytes, over the policy's limit of 1,024 ([input] max_event_bytes)" in text
    assert f"payload ({len(BIG):,} bytes): {BIG[:120].decode()} ..." in text
    assert "no record is held back by the time rule" in text

    out, _ = _run(settings, capsys, "dead-letters", "--format", "json")
    document = json.loads(out)
    assert document["dead_letters"] == 1 and document["held_records"] == {"count": 0, "examples": []}
    (kind,) = document["kinds"]
    assert (kind["kind"], kind["count"]) == ("too_large", 1) and "new `version`" in kind["fix"]
    (example,) = kind["examples"]
    assert example["payload"] == BIG[:120].decode() and example["payload_bytes"] == len(BIG)
    assert example["truncated"] and not example["masked"]
    assert f"  {example['partition']} @ {example['position']}: {len(BIG):,} bytes, over" in text

    out, _ = _run(settings, capsys, "dead-letters", "--kind", "invalid")
    assert out == "no dead letters of kind invalid\n"


def test_a_replay_under_a_corrected_policy_derives_the_dead_letter_again(settings, tmp_path, capsys):
    _publish_with_big(settings, tmp_path)
    small = _file(tmp_path / "small.toml", SMALL)
    _run(settings, capsys, "process", "--once", "--no-clock", "--policy", small)
    refused = _events_of(settings, capsys, CUSTOMER)
    _, err = _run(settings, capsys, "replay", "--workers", "1", "--policy", small)
    assert ", 1 dead letters, " in err and HINT in err

    _, err = _run(settings, capsys, "replay", "--workers", "1", "--policy", _file(tmp_path / "large.toml", LARGE))
    assert ", 0 dead letters, " in err and HINT not in err
    out, _ = _run(settings, capsys, "dead-letters")
    assert out == "no dead letters, and no record held back by the time rule\n"
    assert _events_of(settings, capsys, CUSTOMER) == refused + 1


def test_personal_data_in_a_dead_letter_is_stored_masked(settings, capsys):
    """A profile update a producer wrote past validation: its birth date is a number."""
    # The personal fields first, so that they are within the excerpt shown.
    event = {"name": "Ada Lovelace", "email": "ada@example.com", "type": "profile_updated",
             "event_id": "10000000-0000-4000-8000-0000000000ad", "customer_id": "c-ada",
             "occurred_at": "2025-01-11T09:00:00Z", "source": "crm"}
    raw = json.dumps({**event, "birth_date": 18151210}).encode()
    with open_event_log(settings, CUSTOMER_EVENTS) as log:
        log.append([(decode_event(json.dumps(event).encode()), raw)])
    _run(settings, capsys, "process", "--once", "--no-clock")

    out, _ = _run(settings, capsys, "dead-letters")
    assert "Ada Lovelace" not in out and "ada@example.com" not in out
    assert "personal data masked (the record is on the log at this position)" in out
    assert '{"name":"A*** (12 characters)","email":"a*** (15 characters)"' in out
    assert "at `$.birth_date`" in out

    document = json.loads(_run(settings, capsys, "dead-letters", "--format", "json")[0])
    (example,) = document["kinds"][0]["examples"]
    assert example["masked"] and "Ada" not in example["payload"]

    # Stored masked: no analyst's query reads it in clear either.
    out, _ = _run(settings, capsys, "sql", "SELECT payload_masked, CAST(payload AS VARCHAR) AS p FROM dead_letters")
    assert "Ada Lovelace" not in out and "ada@example.com" not in out and "True" in out
