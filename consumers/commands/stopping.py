"""Stopping a long command cleanly: SIGTERM or Ctrl-C asks it to stop at the next
batch boundary, instead of killing it mid-batch.

A first signal sets a flag the command checks between batches (and while it waits);
a second Ctrl-C stops it at once, as Ctrl-C usually does. The handlers are the
process's own while the `Stopping` context is open, and put back after.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType


class Stopping:
    """A flag set by SIGTERM or SIGINT; call it to ask whether to stop."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._previous: dict[int, object] = {}

    def __enter__(self) -> Stopping:
        for number in (signal.SIGTERM, signal.SIGINT):
            self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)  # type: ignore[arg-type]

    def _handle(self, number: int, frame: FrameType | None) -> None:
        if number == signal.SIGINT and self._event.is_set():
            raise KeyboardInterrupt
        self._event.set()

    def __call__(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> None:
        """Sleep `seconds`, or less if asked to stop meanwhile."""
        self._event.wait(seconds)
