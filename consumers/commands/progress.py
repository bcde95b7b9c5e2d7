"""Progress of a long command (publish, replay, verify, dry run, process --once, demo) on a terminal."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator


class Progress:
    """One line on a terminal, rewritten: what is done, how fast, and how long is left."""

    def __init__(self, command: str) -> None:
        self.command = command
        self.started = time.monotonic()
        self.phase = ""
        self.stepped = False
        """Whether a step without figures (`step`) was shown."""

    def __call__(self, phase: str, done: int, of: int | None, unit: str = "records") -> None:
        """`done` of `of` (None: not known) `unit`s in `phase`."""
        if phase != self.phase:
            self.phase, self.started = phase, time.monotonic()
        elapsed = time.monotonic() - self.started
        # Under a second, a rate says nothing yet (the first batch may already be done).
        rate = done / elapsed if elapsed >= 1 else 0
        speed = f", {rate:,.0f}/s" if rate else ""
        left = f", {(of - done) / rate:,.0f} s left" if rate and of is not None and of > done else ""
        total = "" if of is None else f" of {of:,}"
        sys.stderr.write(f"\r{self.command}: {phase} {done:,}{total} {unit}{speed}{left}\x1b[K")
        sys.stderr.flush()

    def step(self, text: str) -> None:
        """A step with no figures to show (its time is not known ahead)."""
        sys.stderr.write(f"\r{self.command}: {text}\x1b[K")
        sys.stderr.flush()
        self.stepped = True

    @staticmethod
    def done() -> None:
        sys.stderr.write("\n")

    @staticmethod
    def clear() -> None:
        """Clear the line, for a message to take its place (the next call draws it again)."""
        sys.stderr.write("\r\x1b[K")


def reading(lines: Iterable[bytes], progress: Progress, total: int | None) -> Iterator[bytes]:
    """`lines` as they come, telling `progress` how many bytes of `total` were read, four
    times a second and once at the end."""
    read, told = 0, time.monotonic()
    for line in lines:
        read += len(line)
        yield line
        if time.monotonic() - told >= 0.25:
            progress("read", read, total, "bytes")
            told = time.monotonic()
    progress("read", read, total, "bytes")
