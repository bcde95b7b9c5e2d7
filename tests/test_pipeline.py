"""From published JSON lines to a DuckDB answer, on both logs, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eventsourcing.persistence import Tracking
from kafka import KafkaProducer

from consumers.logs.event_log import CUSTOMER_EVENTS
from consumers.logs import open_event_log
from consumers.settings import Settings
from schemas import decode_event
from tests.cli import lifecycle

FIXTURES = Path(__file__).parent / "fixtures"
MIXED = FIXTURES / "mixed_valid_invalid.jsonl"

EXPECTED_ERRORS = [
    "line 2: malformed JSON",
    "line 3: Object missing required field `order_id`",
    "line 4: Expected `int`, got `str` - at `$.amount_minor`",
    "line 5: Invalid value 'teleport' - at `$.type`",
    "line 6: Expected `int` >= 0 - at `$.amount_minor`",
    "line 7: Expected `str` matching regex '^[A-Z]{3}$' - at `$.currency`",
    "line 8: Expected `datetime` with a timezone component - at `$.occurred_at`",
    "line 15: a survey answer needs `nps` (0-10) or `csat` (1-5)",
]
EXPECTED_CUSTOMERS = [
    {"customer_id": "c-ada", "stage": "repeat", "purchases": 2, "events": 3},
    {"customer_id": "c-bob", "stage": "first_time", "purchases": 1, "events": 2},
    {"customer_id": "c-cyd", "stage": "prospect", "purchases": 0, "events": 1},
]


def query(settings: Settings, capsys: pytest.CaptureFixture[str], sql: str) -> list[dict]:
    capsys.readouterr()
    assert lifecycle(settings, "sql", sql, "--format", "json") == 0
    return json.loads(capsys.readouterr().out)


def test_invalid_lines_are_reported_and_valid_lines_reach_customers(settings, capsys):
    assert lifecycle(settings, "publish", str(MIXED)) == 1
    errors = capsys.readouterr().err.splitlines()
    for expected, line in zip(EXPECTED_ERRORS, errors, strict=False):
        assert line.startswith(expected), (expected, line)
    assert len([e for e in errors if e.startswith("line ")]) == len(EXPECTED_ERRORS)
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    rows = query(settings, capsys, "SELECT customer_id, stage, purchases, events FROM customers ORDER BY 1")
    assert rows == EXPECTED_CUSTOMERS


def test_publishing_again_appends_nothing(settings, capsys):
    assert lifecycle(settings, "publish", str(MIXED)) == 1
    assert lifecycle(settings, "publish", str(MIXED)) == 1
    assert "published 0 events (6 already on the log" in capsys.readouterr().err
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    assert "processed 6 events" in capsys.readouterr().err


def test_a_valid_file_exits_zero(settings, tmp_path, capsys):
    valid = tmp_path / "valid.jsonl"
    lines = [line for line in MIXED.read_bytes().splitlines() if line.strip()]
    valid.write_bytes(b"\n".join(line for line in lines if _is_valid(line)) + b"\n")
    assert lifecycle(settings, "publish", str(valid)) == 0
    assert "published 6 events" in capsys.readouterr().err


def test_processing_again_changes_nothing(settings, capsys):
    lifecycle(settings, "publish", str(MIXED))
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    before = query(settings, capsys, "SELECT * FROM customers ORDER BY 1")
    positions = query(settings, capsys, "SELECT * FROM tracking ORDER BY 1")
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    assert "processed 0 events" in capsys.readouterr().err
    assert query(settings, capsys, "SELECT * FROM customers ORDER BY 1") == before
    assert query(settings, capsys, "SELECT * FROM tracking ORDER BY 1") == positions


def test_invalid_records_on_the_log_become_counted_dead_letters(settings, capsys):
    lines = [line for line in MIXED.read_bytes().splitlines() if line.strip()]
    valid = [line for line in lines if _is_valid(line)]
    # A producer that skipped validation: the raw bytes on the log are not an event.
    smuggled = (decode_event(valid[0]), b'{"type":"purchase","customer_id":"c-eve"}')
    with open_event_log(settings, CUSTOMER_EVENTS) as log:
        log.append([smuggled, *((decode_event(line), line) for line in valid[1:])])
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    assert "(1 dead letters" in capsys.readouterr().err
    dead = query(settings, capsys, "SELECT reason, payload FROM dead_letters")
    assert len(dead) == 1
    assert "missing required field" in dead[0]["reason"]
    assert "c-eve" in dead[0]["payload"]
    rows = query(settings, capsys, "SELECT count(*) AS n FROM customers")
    assert rows == [{"n": 3}]


def test_sql_prints_table_csv_and_json(settings, capsys):
    lifecycle(settings, "publish", str(MIXED))
    lifecycle(settings, "process", "--once", "--no-clock")
    capsys.readouterr()
    sql = "SELECT stage, count(*) AS n FROM customers GROUP BY 1 ORDER BY 1"
    assert lifecycle(settings, "sql", sql) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["stage", "n"] and table[-1] == "(3 rows)"
    assert lifecycle(settings, "sql", sql, "--format", "csv") == 0
    assert capsys.readouterr().out.splitlines() == ["stage,n", "first_time,1", "prospect,1", "repeat,1"]


def test_sql_is_read_only(settings, capsys):
    lifecycle(settings, "publish", str(MIXED))
    lifecycle(settings, "process", "--once", "--no-clock")
    capsys.readouterr()
    assert lifecycle(settings, "sql", "DELETE FROM customer_rows") == 2
    assert "read-only" in capsys.readouterr().err
    assert query(settings, capsys, "SELECT count(*) AS n FROM customers") == [{"n": 3}]


def test_personal_data_is_kept_apart_and_erased(settings, tmp_path, capsys):
    events = tmp_path / "profile.jsonl"
    base = '"customer_id":"c-1","source":"crm"'
    events.write_text(
        "\n".join(
            [
                '{"type":"profile_updated","event_id":"00000000-0000-4000-8000-0000000000a1",'
                f'{base},"occurred_at":"2025-01-01T00:00:00Z","name":"Ada","city":"Lyon"}}',
                '{"type":"profile_updated","event_id":"00000000-0000-4000-8000-0000000000a2",'
                f'{base},"occurred_at":"2025-01-02T00:00:00Z","city":"Paris"}}',
                '{"type":"profile_updated","event_id":"00000000-0000-4000-8000-0000000000b1",'
                '"customer_id":"c-2","source":"crm","occurred_at":"2025-01-02T00:00:00Z","name":"Bo"}',
            ]
        )
    )
    assert lifecycle(settings, "publish", str(events)) == 0
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    profiles = query(settings, capsys, "SELECT customer_id, name, city FROM customer_profiles ORDER BY 1")
    assert [(p["customer_id"], p["city"] is None) for p in profiles] == [("c-1", False), ("c-2", True)]
    assert all(p["name"].startswith("sealed:") and "Ada" not in p["name"] for p in profiles), "sealed for analysts"
    capsys.readouterr()
    assert lifecycle(settings, "explain", "c-1", "--show-personal", "--role", "privacy", "--format", "json") == 0
    assert json.loads(capsys.readouterr().out)["profile"] == {"name": "Ada", "city": "Paris"}, "merged field by field"
    erase = tmp_path / "erase.jsonl"
    erase.write_text(
        '{"type":"customer_erased","event_id":"00000000-0000-4000-8000-0000000000a3",'
        f'{base},"occurred_at":"2025-01-03T00:00:00Z"}}\n'
    )
    assert lifecycle(settings, "publish", str(erase)) == 0
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    assert query(settings, capsys, "SELECT customer_id FROM customer_profiles") == [{"customer_id": "c-2"}]
    assert query(settings, capsys, "SELECT erased FROM customers WHERE customer_id = 'c-1'") == [{"erased": True}]


def _is_valid(line: bytes) -> bool:
    try:
        decode_event(line)
    except Exception:
        return False
    return True


def test_a_duplicate_that_got_past_publishing_is_ignored_and_counted(settings, capsys):
    lines = [line for line in MIXED.read_bytes().splitlines() if line.strip() and _is_valid(line)]
    purchase = next(line for line in lines if b'"o-5"' in line)
    lifecycle(settings, "publish", str(MIXED))
    _smuggle(settings, purchase)
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    rows = query(settings, capsys, "SELECT purchases, duplicates_ignored FROM customers WHERE customer_id = 'c-ada'")
    assert rows == [{"purchases": 2, "duplicates_ignored": 1}]


def _smuggle(settings: Settings, raw: bytes) -> None:
    """Write `raw` to the log past its event-id index, as a racing producer could."""
    if settings.kafka is None:
        with open_event_log(settings, CUSTOMER_EVENTS) as log:
            log.recorder.record([raw], Tracking("a-racing-producer", 1))
        return
    producer = KafkaProducer(bootstrap_servers=settings.kafka)
    producer.send(CUSTOMER_EVENTS, key=b"c-ada", value=raw).get(timeout=30)
    producer.close()


def test_the_same_id_with_other_content_is_a_counted_conflict(settings, tmp_path, capsys):
    lines = [line for line in MIXED.read_bytes().splitlines() if line.strip() and _is_valid(line)]
    assert lifecycle(settings, "publish", str(MIXED)) == 1
    original = json.loads(lines[1])
    changed = tmp_path / "changed.jsonl"
    changed.write_text(json.dumps({**original, "source": "another-system"}) + "\n" + lines[1].decode() + "\n")
    capsys.readouterr()
    assert lifecycle(settings, "publish", str(changed)) == 1
    err = capsys.readouterr().err
    assert f"line 1: event_id {original['event_id']} is already on the log with other content (a conflict)" in err
    assert "published 0 events (1 already on the log, 1 conflicts, 0 invalid lines of 2)" in err


def test_as_of_is_the_latest_time_that_reached_each_customer(settings, tmp_path, capsys):
    """A clock reaches every customer of its partition, also those it finds nothing to
    decide for (and whose rows it therefore does not rewrite)."""
    lifecycle(settings, "publish", str(MIXED))
    clock = tmp_path / "clock.jsonl"
    clock.write_text('{"type":"clock","event_id":"00000000-0000-4000-8000-00000000c10c",'
                     '"occurred_at":"2025-02-01T00:00:00Z","source":"clock"}\n')
    assert lifecycle(settings, "publish", str(clock)) == 0
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    rows = query(settings, capsys, "SELECT customer_id, as_of, last_event_at FROM customers ORDER BY 1")
    assert [row["as_of"] for row in rows] == [
        max(row["last_event_at"], "2025-02-01T00:00:00+00:00") for row in rows]
    assert sum(row["as_of"] == "2025-02-01T00:00:00+00:00" for row in rows) == 2
    assert query(settings, capsys, "SELECT count(*) AS n FROM dead_letters") == [{"n": 0}]
