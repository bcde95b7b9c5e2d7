"""Progress of a long command (replay, verify, dry run) on a terminal."""

from __future__ import annotations

import sys
import time


class Progress:
    """One line on a terminal, rewritten: what is done, how fast, and how long is left."""

    def __init__(self, command: str) -> None:
        self.command = command
        self.started = time.monotonic()
        self.phase = ""

    def __call__(self, phase: str, done: int, of: int) -> None:
        if phase != self.phase:
            self.phase, self.started = phase, time.monotonic()
        rate = done / max(time.monotonic() - self.started, 1e-6)
        left = f", {(of - done) / rate:,.0f} s left" if rate and of > done else ""
        sys.stderr.write(f"\r{self.command}: {phase} {done:,} of {of:,} records, {rate:,.0f}/s{left}\x1b[K")
        sys.stderr.flush()

    @staticmethod
    def done() -> None:
        sys.stderr.write("\n")
