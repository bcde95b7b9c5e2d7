"""Publishing JSON lines to the log: validate each line, append the valid ones in order.

Bad input gets a clear error and nothing is lost: each invalid line is reported with
its line number and what is wrong (with the field path), and the valid lines beside it
still go through. Appending is idempotent: event ids already on the log are skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from consumers.event_log import Appended, EventLog
from schemas import AnyEvent, InvalidEvent, decode_event

CHUNK = 20_000


@dataclass(frozen=True)
class PublishReport:
    lines: int
    invalid: int
    appended: int
    duplicates: int


def publish_lines(
    lines: Iterable[bytes],
    log: EventLog,
    report_invalid: Callable[[int, str], None],
) -> PublishReport:
    """Validate and append `lines`; call `report_invalid(line_number, reason)` for each bad one."""
    pending: list[tuple[AnyEvent, bytes]] = []
    done: list[Appended] = []
    count = invalid = 0
    for count, line in enumerate(lines, start=1):
        line = line.strip()
        if not line:
            continue
        try:
            pending.append((decode_event(line), line))
        except InvalidEvent as error:
            invalid += 1
            report_invalid(count, str(error))
            continue
        if len(pending) >= CHUNK:
            done.append(log.append(pending))
            pending = []
    done.append(log.append(pending))
    return PublishReport(count, invalid, sum(d.appended for d in done), sum(d.duplicates for d in done))
