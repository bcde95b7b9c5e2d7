"""What a consumer group committed to one of its output topics, up to given input
positions: the records `read_committed` promises, on any broker.

Each record a member commits names its checkpoint (`lifecycle_checkpoint`); the
checkpoints committed up to a position are a chain in the group's changelog
(`committed_checkpoints`). Keeping the records of that chain reads the same on Kafka,
where aborted records are never shown, and on a test broker that shows them. Used by
`lifecycle verify` of a projector's home, to compare the group's `customer-lifecycle`
with a replay as far as the projections reach.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from consumers.group.changelog import CHECKPOINT_HEADER, changelog_topic, committed_checkpoints
from consumers.logs.kafka_event_log import KafkaUnavailable, drain
from consumers.settings import Settings

_READ_BATCH = 20_000


def committed_values(settings: Settings, group: str, topic: str, positions: Mapping[str, int]) -> Iterator[list[bytes]]:
    """The values `group` committed to `topic` from its input partitions up to
    `positions` (name -> position), in runs, each topic partition in order."""
    try:
        reader = KafkaConsumer(bootstrap_servers=settings.kafka, client_id=f"lifecycle-{group}",
                               isolation_level="read_committed", enable_auto_commit=False,
                               auto_offset_reset="earliest", max_partition_fetch_bytes=8 * 1024 * 1024)
    except KafkaError as error:
        raise KafkaUnavailable(f"cannot reach Kafka at {settings.kafka} ({error}): is the broker running?") from error
    try:
        ends = {int(name.rsplit(":", 1)[1]): at for name, at in positions.items()}
        kept = committed_checkpoints(reader, changelog_topic(group), ends)
        parts = [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic) or ())]
        reader.assign(parts)
        for tp in parts:
            reader.seek(tp, 0)
        for _, records, _ in drain(reader, dict.fromkeys(parts, 0), _READ_BATCH):
            yield [record.value for record in records if dict(record.headers).get(CHECKPOINT_HEADER) in kept]
    finally:
        reader.close()
