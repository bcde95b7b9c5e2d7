"""Erasure that erases: a customer's personal data is sealed with their own key before it
reaches either log, so destroying the key at `customer_erased` leaves it unreadable in
every file of the home, every topic, every export and report, while the lifecycle
derivation stays the same, byte for byte."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from kafka import KafkaAdminClient

from consumers.privacy.access_log import SQLiteAccessLog
from consumers.privacy.key_store import open_customer_keys
from consumers.privacy.personal_data import open_value
from consumers.logs.event_log import CUSTOMER_EVENTS
from consumers.logs import open_event_log
from consumers.settings import Settings
from lifecycle.population import PopulationSpec, generate
from tests.cli import lifecycle
from tests.test_kafka_conventions import _records

WHO = "zelda"
SECRETS = {"name": "Zelda Quixotic-Vantablack", "email": "zelda.qv@example.org", "phone": "+44 20 7946 0958"}
AT = "2025-03-0{}T10:00:00Z"


def _lines(tmp_path: Path, name: str, events: list[dict]) -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return path


def _zelda(tmp_path: Path) -> Path:
    """A small population, and Zelda: her profile, a purchase, a contact in her words."""
    population = b"\n".join(generate(PopulationSpec(customers=40, seed=2, days=60))).decode() + "\n"
    own = [
        {"type": "profile_updated", "event_id": "00000000-0000-4000-8000-00000000e001", "occurred_at": AT.format(1),
         "source": "crm", "customer_id": WHO, **SECRETS, "city": "Leeds"},
        {"type": "purchase", "event_id": "00000000-0000-4000-8000-00000000e002", "occurred_at": AT.format(2),
         "source": "shop", "customer_id": WHO, "order_id": "z-1", "amount_minor": 4200, "currency": "EUR"},
        {"type": "contact", "event_id": "00000000-0000-4000-8000-00000000e003", "occurred_at": AT.format(3),
         "source": "crm", "customer_id": WHO, "channel": "phone", "direction": "inbound",
         "topic": f"call me on {SECRETS['phone']}"},
    ]
    path = _lines(tmp_path, "zelda.jsonl", own)
    path.write_text(population + path.read_text(encoding="utf-8"), encoding="utf-8")
    return path


def _in_clear(blob: bytes) -> list[str]:
    return [field for field, value in SECRETS.items() if value.encode() in blob]


def _everywhere(settings: Settings, *outside: Path) -> dict[str, list[str]]:
    """Where any of Zelda's secrets is in clear: each file under the home and `outside`,
    and with Kafka each record (key, value, headers) of every topic."""
    found = {}
    files = [p for root in (settings.home, *outside) for p in ([root] if root.is_file() else root.rglob("*"))]
    for path in files:
        if path.is_file() and (hits := _in_clear(path.read_bytes())):
            found[str(path)] = hits
    if settings.kafka is not None:
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka)
        topics = admin.list_topics()
        admin.close()
        for topic in topics:
            for record in _records(settings.kafka, topic):
                blob = b"".join([record.key or b"", record.value or b"", *(v for _, v in record.headers)])
                if hits := _in_clear(blob):
                    found[f"{topic}@{record.partition}:{record.offset}"] = hits
    return found


def _sealed_values(settings: Settings) -> list[tuple[bytes, str]]:
    """Each of Zelda's sealed values on the log, with its place."""
    found = []
    with open_event_log(settings, CUSTOMER_EVENTS, create=False) as log:
        for batch in log.read(lambda _: None):
            for raw in batch.values:
                event = json.loads(bytes(raw))
                if event.get("customer_id") == WHO and event.get("sealed"):
                    found += [(f"{WHO}\x00{name}".encode(), value) for name, value in event["sealed"].items()]
    return found


def _lifecycle_log(settings: Settings, capsys) -> str:  # type: ignore[no-untyped-def]
    capsys.readouterr()
    assert lifecycle(settings, "tail", "customer-lifecycle") == 0
    return capsys.readouterr().out


@pytest.fixture(params=["embedded", "kafka", "kafka, keys in postgresql"])
def keyed(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings for each log, and for Kafka with the key store several publishers share."""
    if request.param == "embedded":
        return Settings(home=tmp_path / "home")
    broker = request.getfixturevalue("kafka_broker")
    shared = request.getfixturevalue("key_store") if "postgresql" in request.param else None
    return Settings(home=tmp_path / "home", kafka=broker.bootstrap, partitions=3, key_store=shared)


def test_an_erased_customer_is_unreadable_everywhere_and_the_lifecycle_is_unchanged(keyed, tmp_path, capsys):
    settings = keyed
    assert lifecycle(settings, "publish", str(_zelda(tmp_path))) == 0
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    assert _everywhere(settings) == {}, "sealed before any log: never in clear"

    capsys.readouterr()
    assert lifecycle(settings, "explain", WHO, "--show-personal", "--role", "privacy") == 0
    story = capsys.readouterr().out
    assert all(value in story for value in SECRETS.values()), "before the erasure the privacy role reads them"
    assert [read[4:] for read in SQLiteAccessLog(settings.home).reads(WHO)] == [(WHO, "city,email,name,phone")]
    assert lifecycle(settings, "access-log", "--customer", WHO, "--format", "json", "--role", "privacy") == 0
    [read] = json.loads(capsys.readouterr().out)
    assert (read["role"], read["command"], read["customer_id"]) == ("privacy", "explain", WHO)
    assert lifecycle(settings, "access-log") == 2, "the analyst may not list who was looked up"
    assert lifecycle(settings, "explain", WHO) == 0
    assert lifecycle(settings, "tail", "customer-events") == 0
    assert not _in_clear(capsys.readouterr().out.encode()), "masked by default"
    assert lifecycle(settings, "explain", WHO, "--show-personal") == 2, "the analyst (the default role) may not"
    assert "may not read personal data in clear" in capsys.readouterr().err
    assert len(SQLiteAccessLog(settings.home).reads(WHO)) == 1
    before = _lifecycle_log(settings, capsys)

    erase = [{"type": "customer_erased", "event_id": "00000000-0000-4000-8000-00000000e0ff",
              "occurred_at": AT.format(4), "source": "privacy", "customer_id": WHO}]
    assert lifecycle(settings, "publish", str(_lines(tmp_path, "erase.jsonl", erase))) == 0
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    assert lifecycle(settings, "export", "--parquet", str(tmp_path / "export")) == 0
    assert lifecycle(settings, "report", "--out", str(tmp_path / "report.html")) == 0
    assert _everywhere(settings, tmp_path / "export", tmp_path / "report.html") == {}

    sealed = _sealed_values(settings)
    assert len(sealed) == 5, "name, email, phone and city of the profile; the contact's topic"
    with open_customer_keys(settings) as keys:
        held = [keys.master.unwrap(customer, wrapped) for customer, wrapped in keys.wrapped_keys()]
        assert keys.key(WHO) is None
    master = base64.b64decode(settings.master_key_path.read_text())
    assert held, "other customers keep their keys"
    assert all(open_value(key, place, value) is None for key in [*held, master] for place, value in sealed)

    capsys.readouterr()
    assert lifecycle(settings, "explain", WHO, "--show-personal", "--role", "privacy") == 0
    assert not _in_clear(capsys.readouterr().out.encode()), "no key opens it, not even for the privacy role"

    capsys.readouterr()
    assert lifecycle(settings, "publish", str(_zelda(tmp_path))) == 0, "the same file again: duplicates, no conflict"
    assert "published 0 events" in capsys.readouterr().err
    assert _sealed_values(settings) == sealed and _everywhere(settings) == {}

    after = _lifecycle_log(settings, capsys)
    assert after.startswith(before), "the erasure only adds to the lifecycle log"
    assert lifecycle(settings, "replay", "--workers", "1") == 0
    assert _lifecycle_log(settings, capsys) == after, "a replay after the erasure gives the same lifecycle log"
