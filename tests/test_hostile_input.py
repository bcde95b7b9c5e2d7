"""Hostile input, on both logs: no record stops the engine or moves time for everyone.

A poison corpus (every kind of bad record found when the engine was tried as a new
user would) goes between valid events, once through `lifecycle publish` and once
written straight onto the log by a raw producer that validates nothing. Either way the
valid events are all derived exactly as without the poison, each bad record is refused
with its line or dead-lettered with its reason, the counts add up, and no command shows
a traceback.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from eventsourcing.persistence import Tracking
from kafka import KafkaProducer

from consumers.processing.checkpoint import CheckpointPolicy
from consumers.processing.engine_session import EngineSession
from consumers.logs.event_log import CUSTOMER_EVENTS
from consumers.logs import open_event_log
from consumers.settings import Settings
from lifecycle.engine import LifecycleEngine
from lifecycle.population import PopulationSpec, generate
from schemas.events import MAX_AMOUNT_MINOR
from tests.cli import lifecycle

SPEC = PopulationSpec(customers=40, seed=5, days=60)
VALID = [line.strip() for line in generate(SPEC)]
PURCHASE = next(line for line in VALID if b'"type":"purchase"' in line)


def _event(type_: str, n: int, occurred_at: str = "2025-01-20T10:00:00Z", **fields: object) -> bytes:
    body = {"type": type_, "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"poison/{n}")),
            "occurred_at": occurred_at, "source": "poison", **fields}
    if type_ != "clock":
        body.setdefault("customer_id", "p-1")
    return json.dumps(body).encode()


def _purchase(n: int, **fields: object) -> bytes:
    return _event("purchase", n, **{"order_id": f"o{n}", "amount_minor": 100, "currency": "EUR", **fields})


def _nested(depth: int) -> bytes:
    return _purchase(5)[:-1] + b', "x": ' + b"[" * depth + b"]" * depth + b"}"


def _conflict() -> bytes:
    """The first valid purchase's id, with another amount."""
    event = json.loads(PURCHASE)
    event["amount_minor"] += 1
    return json.dumps(event).encode()


# (a bad line, what `publish` says of it). Each is refused at publish; the engine
# refuses it again when a producer that validates nothing writes it to the log.
POISON = [
    (_purchase(1, amount_minor=2**63), "Expected `int` <= 10000000000000 - at `$.amount_minor`"),
    (_event("clock", 2, "9999-12-31T00:00:00Z"), "outside the plausible range of event times"),
    (_event("contact", 3, "0001-01-01T00:00:00Z", channel="phone", direction="inbound"), "outside the plausible range"),
    (b'{"type":"purchase","customer_id":"p-\xff\xfe"}', "not UTF-8 text"),
    (_nested(10_000), "nested too deeply"),
    (_purchase(6, currency="XYZ"), "'XYZ' is not an ISO 4217 currency code - at `$.currency`"),
    (_purchase(7, customer_id="p\n2"), "(U+000A) - at `$.customer_id`"),
    (_purchase(8, customer_id="\x1b[31mp-3"), "(U+001B) - at `$.customer_id`"),
    (_purchase(9, order_id="o\u202e9"), "(U+202E) - at `$.order_id`"),
    (b"[]", "Expected `object`, got `array`"),
    (b'{"type":', "malformed JSON"),
]
HUGE = (_purchase(10)[:-1] + b', "pad": "' + b"x" * 10_000_000 + b'"}', "longer than the limit of 65,536 bytes")
FUTURE = (_purchase(11, occurred_at="2099-06-01T00:00:00Z"), "ahead of this machine's clock")
CONFLICT = (_conflict(), "is already on the log with other content (a conflict)")
UNPRICED = _purchase(12, customer_id="p-4", currency="XTS")  # ISO 4217 (for testing), no rate in the policy


def _corpus() -> tuple[list[bytes], dict[int, str]]:
    """Valid lines with the poison spread between them, the conflict last (after the
    line it conflicts with); the expected message for each bad line number."""
    bad = [*POISON, HUGE, FUTURE, CONFLICT]
    lines, expected = list(VALID), {}
    step = len(VALID) // (len(bad) + 1)
    for n, (line, message) in enumerate(bad[:-1], start=1):
        lines.insert(n * step + n - 1, line)
    lines.append(CONFLICT[0])
    lines.insert(len(lines) // 2, UNPRICED)
    for number, line in enumerate(lines, start=1):
        for poison, message in bad:
            if line is poison:
                expected[number] = message
    return lines, expected


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _query(settings: Settings, capsys: pytest.CaptureFixture[str], sql: str) -> list[dict]:
    capsys.readouterr()
    assert lifecycle(settings, "sql", sql, "--format", "json") == 0
    return json.loads(capsys.readouterr().out)


CUSTOMERS = "SELECT * EXCLUDE (duplicates_ignored) FROM customers ORDER BY customer_id"


def _reference(settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str], valid: list[bytes]) -> list[dict]:
    """The customers derived from the `valid` lines alone, in a home (and topic) of their own."""
    if settings.kafka is None:
        reference = Settings(home=tmp_path / "reference")
    else:
        from tests.broker import TansuBroker

        broker = TansuBroker().__enter__()
        reference = Settings(home=tmp_path / "reference", kafka=broker.bootstrap, partitions=settings.partitions)
    try:
        assert lifecycle(reference, "publish", str(_write(tmp_path / "valid.jsonl", valid))) == 0
        assert lifecycle(reference, "process", "--once", "--no-clock") == 0
        return _query(reference, capsys, CUSTOMERS)
    finally:
        if settings.kafka is not None:
            broker.__exit__(None, None, None)


def test_publish_refuses_each_bad_line_and_takes_every_valid_one(settings, tmp_path, capsys):
    lines, expected = _corpus()
    assert lifecycle(settings, "publish", str(_write(tmp_path / "poison.jsonl", lines))) == 1
    err = capsys.readouterr().err
    reported = {int(line.split(":")[0].removeprefix("line ")): line for line in err.splitlines() if line.startswith("line ")}
    assert sorted(reported) == sorted(expected)
    for number, message in expected.items():
        assert message in reported[number], (number, reported[number])
    assert f"published {len(VALID) + 1} events (0 already on the log, 1 conflicts, {len(expected) - 1} invalid" in err
    assert "Traceback" not in err

    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    err = capsys.readouterr().err
    assert f"processed {_records_on_the_log(settings, capsys)} events" in err
    assert "(0 dead letters" in err
    assert "purchases in currencies the policy has no rate for (XTS 1)" in err
    assert _query(settings, capsys, "SELECT unpriced_purchases FROM customers WHERE customer_id = 'p-4'") == [
        {"unpriced_purchases": 1}]
    valid = [line for number, line in enumerate(lines, start=1) if number not in expected]
    assert _query(settings, capsys, CUSTOMERS) == _reference(settings, tmp_path, capsys, valid)


def _records_on_the_log(settings: Settings, capsys: pytest.CaptureFixture[str]) -> int:
    """What `lifecycle tail` reads (on Kafka, a clock is one record per partition)."""
    capsys.readouterr()
    assert lifecycle(settings, "tail", CUSTOMER_EVENTS) == 0
    return len(capsys.readouterr().out.splitlines())


# What a producer that validates nothing can put on the log, beyond the poison above:
# a record too large to read, and on Kafka an empty record (a tombstone); and a purchase
# and a clock dated 2099 (valid by the contract, implausibly far ahead of the log's
# time), which wait for time to confirm them (lifecycle/partition_time.py).
RAW_ONLY = [
    (_purchase(13)[:-1] + b', "pad": "' + b"x" * 100_000 + b'"}', "over the policy's limit of 65,536 ([input] max_event_bytes)"),
]
FAR_AHEAD = [
    (FUTURE[0], "a customer event dated 2099-06-01"),
    (_event("clock", 14, "2099-01-01T00:00:00Z"), "a clock dated 2099-01-01"),
]
TOMBSTONE = (b"", "malformed JSON")


def _write_raw(settings: Settings, records: list[bytes]) -> None:
    """Write `records` as they are, in order, past any validation: on Kafka, to one
    partition; on the embedded log, one segment each."""
    if settings.kafka is None:
        with open_event_log(settings, CUSTOMER_EVENTS) as log:
            for number, record in enumerate(records, start=1):
                log.recorder.record([record], Tracking("a-raw-producer", number))
        return
    producer = KafkaProducer(bootstrap_servers=settings.kafka, max_request_size=2_000_000)
    with open_event_log(settings, CUSTOMER_EVENTS):
        pass  # the topic, with the engine's partitions
    for record in records:
        producer.send(CUSTOMER_EVENTS, key=b"raw", value=record if record else None, partition=0)
    producer.flush()
    producer.close()


def test_the_engine_dead_letters_what_a_raw_producer_wrote(settings, tmp_path, capsys):
    """The corpus straight onto the log: every bad record is a dead letter with its
    reason, the far-ahead ones wait, the valid ones are derived as if alone, and every
    record read is processed, dead-lettered or waiting."""
    bad = [*POISON, *RAW_ONLY, *([TOMBSTONE] if settings.kafka else [])]
    records = list(VALID)
    for n, (record, _) in enumerate([*bad, *FAR_AHEAD]):
        records.insert(len(VALID) * (n + 1) // (len(bad) + len(FAR_AHEAD) + 1) + n, record)
    records.insert(len(records) // 2, UNPRICED)
    records.append(CONFLICT[0])  # a repeat of an id the engine has seen: ignored, and counted
    _write_raw(settings, records)

    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"processed {len(records)} events" in err and f"({len(bad)} dead letters" in err
    dead = _query(settings, capsys, "SELECT reason, payload_bytes FROM dead_letters ORDER BY position")
    assert len(dead) == len(bad)
    for (record, message), letter in zip(bad, sorted(dead, key=lambda d: _order(records, bad, d)), strict=True):
        assert message.split(" - ")[0].split("(U+")[0] in letter["reason"], (message, letter["reason"])
        assert letter["payload_bytes"] == len(record)
    waiting = _query(settings, capsys, "SELECT kind, reason FROM held_records ORDER BY kind DESC")
    assert [(row["kind"], message in row["reason"]) for row, (_, message) in zip(waiting, FAR_AHEAD)] == [
        ("event", True), ("clock", True)] and len(waiting) == len(FAR_AHEAD)
    assert f"{len(waiting)} records wait for time" in err
    repeats = _query(settings, capsys, "SELECT sum(duplicates_ignored) AS n FROM customers")
    assert repeats == [{"n": 1}]
    valid = [record for record in records[:-1] if all(record is not other for other, _ in [*bad, *FAR_AHEAD])]
    assert _query(settings, capsys, CUSTOMERS) == _reference(settings, tmp_path, capsys, valid)


def _order(records: list[bytes], bad: list[tuple[bytes, str]], letter: dict) -> int:
    """Dead letters of the embedded log share no position; match them to the corpus by reason."""
    for index, (_, message) in enumerate(bad):
        if message.split(" - ")[0].split("(U+")[0] in letter["reason"]:
            return index
    raise AssertionError(letter)


def test_a_customer_whose_totals_would_overflow_keeps_them_and_the_rest_goes_on(settings, tmp_path, capsys):
    """901 purchases of the largest amount: the 901st would take the customer's value
    beyond what is kept exactly; it is refused, the customer stays as before it."""
    big = [_purchase(1000 + n, customer_id="p-big", amount_minor=MAX_AMOUNT_MINOR, order_id=f"big{n}",
                     occurred_at=f"2025-01-20T10:{n // 60:02d}:{n % 60:02d}Z") for n in range(901)]
    after = _purchase(2000, customer_id="p-small", occurred_at="2025-01-21T10:00:00Z")
    assert lifecycle(settings, "publish", str(_write(tmp_path / "big.jsonl", [*big, after]))) == 0
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    assert "(1 dead letters" in capsys.readouterr().err
    rows = _query(settings, capsys, "SELECT customer_id, purchases, historical_value_minor AS value, events "
                                    "FROM customers ORDER BY 1")
    assert rows == [
        {"customer_id": "p-big", "purchases": 900, "value": 900 * MAX_AMOUNT_MINOR, "events": 900},
        {"customer_id": "p-small", "purchases": 1, "value": 100, "events": 1},
    ]
    (letter,) = _query(settings, capsys, "SELECT reason FROM dead_letters")
    assert "beyond the 9,007,199,254,740,992 kept exactly" in letter["reason"]


def test_a_clock_far_ahead_changes_no_customer(settings, tmp_path, capsys):
    """One clock dated 2099 would churn everyone, for good. By the policy's rule (from
    the log, not the wall clock) it waits for time to confirm it, moving no one, and
    later real events still count."""
    assert lifecycle(settings, "publish", str(_write(tmp_path / "valid.jsonl", VALID))) == 0
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    before = _query(settings, capsys, "SELECT * FROM customers ORDER BY customer_id")
    transitions = _query(settings, capsys, "SELECT count(*) AS n FROM lifecycle_transitions")

    far = _event("clock", 20, "2099-12-31T00:00:00Z")
    assert lifecycle(settings, "publish", str(_write(tmp_path / "far.jsonl", [far]))) == 1
    assert "ahead of this machine's clock" in capsys.readouterr().err
    assert lifecycle(settings, "publish", "--allow-future", str(_write(tmp_path / "far.jsonl", [far]))) == 0
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    assert _query(settings, capsys, "SELECT * FROM customers ORDER BY customer_id") == before
    assert _query(settings, capsys, "SELECT count(*) AS n FROM lifecycle_transitions") == transitions
    assert _query(settings, capsys, "SELECT count(*) AS n FROM dead_letters") == [{"n": 0}]
    reasons = _query(settings, capsys, "SELECT DISTINCT kind, reason FROM held_records")
    assert len(reasons) == 1 and "a clock dated 2099-12-31" in reasons[0]["reason"]
    assert "([time] clock_max_lead_days)" in reasons[0]["reason"] and reasons[0]["kind"] == "clock"

    customer = before[0]["customer_id"]
    later = _purchase(21, customer_id=customer, occurred_at="2025-03-05T10:00:00Z")
    assert lifecycle(settings, "publish", str(_write(tmp_path / "later.jsonl", [later]))) == 0
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    (row,) = _query(settings, capsys, f"SELECT purchases, as_of FROM customers WHERE customer_id = '{customer}'")
    assert row["purchases"] == before[0]["purchases"] + 1
    assert row["as_of"].startswith("2025-03-05")


class _FaultyEngine(LifecycleEngine):
    """The real engine, with a bug for one customer: the path no valid input reaches."""

    def on_event(self, state, event, at=None):  # type: ignore[no-untyped-def]
        if event.customer_id == "p-bug":
            raise ZeroDivisionError("a bug")
        return super().on_event(state, event, at)


@pytest.mark.parametrize("checkpoint_batches", [10, 2], ids=["before-a-checkpoint", "after-one"])
def test_an_event_the_engine_fails_on_is_dead_lettered_and_the_batch_redone_without_it(tmp_path, capsys,
                                                                                      checkpoint_batches):
    """The batches since the last checkpoint are done again from its states, without the
    record: what they derive equals what they derive when that record was never there,
    and each record read is counted once."""
    bug = _purchase(30, customer_id="p-bug", occurred_at="2025-02-01T12:00:00Z")
    middle = len(VALID) * 2 // 3
    settings = Settings(home=tmp_path / "faulty")
    lifecycle(settings, "publish", str(_write(tmp_path / "first.jsonl", VALID[:40])))
    lifecycle(settings, "publish", str(_write(tmp_path / "rest.jsonl", [*VALID[40:middle], bug, *VALID[middle:]])))
    with EngineSession(settings, 40, CheckpointPolicy(checkpoint_batches, 3_600.0)) as session:
        processor = session.processor
        processor.engine = _FaultyEngine(processor.engine.policy)
        report = processor.run_once()
    assert report.dead_letters == 1 and report.events == len(VALID) + 1
    (letter,) = _query(settings, capsys, "SELECT reason FROM dead_letters")
    assert letter["reason"] == "the engine could not fold this event (ZeroDivisionError: a bug)"
    assert _query(settings, capsys, CUSTOMERS) == _reference(Settings(home=tmp_path), tmp_path, capsys, VALID)
