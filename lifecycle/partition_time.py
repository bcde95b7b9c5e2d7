"""A log partition's confirmed time, and the rule that lets no single record move it far.

Time never goes back, and a `clock` moves every customer of its partition: one clock
dated 2099 would churn everyone for good, and one purchase dated 2099 would leave its
customer decided as of 2099 for ever. But a log may also truly jump: an old first
event, then years of history; a quiet year; an engine stopped for months. So a record
far ahead is neither taken nor refused: it *waits* until time is confirmed near it.

- A partition's **confirmed time** is the latest time that `confirm_customers` distinct
  customers have reached with their records (the K-th largest of the customers' latest
  times, counting every valid customer event, waiting or not; with fewer customers, the
  smallest of theirs), or the latest clock taken, whichever is later.
- A customer event dated more than `event_max_lead_days` ahead of it, or a clock more
  than `clock_max_lead_days`, **waits**; everything else is taken at once. A waiting
  record is taken as soon as the confirmed time comes within its lead: when records of
  enough other customers agree with it, or a clock (the engine steps its own clocks
  within the lead: `clock_steps`) moves time there.
- Released records are taken right after the record that released them, in time order
  (ties in log order); a released clock confirms time itself, which can release more.
- At most `max_held_records` wait per partition; a record beyond that is refused
  (dead-lettered with the reason), as a flood of far-future records would be.

So one customer, or a few, dated far ahead move no one's time but their waiting
records', and a real jump is taken once the records after it confirm it. The rule
reads only the log and the policy, never the wall clock, and the live processor and
the replay run this same code over the same records in log order: they wait for and
release the same records at the same places. Records are named by `seq` (their place
in the partition, `position << 10 | index`) and customers by `customer_key`.

A clock in a partition with no customer event yet moves no one and sets nothing.
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from lifecycle.policy import Policy
from lifecycle.state import DAY, as_datetime

EVENT, CLOCK = 0, 1
"""The kinds of record the rule sees."""

TAKE, WAIT, REFUSE, IGNORE = "take", "wait", "refuse", "ignore"
"""What to do with a record offered to the rule: take it now; nothing (it waits, and
comes back from `released`); dead-letter it (`refusal` says why); nothing at all (a
clock with nobody to move)."""


def customer_key(customer_id: str) -> int:
    """A stable 63-bit key for a customer id: the same in every process and run (two
    checksums in C: a fraction of a cryptographic hash's cost, on every record)."""
    data = customer_id.encode()
    return (zlib.crc32(data) & 0x7FFF_FFFF) << 32 | zlib.adler32(data)


@dataclass(frozen=True)
class Held:
    """A record waiting for time: its place, time, kind and customer (0 for a clock)."""

    seq: int
    at: int
    kind: int
    customer: int


class PartitionTime:
    """One partition's confirmed time, its witnesses and its waiting records."""

    def __init__(
        self,
        policy: Policy,
        clock_at: int | None = None,
        witnesses: Iterable[tuple[int, int]] = (),
        held: Iterable[Held] = (),
        latest: int | None = None,
    ) -> None:
        self.policy = policy
        self.clock_at = clock_at
        self.latest = latest
        """The latest time of the records taken (customer events and clocks)."""
        self.witnesses = dict(witnesses)
        """customer key -> latest time, for the `confirm_customers` latest customers."""
        self._agreed = min(self.witnesses.values(), default=None)
        self._event_lead = policy.time.event_max_lead_days * DAY
        self._events: list[tuple[int, int]] = []
        self._clocks: list[tuple[int, int]] = []
        self.held: dict[int, Held] = {}
        for record in held:
            self._hold(record)
        self.refusal: str | None = None
        self._released: list[Held] = []

    # -- reading ----------------------------------------------------------------------

    @property
    def confirmed(self) -> int | None:
        """The partition's confirmed time (epoch seconds), None before any customer event."""
        agreed = self._agreed
        if agreed is None or self.clock_at is None or agreed > self.clock_at:
            return agreed
        return self.clock_at

    def state(self) -> tuple[int | None, int | None, list[tuple[int, int]]]:
        """What to persist beside the waiting records: (latest clock, latest time taken, witnesses)."""
        return self.clock_at, self.latest, sorted(self.witnesses.items())

    # -- offering records, in log order -----------------------------------------------

    def offer_event(self, seq: int, at: int, customer: int) -> str:
        """A valid customer event: TAKE, WAIT or REFUSE (see `refusal`)."""
        # What was confirmed before matters only to release what waits.
        before = self.confirmed if self.held else None
        self._witness(customer, at)
        confirmed = self.confirmed
        assert confirmed is not None
        if at - confirmed > self._event_lead:
            verdict = self._wait(Held(seq, at, EVENT, customer), confirmed)
        else:
            verdict = TAKE
            if self.latest is None or at > self.latest:
                self.latest = at
        if before is not None and confirmed > before:
            self._release()
        return verdict

    def offer_clock(self, seq: int, at: int) -> str:
        """A valid clock: TAKE (it moves the partition's customers), WAIT, REFUSE or IGNORE."""
        confirmed = self.confirmed
        if confirmed is None:
            return IGNORE
        if at - confirmed > self.policy.time.clock_max_lead_days * DAY:
            return self._wait(Held(seq, at, CLOCK, 0), confirmed)
        self._take_clock(at)
        if self.held:
            self._release()
        return TAKE

    def released(self) -> list[Held]:
        """The waiting records the last offer released, in the order to take them; each
        is returned once."""
        out, self._released = self._released, []
        return out

    # -- inside ------------------------------------------------------------------------

    def _witness(self, customer: int, at: int) -> None:
        witnesses = self.witnesses
        known = witnesses.get(customer)
        if known is not None:
            if at <= known:
                return
        elif len(witnesses) >= self.policy.time.confirm_customers:
            if self._agreed is not None and at <= self._agreed:
                return
            del witnesses[min(witnesses, key=witnesses.__getitem__)]
        witnesses[customer] = at
        self._agreed = min(witnesses.values())

    def _take_clock(self, at: int) -> None:
        if self.clock_at is None or at > self.clock_at:
            self.clock_at = at
        self._took(at)

    def _took(self, at: int) -> None:
        if self.latest is None or at > self.latest:
            self.latest = at

    def _wait(self, record: Held, confirmed: int) -> str:
        limit = self.policy.time.max_held_records
        if len(self.held) >= limit:
            self.refusal = _refusal(record, confirmed, limit, self.policy)
            return REFUSE
        self._hold(record)
        return WAIT

    def _hold(self, record: Held) -> None:
        self.held[record.seq] = record
        lead = self.policy.time.event_max_lead_days if record.kind == EVENT else self.policy.time.clock_max_lead_days
        # Keyed by the confirmed time that releases it: its time less its lead.
        heapq.heappush(self._events if record.kind == EVENT else self._clocks, (record.at - lead * DAY, record.seq))

    def _release(self) -> None:
        """Take every waiting record the confirmed time has come within the lead of."""
        while True:
            confirmed = self.confirmed
            assert confirmed is not None
            events = list(_due(self._events, confirmed))
            clocks = list(_due(self._clocks, confirmed))
            if not events and not clocks:
                return
            for _, seq in sorted((self.held[seq].at, seq) for seq in events + clocks):
                record = self.held.pop(seq)
                self._released.append(record)
                if record.kind == CLOCK:
                    self._take_clock(record.at)
                else:
                    self._took(record.at)

    def held_records(self) -> Iterator[Held]:
        """The records waiting now, in log order."""
        return iter(sorted(self.held.values(), key=lambda record: record.seq))


def _due(heap: list[tuple[int, int]], confirmed: int) -> Iterator[int]:
    while heap and heap[0][0] <= confirmed:
        yield heapq.heappop(heap)[1]


def waiting_reason(record: Held, confirmed: int | None, policy: Policy) -> str:
    """Why a record waits, in words, with what would take it."""
    what, lead, setting = _what(record, policy)
    ahead = "" if confirmed is None else (
        f", {(record.at - confirmed) / DAY:,.1f} days ahead of its partition's confirmed time "
        f"{as_datetime(confirmed).isoformat()}")
    return (
        f"a {what} dated {as_datetime(record.at).isoformat()}{ahead}; the policy takes at most {lead} days "
        f"([time] {setting}). It waits until {policy.time.confirm_customers} customers' records or a clock "
        f"confirm time within {lead} days of it (`lifecycle clock` steps time to now), and is then taken"
    )


def _refusal(record: Held, confirmed: int, limit: int, policy: Policy) -> str:
    what, lead, setting = _what(record, policy)
    return (
        f"a {what} dated {as_datetime(record.at).isoformat()}, {(record.at - confirmed) / DAY:,.1f} days ahead of "
        f"its partition's confirmed time {as_datetime(confirmed).isoformat()} (beyond [time] {setting} = {lead}), "
        f"while {limit:,} records of the partition already wait for time ([time] max_held_records): a flood of "
        "far-future records. If the dates are right, publish clocks up to them (`lifecycle clock --at TIME`) and "
        "run `lifecycle replay`"
    )


def _what(record: Held, policy: Policy) -> tuple[str, int, str]:
    if record.kind == CLOCK:
        return "clock", policy.time.clock_max_lead_days, "clock_max_lead_days"
    return "customer event", policy.time.event_max_lead_days, "event_max_lead_days"


def clock_steps(policy: Policy, since: int | None, now: int) -> list[int]:
    """The clock times to append to move a partition from `since` to `now`: `now`,
    preceded by a clock a day when the gap is longer than a day (or by steps of half
    the clock lead, if that is shorter).

    Steps keep each clock within the lead (`clock_max_lead_days`), and they bound what
    one clock decides: a clock decides every customer whose deadline it passes in one
    record, and a record is the smallest thing the processor can checkpoint after. At
    700 000 customers one step of half a month held 7 GB of changed states before its
    checkpoint; a day's step holds about a day's deadlines.
    """
    step = max(min(DAY, policy.time.clock_max_lead_days * DAY // 2), 1)
    if since is None or now - since <= step:
        return [now]
    return [*range(since + step, now, step), now]
