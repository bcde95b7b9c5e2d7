"""What each member of a consumer group says of itself: the topic `<group>-members`,
read by `lifecycle status --group NAME`.

Kafka's own answer to "who is in the group, with which partitions" (DescribeGroups)
depends on the broker: the test broker gives member ids alone, with no host and no
assignment. So each member reports itself, keyed by its name (`host:pid`): its
partitions, a restoration under way (changelog records read, of about how many), when
it last committed a checkpoint, and that it stopped. It reports when its partitions
change, every few seconds while restoring, every `REPORT_EVERY_S` otherwise, and
when it stops. A report is a few hundred bytes; on a compacted topic one a member is
kept.
"""

from __future__ import annotations

import os
import socket
import time

import msgspec
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from consumers.logs.kafka_event_log import drain

REPORT_EVERY_S = 10.0


def members_topic(group: str) -> str:
    return f"{group}-members"


class MemberReport(msgspec.Struct, frozen=True, omit_defaults=True):
    """One member, as it last said (see the module text); times in epoch seconds."""

    member: str
    at: float
    partitions: list[int]
    restoring: dict[int, tuple[int, int]] = {}
    """Partition -> (changelog records read, of about how many)."""
    last_commit: float | None = None
    stopped: bool = False


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(MemberReport).decode


class MemberReporter:
    """Sends one member's reports (see the module text)."""

    def __init__(self, producer: KafkaProducer, group: str) -> None:
        self.producer, self.topic = producer, members_topic(group)
        self.member = f"{socket.gethostname()}:{os.getpid()}"
        self.sent_at = 0.0

    def due(self) -> bool:
        return time.monotonic() - self.sent_at >= REPORT_EVERY_S

    def report(self, partitions: list[int], restoring: dict[int, tuple[int, int]] | None = None,
               last_commit: float | None = None, stopped: bool = False) -> None:
        """Send a report; a broker that does not take it loses only this report."""
        report = MemberReport(self.member, time.time(), sorted(partitions), restoring or {}, last_commit, stopped)
        try:
            self.producer.send(self.topic, _encode(report), key=self.member.encode())
            if stopped:
                self.producer.flush(timeout=5)
        except KafkaError:
            pass  # a report is a courtesy to operators: processing goes on without it
        self.sent_at = time.monotonic()


def read_reports(consumer: KafkaConsumer, group: str) -> list[MemberReport]:
    """Each member's latest report, by member name; none if no member ever reported."""
    topic = members_topic(group)
    parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    if not parts:
        return []
    consumer.assign(parts)
    for tp in parts:
        consumer.seek(tp, 0)
    latest: dict[str, MemberReport] = {}
    for _, records, _ in drain(consumer, dict.fromkeys(parts, 0), 20_000):
        for record in records:
            try:
                report = _decode(record.value)
            except msgspec.DecodeError:
                continue  # not a member's report: someone else wrote to the topic
            latest[report.member] = report
    return sorted(latest.values(), key=lambda report: report.member)
