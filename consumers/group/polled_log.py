"""One partition's records as a group member polled them, read by that partition's
processor: `PolledLog`.

The member's consumer fetches; the processor reads from where its state store stands.
The batches since the partition's last checkpoint are kept, so that a processor that
must derive them again (the engine failed on a record: consumers/processing/processor.py)
reads them again from here, without seeking the consumer back.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping

from consumers.logs.event_log import LogReader, PositionOf, RecordBatch


class PolledLog(LogReader):
    """The polled, not yet checkpointed batches of one partition."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._batches: list[RecordBatch] = []

    @property
    def last(self) -> int | None:
        """The position after the last batch added, if any is kept."""
        return self._batches[-1].tracking.notification_id if self._batches else None

    def add(self, batch: RecordBatch) -> None:
        self._batches.append(batch)

    def checkpointed(self, position: int) -> None:
        """Forget the batches a checkpoint at `position` holds."""
        self._batches = [batch for batch in self._batches if batch.tracking.notification_id > position]

    def partitions(self) -> list[str]:
        return [self.name]

    def read(
        self,
        position_of: PositionOf,
        max_records: int = 10_000,
        *,
        partitions: Collection[str] | None = None,
        until: Mapping[str, int] | None = None,
    ) -> Iterator[RecordBatch]:
        """The kept batches past where `position_of` says the partition stands, as they
        were polled (`max_records` and `until` do not apply: the consumer sized them)."""
        if partitions is not None and self.name not in partitions:
            return
        start = position_of(self.name) or 0
        for batch in list(self._batches):
            if batch.tracking.notification_id <= start:
                continue
            if batch.positions[0] <= start:  # a checkpoint fell inside it (the processor cuts batches at clocks)
                keep = next(i for i, position in enumerate(batch.positions) if position > start)
                batch = RecordBatch(batch.tracking, batch.values[keep:], batch.positions[keep:], batch.end)
            yield batch
