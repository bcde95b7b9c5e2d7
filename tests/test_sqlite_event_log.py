"""The embedded log's reading (consumers/logs/sqlite_event_log.py): whole segments, in
order, batches filled with records however small the segments are."""

from __future__ import annotations

from pathlib import Path

from eventsourcing.persistence import Tracking

from consumers.logs.event_log import CUSTOMER_EVENTS
from consumers.logs.sqlite_event_log import SEGMENT_SIZE, SQLiteEventLog


def _raws(start: int, count: int) -> list[bytes]:
    return [b'{"n":%d}' % n for n in range(start, start + count)]


def test_small_segments_are_read_on_until_a_batch_is_full(tmp_path: Path) -> None:
    """45 one-record segments (as clocks are appended) and then a full segment and a half
    one: batches of 20 records, a full segment never split, every record once, in order."""
    with SQLiteEventLog(home=tmp_path, name=CUSTOMER_EVENTS) as log:
        for number, raw in enumerate(_raws(0, 45), start=1):
            log.recorder.record([raw], Tracking("a-test-producer", number))
        log.recorder.record(_raws(45, SEGMENT_SIZE + 500), Tracking("a-test-producer", 46))
        batches = list(log.read(lambda _: None, 20))

    assert [len(batch.values) for batch in batches] == [20, 20, 5 + SEGMENT_SIZE, 500]
    assert [bytes(raw) for batch in batches for raw in batch.values] == _raws(0, 45 + SEGMENT_SIZE + 500)
    assert [batch.tracking.notification_id for batch in batches] == [20, 40, 46, 47]
    assert all(batch.positions[-1] == batch.tracking.notification_id for batch in batches)


def test_reading_goes_on_from_a_position_within_small_segments(tmp_path: Path) -> None:
    with SQLiteEventLog(home=tmp_path, name=CUSTOMER_EVENTS) as log:
        for number, raw in enumerate(_raws(0, 30), start=1):
            log.recorder.record([raw], Tracking("a-test-producer", number))
        batches = list(log.read(lambda _: 25, 1_000))

    assert [[bytes(raw) for raw in batch.values] for batch in batches] == [_raws(25, 5)]
