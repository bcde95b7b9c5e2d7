"""The replay's first step, in worker processes: read a range of the log, validate each
record, and put each customer event into the bucket of its customer.

A record's place in its partition is its `seq` (consumers/logs/event_log.py `record_seq`),
so ranges read in parallel need no counting to agree on the log's order. Per range, on
disk under the replay's parts directory:

- `scan-<n>/bucket-<b>.bin`: the valid customer events of bucket `b`, as msgpack
  chunks of [customer id, seq, raw record], in log order;
- `scan-<n>/times.bin`: seq, epoch seconds, kind (lifecycle/partition_time.py: EVENT or
  CLOCK) and customer key of every valid record, for the time rule, which the
  coordinator applies in log order;
- `dead-<n>.parquet`: the records refused here (too large, not a valid event).

Buckets are `crc32(customer id) % buckets`: stable across processes and runs.
"""

from __future__ import annotations

import struct
import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from consumers.logs.event_log import CUSTOMER_EVENTS
from consumers.logs import open_event_log
from consumers.settings import Settings
from lifecycle.partition_time import CLOCK, EVENT, customer_key
from lifecycle.policy import Policy
from lifecycle.state import epoch_seconds
from projections.bulk import parts as bulk
from projections.catalog.dead_letters import INVALID, TOO_LARGE, DeadLetter
from schemas import Clock, InvalidEvent, ValueModelFitted, decode_event

_CHUNK = 5_000
_LENGTH = struct.Struct("<I")
_chunk_decoder = msgspec.msgpack.Decoder(list[tuple[str, int, bytes]])


@dataclass(frozen=True)
class ScanUnit:
    """A range of one partition: positions after `start`, up to `end` (None: the end)."""

    number: int
    partition: str
    start: int
    end: int | None


@dataclass
class ScanResult:
    unit: ScanUnit
    directory: Path
    records: int = 0
    dead_letters: int = 0
    last_position: int | None = None
    clocks: list[tuple[int, int, bytes]] = field(default_factory=list)
    """Valid clocks: (seq, epoch seconds, raw record)."""
    fits: list[tuple[int, bytes]] = field(default_factory=list)
    """Valid value model fits: (position, raw record)."""


def bucket_of(customer_id: str, buckets: int) -> int:
    return zlib.crc32(customer_id.encode()) % buckets


def scan(unit: ScanUnit, settings: Settings, parts: Path, buckets: int, policy: Policy) -> ScanResult:
    """Read `unit`'s range and write what it holds; see the module text."""
    directory = parts / f"scan-{unit.number}"
    directory.mkdir(parents=True)
    result = ScanResult(unit, directory)
    writers = [_BucketWriter(directory / f"bucket-{b}.bin") for b in range(buckets)]
    times = _Times()
    dead: list[DeadLetter] = []
    limit = policy.input.max_event_bytes
    with open_event_log(settings, CUSTOMER_EVENTS, create=False) as log:
        until = None if unit.end is None else {unit.partition: unit.end}
        reading = log.read(lambda _: unit.start, 20_000, partitions=[unit.partition], until=until)
        for seq, position, raw in (numbered for batch in reading for numbered in batch.numbered()):
            result.records += 1
            result.last_position = position
            if len(raw) > limit:
                reason = f"{len(raw):,} bytes, over the policy's limit of {limit:,} ([input] max_event_bytes)"
                dead.append(DeadLetter(unit.partition, position, reason, bytes(raw)[:limit], len(raw), TOO_LARGE))
                continue
            try:
                event = decode_event(raw)
            except InvalidEvent as error:
                dead.append(DeadLetter(unit.partition, position, str(error), bytes(raw), len(raw), INVALID))
                continue
            if type(event) is ValueModelFitted:
                result.fits.append((position, bytes(raw)))
                continue
            at = epoch_seconds(event.occurred_at)
            if type(event) is Clock:
                times.add(seq, at, CLOCK, 0)
                result.clocks.append((seq, at, bytes(raw)))
            else:
                times.add(seq, at, EVENT, customer_key(event.customer_id))
                writers[bucket_of(event.customer_id, buckets)].add(event.customer_id, seq, bytes(raw))
    for writer in writers:
        writer.close()
    times.write(directory / "times.bin")
    bulk.write_dead_letters(parts, unit.number, dead)
    result.dead_letters = len(dead)
    return result


class _BucketWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.pending: list[tuple[str, int, bytes]] = []
        self.file = None

    def add(self, customer_id: str, seq: int, raw: bytes) -> None:
        self.pending.append((customer_id, seq, raw))
        if len(self.pending) >= _CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self.file is None:
            self.file = self.path.open("wb")
        data = msgspec.msgpack.encode(self.pending)
        self.file.write(_LENGTH.pack(len(data)) + data)
        self.pending = []

    def close(self) -> None:
        if self.pending:
            self._flush()
        if self.file is not None:
            self.file.close()


def read_bucket(path: Path) -> Iterator[tuple[str, int, bytes]]:
    """The records a scan wrote to one bucket file, in log order."""
    if not path.exists():
        return
    with path.open("rb") as file:
        while header := file.read(_LENGTH.size):
            yield from _chunk_decoder.decode(file.read(_LENGTH.unpack(header)[0]))


class _Times:
    """seq, epoch seconds, kind and customer key of every valid record, as machine arrays."""

    def __init__(self) -> None:
        self.seqs, self.ats, self.kinds, self.customers = array("q"), array("q"), array("b"), array("q")

    def add(self, seq: int, at: int, kind: int, customer: int) -> None:
        self.seqs.append(seq)
        self.ats.append(at)
        self.kinds.append(kind)
        self.customers.append(customer)

    def write(self, path: Path) -> None:
        with path.open("wb") as file:
            file.write(_LENGTH.pack(len(self.seqs)))
            for column in (self.seqs, self.ats, self.kinds, self.customers):
                column.tofile(file)


def read_times(path: Path) -> tuple[array, array, array, array]:  # type: ignore[type-arg]
    """(seqs, epoch seconds, kinds, customer keys) a scan wrote."""
    columns = array("q"), array("q"), array("b"), array("q")
    with path.open("rb") as file:
        (count,) = _LENGTH.unpack(file.read(_LENGTH.size))
        for column in columns:
            column.fromfile(file, count)
    return columns
