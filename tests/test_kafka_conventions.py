"""What subscribers see on Kafka: each record's timestamp is its event's `occurred_at`,
and its headers follow CloudEvents' binary mode, on both topics."""

from __future__ import annotations

import json
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition

from consumers.logs.event_log import CUSTOMER_EVENTS, CUSTOMER_LIFECYCLE
from consumers.settings import Settings
from lifecycle.state import epoch_seconds
from schemas import decode_event, decode_lifecycle_event
from tests.cli import lifecycle

MIXED = Path(__file__).parent / "fixtures" / "mixed_valid_invalid.jsonl"


def _records(bootstrap: str, topic: str) -> list:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records, empty_polls = [], 0
        while empty_polls < 20:
            polled = consumer.poll(timeout_ms=100)
            empty_polls = 0 if polled else empty_polls + 1
            records.extend(record for batch in polled.values() for record in batch)
        return records
    finally:
        consumer.close()


def test_records_carry_event_time_and_cloudevents_headers(kafka_broker, tmp_path):
    settings = Settings(home=tmp_path / "home", kafka=kafka_broker.bootstrap, partitions=3)
    assert lifecycle(settings, "publish", str(MIXED)) == 1
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    for topic, decode in ((CUSTOMER_EVENTS, decode_event), (CUSTOMER_LIFECYCLE, decode_lifecycle_event)):
        records = _records(kafka_broker.bootstrap, topic)
        assert records, topic
        for record in records:
            event = decode(record.value)
            tag = json.loads(record.value)["type"]
            assert record.timestamp == epoch_seconds(event.occurred_at) * 1000
            headers = {key: value.decode() for key, value in record.headers}
            assert headers["content-type"] == "application/json"
            assert headers["ce_specversion"] == "1.0"
            assert headers["ce_id"] == str(event.event_id)
            assert headers["ce_type"] == f"{topic}.{tag}"
            assert headers["ce_time"] == event.occurred_at.isoformat()
            assert record.key == event.customer_id.encode()
            assert len(headers) == 6
            expected_source = "/lifecycle-engine" if topic == CUSTOMER_LIFECYCLE else f"/{event.source}"
            assert headers["ce_source"] == expected_source
