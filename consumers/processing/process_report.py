"""What a run of the processor did: records read, dead letters, lifecycle events,
batches and checkpoints, counted so that a batch derived again after a rewind counts
once."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ProcessReport:
    """What one run of the processor did: `events` records were read, of which
    `dead_letters` were refused; `waiting` records (of this run or before) wait for
    time now; `unpriced` counts purchases by currency the policy has no rate for (they
    count no value)."""

    events: int
    dead_letters: int
    lifecycle_events: int
    batches: int
    seconds: float
    unpriced: Counter[str] = field(default_factory=Counter)
    waiting: int = 0
    checkpoints: int = 0
    """Checkpoints written: the projections changed only at these."""

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def __add__(self, later: ProcessReport) -> ProcessReport:
        """Two runs told as one; what waits is as of the later."""
        return ProcessReport(
            self.events + later.events, self.dead_letters + later.dead_letters,
            self.lifecycle_events + later.lifecycle_events, self.batches + later.batches,
            self.seconds + later.seconds, self.unpriced + later.unpriced, later.waiting,
            self.checkpoints + later.checkpoints,
        )


class RunCount:
    """What one `run_once` did, counted batch by batch; those since the last checkpoint
    apart, since a rewind derives them again."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.done = [0, 0, 0, 0]  # records, dead letters, lifecycle events, batches
        self.unpriced: Counter[str] = Counter()
        self.since_checkpoint = [0, 0, 0, 0]
        self.unpriced_since: Counter[str] = Counter()
        self.checkpoints = 0

    def count(self, records: int, dead: int, derived: int, unpriced: Counter[str]) -> None:
        for counts in (self.done, self.since_checkpoint):
            for index, value in enumerate((records, dead, derived, 1)):
                counts[index] += value
        self.unpriced.update(unpriced)
        self.unpriced_since.update(unpriced)

    def checkpointed(self) -> None:
        self.checkpoints += 1
        self.since_checkpoint = [0, 0, 0, 0]
        self.unpriced_since = Counter()

    def rewound(self) -> None:
        self.done = [done - again for done, again in zip(self.done, self.since_checkpoint, strict=True)]
        self.unpriced.subtract(self.unpriced_since)
        self.unpriced = +self.unpriced
        self.since_checkpoint = [0, 0, 0, 0]
        self.unpriced_since = Counter()

    def report(self, waiting: int) -> ProcessReport:
        records, dead, derived, batches = self.done
        return ProcessReport(records, dead, derived, batches, time.perf_counter() - self.started, self.unpriced,
                             waiting, self.checkpoints)
