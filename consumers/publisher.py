"""Publishing JSON lines to the log: validate each line, append the valid ones in order.

Bad input gets a clear error and nothing is lost: each invalid line is reported with
its line number and what is wrong (with the field path), and the valid lines beside it
still go through, whatever a bad line holds (bytes that are not UTF-8, JSON nested
thousands deep, megabytes without a newline). Appending is idempotent: an event whose
id is already on the log with the same content is skipped; with other content it is a
conflict, reported like an invalid line. Personal data is sealed with its customer's
key before it is appended (consumers/privacy/personal_data.py).

A refused line's message says the likely cause and fix where one is known
(schemas/input_hints.py), once: a later line refused for the same cause points back to
the first. Fields the contract does not know are dropped, counted by name and reported,
or with `strict` the line is refused. A UTF-8 byte order mark before the first line is
read past.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO

from consumers.logs.event_log import EventLog
from consumers.privacy.personal_data import Sealer
from lifecycle.policy import InputPolicy
from schemas import AnyEvent, InvalidEvent, decode_event, encode_event
from schemas.input_hints import hint_for, unknown_fields

CHUNK = 20_000
_DRAIN = 1 << 20
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class PublishReport:
    lines: int
    invalid: int
    appended: int
    duplicates: int
    conflicts: int = 0
    unknown_fields: dict[str, int] = field(default_factory=dict)
    """Fields the contract does not know, by name: how many lines held each (dropped)."""


class PublishFailed(Exception):
    """Appending failed part-way: what was appended before it is on the log (`report`)."""

    def __init__(self, report: PublishReport, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.report = report
        self.cause = cause


def bounded_lines(stream: BinaryIO, limit: int) -> Iterator[bytes]:
    """The lines of `stream`, never holding more than `limit` + 1 bytes of one: a longer
    line is yielded cut to `limit` + 1 bytes (so that it is seen to be too long), and
    the rest of it is read past."""
    while line := stream.readline(limit + 1):
        if len(line) > limit and not line.endswith(b"\n"):
            rest = line
            while rest and not rest.endswith(b"\n"):
                rest = stream.readline(_DRAIN)
        yield line


def publish_lines(
    lines: Iterable[bytes],
    log: EventLog,
    report_invalid: Callable[[int, str], None],
    *,
    max_line_bytes: int = InputPolicy().max_event_bytes,
    not_after: datetime | None = None,
    sealer: Sealer | None = None,
    strict: bool = False,
) -> PublishReport:
    """Validate and append `lines`; call `report_invalid(line_number, reason)` for each
    bad one. `not_after`: refuse events dated later (the edge passes the wall clock
    plus a margin, unless told to allow the future). `sealer`: seals personal data
    before it is appended (consumers/privacy/personal_data.py); without one it goes as given.
    `strict`: refuse a line with fields the contract does not know, instead of dropping them."""
    pending: list[tuple[int, AnyEvent, bytes]] = []
    count = invalid = appended = duplicates = conflicts = 0
    checker = _LineChecker(max_line_bytes, not_after, strict)
    for count, line in enumerate(lines, start=1):
        line = line.strip()
        if count == 1 and line.startswith(_BOM):
            line = line[len(_BOM):]
        if not line:
            continue
        try:
            event = checker.valid(line)
        except InvalidEvent as error:
            invalid += 1
            report_invalid(count, checker.explained(count, line, str(error)))
            continue
        pending.append((count, event, line))
        if len(pending) >= CHUNK:
            done = _append_or_fail(pending, log, report_invalid, PublishReport(
                count, invalid, appended, duplicates, conflicts, checker.unknown), sealer)
            appended, duplicates, conflicts = appended + done[0], duplicates + done[1], conflicts + done[2]
            pending = []
    done = _append_or_fail(pending, log, report_invalid, PublishReport(
        count, invalid, appended, duplicates, conflicts, checker.unknown), sealer)
    return PublishReport(count, invalid, appended + done[0], duplicates + done[1], conflicts + done[2],
                         checker.unknown)


class _LineChecker:
    """Decides each line: its event, or why not (with the likely cause, said once)."""

    def __init__(self, max_line_bytes: int, not_after: datetime | None, strict: bool) -> None:
        self.max_line_bytes, self.not_after, self.strict = max_line_bytes, not_after, strict
        self.unknown: dict[str, int] = {}
        self._hinted: dict[str, int] = {}

    def valid(self, line: bytes) -> AnyEvent:
        event = _valid(line, self.max_line_bytes, self.not_after)
        unknown = unknown_fields(line, event)
        if unknown and self.strict:
            names = ", ".join(f"`{name}`" for name in sorted(unknown))
            kind = event.__struct_config__.tag  # type: ignore[attr-defined]
            raise InvalidEvent(f"fields the contract's {kind} does not have: {names} - at `$.{min(unknown)}`; "
                               "remove them, or publish without --strict to drop them")
        for name in unknown:
            self.unknown[name] = self.unknown.get(name, 0) + 1
        return event

    def explained(self, number: int, line: bytes, message: str) -> str:
        hint = hint_for(line, message)
        if hint is None:
            return message
        first = self._hinted.setdefault(hint, number)
        return f"{message}; {hint}" if first == number else f"{message} (likely as line {first})"


def _append_or_fail(pending: list[tuple[int, AnyEvent, bytes]], log: EventLog,
                    report_invalid: Callable[[int, str], None], so_far: PublishReport,
                    sealer: Sealer | None) -> tuple[int, int, int]:
    """`_append`; a failure of the log (locked, disk full, broker gone) raises
    `PublishFailed` with what was appended before the chunk (a chunk is all or nothing)."""
    try:
        if sealer is not None:
            pending = _sealed(pending, sealer)
        return _append(pending, log, report_invalid)
    except Exception as error:
        raise PublishFailed(so_far, error) from error


def _sealed(pending: list[tuple[int, AnyEvent, bytes]], sealer: Sealer) -> list[tuple[int, AnyEvent, bytes]]:
    """The chunk with personal data sealed; a sealed event goes on the log as encoded."""
    sealed = sealer.seal_all(event for _, event, _ in pending)
    return [(line, after, raw if after is before else encode_event(after))
            for (line, before, raw), after in zip(pending, sealed, strict=True)]


def _valid(line: bytes, max_line_bytes: int, not_after: datetime | None) -> AnyEvent:
    if len(line) > max_line_bytes:
        raise InvalidEvent(f"longer than the limit of {max_line_bytes:,} bytes ([input] max_event_bytes of the policy)")
    event = decode_event(line)
    if not_after is not None and event.occurred_at > not_after:
        ahead = (event.occurred_at - not_after).total_seconds() / 86_400 + 1
        raise InvalidEvent(
            f"{event.occurred_at.isoformat()} is {ahead:,.1f} days ahead of this machine's clock - at "
            "`$.occurred_at`; pass --allow-future to publish events dated in the future"
        )
    return event


def _append(
    pending: list[tuple[int, AnyEvent, bytes]], log: EventLog, report_invalid: Callable[[int, str], None]
) -> tuple[int, int, int]:
    """Append one chunk; report its conflicts by line; (appended, duplicates, conflicts)."""
    if not pending:
        return 0, 0, 0
    result = log.append([(event, raw) for _, event, raw in pending])
    for index in result.conflicts:
        line, event, _ = pending[index]
        report_invalid(
            line,
            f"event_id {event.event_id} is already on the log with other content (a conflict): "
            "an event never changes; give a corrected event a new event_id",
        )
    return result.appended, result.duplicates, len(result.conflicts)
