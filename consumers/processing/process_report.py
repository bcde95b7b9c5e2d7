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
    """What one `run_once` did, counted batch by batch; a rewind takes the counts back to
    the last checkpoint, since the batches after it are derived again."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.records = self.dead_letters = self.lifecycle_events = self.batches = self.checkpoints = 0
        self.unpriced: Counter[str] = Counter()
        self._at_checkpoint = self._counts()

    def _counts(self) -> tuple[int, int, int, int, Counter[str]]:
        return self.records, self.dead_letters, self.lifecycle_events, self.batches, Counter(self.unpriced)

    def count(self, records: int, dead: int, derived: int, unpriced: Counter[str]) -> None:
        self.records += records
        self.dead_letters += dead
        self.lifecycle_events += derived
        self.batches += 1
        self.unpriced.update(unpriced)

    def checkpointed(self) -> None:
        self.checkpoints += 1
        self._at_checkpoint = self._counts()

    def rewound(self) -> None:
        self.records, self.dead_letters, self.lifecycle_events, self.batches, unpriced = self._at_checkpoint
        self.unpriced = Counter(unpriced)

    def report(self, waiting: int) -> ProcessReport:
        return ProcessReport(self.records, self.dead_letters, self.lifecycle_events, self.batches,
                             time.perf_counter() - self.started, self.unpriced, waiting, self.checkpoints)
