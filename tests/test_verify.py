"""`lifecycle verify` names every tampered store, on both logs, and passes after a replay."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import duckdb
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from consumers import home
from consumers.logs.event_log import CUSTOMER_LIFECYCLE
from consumers.settings import Settings
from lifecycle.population import PopulationSpec, generate
from tests.cli import lifecycle
from tests.test_replay import _publish

SPEC = PopulationSpec(customers=150, seed=11, days=150)


def _derived(settings) -> Path:  # type: ignore[no-untyped-def]
    _publish(settings, generate(SPEC))
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    generation = home.current(settings.home)
    assert generation is not None
    return generation


def _verify(settings, capsys) -> tuple[int, list[str]]:  # type: ignore[no-untyped-def]
    capsys.readouterr()
    status = lifecycle(settings, "verify", "--workers", "1")
    return status, capsys.readouterr().out.splitlines()


def _edit_segment(generation: Path, change) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    """Apply `change` to the records of the lifecycle log's first segment, in the file."""
    with sqlite3.connect(generation / "customer-lifecycle.sqlite") as db:
        rowid, state = db.execute("SELECT rowid, state FROM customer_lifecycle ORDER BY rowid LIMIT 1").fetchone()
        records = json.loads(state)
        touched = change(records)
        db.execute("UPDATE customer_lifecycle SET state = ? WHERE rowid = ?",
                   (json.dumps(records, separators=(",", ":")).encode(), rowid))
    return touched


def _tamper(records: list[dict]) -> list[str]:
    """Alter one customer's event, remove another's, swap a third's pair: their ids."""
    by_customer: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        by_customer.setdefault(record["customer_id"], []).append(index)
    pairs = [indexes for indexes in by_customer.values() if len(indexes) >= 2]
    altered, removed, swapped = pairs[0][0], pairs[1][1], pairs[2]
    records[altered]["to_value"] = "forged"
    first, second = swapped[0], swapped[1]
    records[first], records[second] = records[second], records[first]
    names = [records[altered]["customer_id"], records[removed]["customer_id"], records[first]["customer_id"]]
    del records[removed]
    return names


def test_verify_names_each_tampered_store_and_passes_after_a_replay(settings, capsys):
    generation = _derived(settings)
    capsys.readouterr()
    assert lifecycle(settings, "verify", "--workers", "1") == 0
    assert "all match" in capsys.readouterr().err
    with duckdb.connect(str(generation / home.VIEWS)) as db:
        edited = db.execute("SELECT min(customer_id) FROM customer_rows").fetchone()[0]
        db.execute("UPDATE customer_rows SET stage = 'advocate' WHERE customer_id = ?", [edited])
        repriced = db.execute("SELECT max(customer_id) FROM value_movements").fetchone()[0]
        db.execute("UPDATE value_movements SET value_minor = value_minor + 1 WHERE customer_id = ?", [repriced])
        forgotten = db.execute("SELECT min(customer_id) FROM customer_facts WHERE kind = 'visit'").fetchone()[0]
        db.execute("DELETE FROM customer_facts WHERE customer_id = ? AND kind = 'visit'", [forgotten])
    altered, removed, swapped = _edit_segment(generation, _tamper)
    status, lines = _verify(settings, capsys)
    assert status == 1
    assert f"customer {edited}: customers: differs in stage" in lines
    assert any(line.startswith(f"customer {altered}: lifecycle log: first differs at sequence")
               and line.endswith("the record was altered") for line in lines)
    # Sequence 2 is gone: what stands in its place is the customer's sequence 3, or nothing.
    assert any(line.startswith(f"customer {removed}: lifecycle log: first differs at sequence 2: ")
               and line.endswith(("missing from the live log", "has sequence 3 there (removed or reordered)"))
               for line in lines)
    assert f"customer {swapped}: lifecycle log: first differs at sequence 1: the live log has sequence 2 there " \
           "(removed or reordered)" in lines
    assert f"customer {repriced}: value_movements: its rows differ from the replay's" in lines
    assert f"customer {forgotten}: customer_facts: its rows differ from the replay's" in lines
    assert len(lines) == 6, lines
    assert lifecycle(settings, "replay", "--workers", "1") == 0
    assert _verify(settings, capsys) == (0, [])


def test_verify_catches_a_transition_row_and_chain_head_edited_together(settings, capsys):
    generation = _derived(settings)
    with duckdb.connect(str(generation / home.VIEWS)) as db:
        customer, sequence = db.execute(
            "SELECT customer_id, max(sequence) FROM lifecycle_transitions GROUP BY 1 ORDER BY 1 LIMIT 1").fetchone()
        db.execute("UPDATE lifecycle_transitions SET to_value = 'churned' WHERE customer_id = ? AND sequence = ?",
                   [customer, sequence])
        db.execute("UPDATE customer_rows SET chain_head = 'x' WHERE customer_id = ?", [customer])
    status, lines = _verify(settings, capsys)
    assert status == 1
    assert lines == [f"customer {customer}: customers: differs in chain_head",
                     f"customer {customer}: lifecycle_transitions: first differs at sequence {sequence}"]


def _topic_records(settings, capsys) -> list[bytes]:  # type: ignore[no-untyped-def]
    capsys.readouterr()
    assert lifecycle(settings, "tail", CUSTOMER_LIFECYCLE) == 0
    return capsys.readouterr().out.encode().splitlines()


def _produce(settings, records: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    producer = KafkaProducer(bootstrap_servers=settings.kafka)
    for record in records:
        producer.send(CUSTOMER_LIFECYCLE, key=json.loads(record)["customer_id"].encode(), value=record)
    producer.flush()
    producer.close()


def test_verify_names_records_forged_or_removed_on_the_kafka_topic(kafka_broker, tmp_path, capsys):
    settings = Settings(home=tmp_path / "home", kafka=kafka_broker.bootstrap, partitions=3)
    _derived(settings)
    records = _topic_records(settings, capsys)
    forged = json.loads(records[0])
    forged["to_value"] = "advocate"
    _produce(settings, [json.dumps(forged, separators=(",", ":")).encode()])
    status, lines = _verify(settings, capsys)
    assert status == 1
    assert lines == [f"customer {forged['customer_id']}: customer-lifecycle topic: first differs at sequence "
                     f"{forged['sequence']}: a record the replay does not make"]

    # Someone rewrites the topic without one record: the topic is deleted and written again.
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka)
    admin.delete_topics([CUSTOMER_LIFECYCLE])
    while CUSTOMER_LIFECYCLE in admin.list_topics():
        time.sleep(0.1)
    admin.create_topics([NewTopic(CUSTOMER_LIFECYCLE, 3, 1)])
    admin.close()
    removed = json.loads(records[1])
    _produce(settings, records[:1] + records[2:])
    status, lines = _verify(settings, capsys)
    assert status == 1
    assert any(line.startswith(f"customer {removed['customer_id']}: customer-lifecycle topic: first differs at "
                               f"sequence {removed['sequence']}:") for line in lines), lines

    # A replay that republishes replaces the topic with the replayed lifecycle log.
    assert lifecycle(settings, "replay", "--workers", "1", "--republish") == 0
    assert _verify(settings, capsys) == (0, [])
    assert sorted(_topic_records(settings, capsys)) == sorted(records)


def test_verify_without_anything_derived_says_so(tmp_path, capsys):
    settings = Settings(home=tmp_path / "home")
    assert lifecycle(settings, "verify") == 2
    assert "no lifecycle home" in capsys.readouterr().err
    settings.home.mkdir()
    assert lifecycle(settings, "verify") == 2
    assert "nothing derived" in capsys.readouterr().err
