"""Determinism: the same log gives the same lifecycle events, however it is processed.

(a) On random streams of events for a few customers (hypothesis), the pure engine: the
    same stream twice gives identical lifecycle events; sequences, causes and value
    chains are consistent; a state persisted mid-way resumes to the same events. And
    the real `LifecycleProcessor`, in memory, in batches of any size, derives what the
    engine derives (a clock reaches every customer; the processor visits only those
    whose deadline has passed, which must change nothing).
(b) The real pipeline on both logs (`settings`): fixed seeded streams published,
    `lifecycle process --once` twice, the `customer-lifecycle` log (`lifecycle tail`)
    and the `lifecycle_transitions` table against the pure engine.
(c) `lifecycle process` SIGKILLed mid-way and resumed with another batch size ends with
    the same lifecycle events as an uninterrupted run, on both logs.
"""

from __future__ import annotations

import json
import random
import tempfile
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import Phase, example, given
from hypothesis import settings as hypothesis_settings
from eventsourcing.persistence import Tracking
from hypothesis import strategies as st

from consumers.logs.event_log import CUSTOMER_EVENTS, CUSTOMER_LIFECYCLE
from consumers.home import current
from consumers.logs import open_event_log
from consumers.processing.outputs import LocalOutputs
from consumers.processing.processor import LifecycleProcessor
from consumers.publisher import publish_lines
from consumers.settings import Settings
from consumers.logs.sqlite_event_log import SQLiteEventLog
from lifecycle.engine import LifecycleEngine, lifecycle_event_id
from lifecycle.policy import Policy
from lifecycle.population import PopulationSpec, generate, generate_events
from lifecycle.state import CustomerState, decode_state, encode_state, epoch_seconds
from projections.stores.projection_store import DuckDBProjectionStore
from projections.stores.state_store import RocksDBStateStore
from schemas import (
    AnyEvent,
    Clock,
    ComplaintFiled,
    ComplaintResolved,
    Contact,
    MembershipJoined,
    MembershipLeft,
    Purchase,
    ReferralMade,
    Refund,
    SurveyAnswered,
    Visit,
    decode_lifecycle_event,
    encode_event,
)
from schemas.lifecycle_events import LifecycleEvent
from tests.cli import kill_processor_after_commits, lifecycle

POLICY = Policy(version="default-2026.12.07")  # the shipped policy (tests/test_rules.py checks they are equal)
START = datetime(2025, 1, 1, tzinfo=UTC)
HOUR = 3600
CLOCK_STEP = 30 * 24 * HOUR
FAR_LIMIT = int((datetime(2099, 1, 1, tzinfo=UTC) - START).total_seconds())
IDS = uuid.UUID("a4f0c6f2-9b1e-4d3a-8f5c-6e7d8c9b0a11")
INITIAL = {
    "stage": "prospect",
    "activity": "active",
    "loyalty_type": "none",
    "loyalty_tier": "none",
    "value_band": "small",
    "relationship_level": "basic",
}

# --- random streams -------------------------------------------------------------------

Pick = Callable[[int, int], int]
"""An integer in [lo, hi]: drawn by hypothesis, or by a seeded `random.Random`."""

KINDS = (
    "purchase", "purchase", "purchase", "purchase", "clock", "clock", "clock", "refund", "complaint_filed",
    "complaint_resolved", "survey", "membership_joined", "membership_left", "referral", "visit", "contact",
)
AMOUNTS = (1_000, 0, 500, 5_000, 20_000, 60_000, 150_000)
CURRENCIES = ("EUR", "EUR", "USD", "GBP", "JPY")  # JPY: no rate in the policy, counts no value
PROGRAMMES = ("club", "plus")


def build_stream(pick: Pick, tag: str, *, customers: int, events: int, late: bool,
                 gaps: bool = False) -> list[AnyEvent]:
    """A valid stream: mostly in time order, clocks moving time for everyone, and (if
    `late`) some customer events earlier than events before them on the log. A
    customer's first event is never earlier than the last clock before it. Clocks are
    at most 30 days apart, as a producer must keep them: the policy refuses a clock
    further ahead of its partition's time (lifecycle/partition_time.py; that rule is
    tested in tests/test_hostile_input.py), and on Kafka a partition's own time moves
    only with the customers it holds.

    With `gaps`, the log also goes quiet for one to three years now and then, with no
    clock (the records after a gap wait until enough customers confirm it:
    lifecycle/partition_time.py), and a customer `<tag>-far` writes records dated
    decades ahead (they wait for good)."""
    names = [f"{tag}-c{n}" for n in range(customers)]
    cursor = last_clock = 0
    orders: dict[str, list[tuple[str, int, str]]] = defaultdict(list)
    complaints: dict[str, list[str]] = defaultdict(list)
    seen: set[str] = set()
    stream: list[AnyEvent] = []
    for n in range(events):
        kind = KINDS[pick(0, len(KINDS) - 1)]
        event_id = uuid.uuid5(IDS, f"{tag}/{n}")
        cursor += pick(0, (30 if kind == "clock" else 15) * 24) * HOUR
        if gaps and pick(0, 14) == 0:
            cursor += pick(400, 1_100) * 24 * HOUR
            last_clock = cursor
        if gaps and pick(0, 19) == 0:
            ahead = min(cursor + pick(30, 60) * 365 * 24 * HOUR, FAR_LIMIT)
            stream.append(Purchase(event_id=uuid.uuid5(IDS, f"{tag}/{n}/far"), occurred_at=_at(ahead), source="test",
                                   customer_id=f"{tag}-far", order_id=f"far{n}", amount_minor=100, currency="EUR"))
        while cursor - last_clock > CLOCK_STEP:
            last_clock += CLOCK_STEP
            stream.append(Clock(event_id=uuid.uuid5(IDS, f"{tag}/{n}/step/{last_clock}"),
                                occurred_at=_at(last_clock), source="clock"))
        if kind == "clock":
            last_clock = cursor
            stream.append(Clock(event_id=event_id, occurred_at=_at(cursor), source="clock"))
            continue
        customer = names[pick(0, customers - 1)]
        if late and customer in seen and pick(0, 2) == 0:
            when = max(cursor - pick(1, 120 * 24) * HOUR, 0)
        else:
            when = max(cursor, last_clock) if customer not in seen else cursor
        seen.add(customer)
        common = {"event_id": event_id, "occurred_at": _at(when), "source": "test", "customer_id": customer}
        stream.append(_customer_event(pick, kind, n, common, orders[customer], complaints[customer], names))
    return stream


def _customer_event(pick: Pick, kind: str, n: int, common: dict, orders: list, complaints: list,
                    names: list[str]) -> AnyEvent:
    if kind == "purchase":
        amount, currency = AMOUNTS[pick(0, len(AMOUNTS) - 1)], CURRENCIES[pick(0, len(CURRENCIES) - 1)]
        margin = None if pick(0, 1) else amount * pick(0, 6) // 10
        orders.append((f"o{n}", amount, currency))
        return Purchase(**common, order_id=f"o{n}", amount_minor=amount, currency=currency, margin_minor=margin)
    if kind == "refund":
        if not orders or pick(0, 5) == 0:
            return Refund(**common, order_id=f"o-unknown{n}", amount_minor=1_000, currency="EUR")
        order, amount, currency = orders[pick(0, len(orders) - 1)]
        share = (amount, amount // 2, amount // 3, amount + 100)[pick(0, 3)]
        return Refund(**common, order_id=order, amount_minor=share, currency=currency)
    if kind == "complaint_filed":
        complaints.append(f"k{n}")
        severity = ("low", "medium", "high", "critical")[pick(0, 3)]
        return ComplaintFiled(**common, complaint_id=f"k{n}", category="service", severity=severity)
    if kind == "complaint_resolved":
        complaint_id = complaints[pick(0, len(complaints) - 1)] if complaints else f"k-unknown{n}"
        return ComplaintResolved(**common, complaint_id=complaint_id, satisfied=bool(pick(0, 1)))
    if kind == "survey":
        nps = pick(-1, 10)
        csat = pick(0 if nps >= 0 else 1, 5)
        return SurveyAnswered(**common, nps=nps if nps >= 0 else None, csat=csat or None)
    if kind == "membership_joined":
        return MembershipJoined(**common, programme=PROGRAMMES[pick(0, 1)])
    if kind == "membership_left":
        return MembershipLeft(**common, programme=PROGRAMMES[pick(0, 1)])
    if kind == "referral":
        return ReferralMade(**common, referred_customer_id=names[pick(0, len(names) - 1)])
    if kind == "visit":
        return Visit(**common, place=("store", "web", "app")[pick(0, 2)])
    return Contact(**common, channel="phone", direction=("inbound", "outbound")[pick(0, 1)])


def _at(seconds: int) -> datetime:
    return START + timedelta(seconds=seconds)


@st.composite
def streams(draw: st.DrawFn, late: bool = True) -> list[AnyEvent]:
    def pick(lo: int, hi: int) -> int:
        return draw(st.integers(lo, hi))

    return build_stream(pick, "h", customers=pick(1, 4), events=pick(1, 60), late=late)


def seeded_stream(seed: int, *, late: bool, customers: int = 8, events: int = 400) -> list[AnyEvent]:
    rng = random.Random(seed)
    return build_stream(rng.randint, f"s{seed}", customers=customers, events=events, late=late)


# --- the pure engine ------------------------------------------------------------------


def derive(stream: Iterable[AnyEvent], policy: Policy = POLICY, *,
           persist_at: int | None = None) -> tuple[list[LifecycleEvent], dict[str, CustomerState]]:
    """The lifecycle events of `stream` from fresh states, by the pure engine.

    Each clock reaches every customer seen so far (lifecycle/deadlines.py: "a `clock`
    event reaches every customer of its partition"). `persist_at`: the states are
    encoded and decoded before that event, as across a restart of the processor."""
    engine = LifecycleEngine(policy)
    states: dict[str, CustomerState] = {}
    out: list[LifecycleEvent] = []
    for index, event in enumerate(stream):
        if index == persist_at:
            states = {key: decode_state(encode_state(state)) for key, state in states.items()}
        if type(event) is Clock:
            for state in states.values():
                out.extend(engine.on_clock(state, event))
            continue
        state = states.get(event.customer_id)
        if state is None:
            state = states[event.customer_id] = CustomerState(customer_id=event.customer_id)
        out.extend(engine.on_event(state, event))
    return out, states


@pytest.fixture(scope="module")
def processor_parts(tmp_path_factory) -> Path:
    """Where in-process processors keep their stores, a fresh directory each."""
    return tmp_path_factory.mktemp("processor")


def process(stream: list[AnyEvent], parts: Path, batch_size: int, cache_size: int = 2) -> list[LifecycleEvent]:
    """The lifecycle events the real `LifecycleProcessor` derives from `stream` (one
    partition, batches of `batch_size`), committed batch by batch to real stores, with
    a state cache of `cache_size`, so that most states are read back from RocksDB."""
    with tempfile.TemporaryDirectory(dir=parts) as directory:
        home = Path(directory)
        raws = [encode_event(event) for event in stream]
        with SQLiteEventLog(home=home, name=CUSTOMER_EVENTS) as log, \
                SQLiteEventLog(home=home, name=CUSTOMER_LIFECYCLE) as lifecycle_log:
            # One segment per batch: the embedded log reads whole segments.
            for number, start in enumerate(range(0, len(raws), batch_size), start=1):
                log.recorder.record(raws[start : start + batch_size], Tracking("a-test-producer", number))
            store = DuckDBProjectionStore(":memory:")
            states = RocksDBStateStore(home / "states", cache_size=cache_size)
            try:
                processor = LifecycleProcessor(log, LocalOutputs(store, lifecycle_log), states, LifecycleEngine(POLICY),
                                               batch_size)
                assert processor.run_once().dead_letters == 0
            finally:
                states.close()
                store.close()
            return [decode_lifecycle_event(raw) for batch in lifecycle_log.read(lambda _: None) for raw in batch.values]


def per_customer(events: Iterable[LifecycleEvent]) -> dict[str, list[bytes]]:
    by_customer: dict[str, list[bytes]] = defaultdict(list)
    for event in events:
        by_customer[event.customer_id].append(encode_event(event))
    return dict(by_customer)


def check_consistent(stream: list[AnyEvent], events: list[LifecycleEvent], states: dict[str, CustomerState],
                     policy_version: str = POLICY.version) -> None:
    """Sequences 1..n, causes on the stream (a customer event; none for a change time
    alone brought), one change per dimension per cause and moment, each change starting
    where the last ended."""
    causes = {event.event_id: event for event in stream}
    assert len({event.event_id for event in events}) == len(events), "duplicate lifecycle event ids"
    sequences: dict[str, list[int]] = defaultdict(list)
    where: dict[str, dict[str, str]] = defaultdict(lambda: dict(INITIAL))
    moments: set[tuple[str, str, tuple[uuid.UUID, ...], datetime]] = set()
    for event in events:
        sequences[event.customer_id].append(event.sequence)
        for cause_id in event.caused_by:
            cause = causes[cause_id]
            assert type(cause) is not Clock and cause.customer_id == event.customer_id
        if event.caused_by:
            assert event.occurred_at == causes[event.caused_by[0]].occurred_at
        else:  # time alone: named by no record
            name = f"time/{event.customer_id}/{event.sequence}/{event.dimension}/{event.to_value}"
            assert event.event_id == lifecycle_event_id(name), event
        # One change per dimension per cause and moment: the net change.
        moment = (event.customer_id, event.dimension, tuple(event.caused_by), event.occurred_at)
        assert moment not in moments, event
        moments.add(moment)
        assert event.policy_version == policy_version
        assert event.from_value == where[event.customer_id][event.dimension], event
        assert event.from_value != event.to_value
        where[event.customer_id][event.dimension] = event.to_value
    for customer, numbers in sequences.items():
        assert numbers == list(range(1, len(numbers) + 1)), (customer, numbers)
    for customer, state in states.items():
        assert state.sequence == len(sequences.get(customer, []))
        assert {name: getattr(state, name) for name in INITIAL} == where[customer]


# Derandomized, so that a run is repeatable; no shrinking, which can take minutes on
# these streams: a failure prints the whole (at most 60-event) stream instead.
PURE = hypothesis_settings(max_examples=100, deadline=None, derandomize=True,
                           phases=(Phase.explicit, Phase.reuse, Phase.generate))


def _event(kind, day: float, n: int, customer: str = "m-c0", **fields) -> AnyEvent:
    """A hand-written event for the minimal examples."""
    when = START + timedelta(seconds=round(day * 86_400))
    event_id = uuid.uuid5(IDS, f"minimal/{n}")
    if kind is Clock:
        return Clock(event_id=event_id, occurred_at=when, source="clock")
    return kind(event_id=event_id, occurred_at=when, source="test", customer_id=customer, **fields)


def _purchase(day: float, n: int) -> Purchase:
    return _event(Purchase, day, n, order_id=f"o{n}", amount_minor=1_000, currency="EUR")


# The smallest known stream where skipping a clock that is not due changes the result:
# three purchases a day apart (a 7-day rhythm floor: dormant 28 days after the last),
# a clock on day 30 that is due for nobody, then the third purchase, late (day 2).
LATE_AFTER_CLOCK = [_purchase(0, 0), _purchase(1, 1), _event(Clock, 30, 2), _purchase(2, 3), _event(Clock, 31, 4)]


@PURE
@given(streams())
def test_the_same_stream_twice_gives_identical_lifecycle_events(stream):
    first, first_states = derive(stream)
    second, second_states = derive(stream)
    assert [encode_event(e) for e in first] == [encode_event(e) for e in second]
    assert {k: encode_state(s) for k, s in first_states.items()} == {
        k: encode_state(s) for k, s in second_states.items()}


@PURE
@given(streams())
def test_sequences_causes_and_changes_are_consistent(stream):
    events, states = derive(stream)
    check_consistent(stream, events, states)


@PURE
@given(streams(), st.integers(0, 60))
def test_a_state_persisted_mid_way_resumes_to_the_same_events(stream, cut):
    assert [encode_event(e) for e in derive(stream, persist_at=cut)[0]] == [
        encode_event(e) for e in derive(stream)[0]]


@PURE
@given(streams(late=False), st.integers(1, 20))
def test_in_order_the_processor_derives_what_the_engine_derives(processor_parts, stream, batch_size):
    """On a clock the processor visits only the customers whose deadline has passed
    (`DeadlineQueue`); in batches of any size, it derives what the engine derives."""
    assert per_customer(process(stream, processor_parts, batch_size)) == per_customer(derive(stream)[0])


@PURE
@given(streams(), st.integers(1, 20))
@example(LATE_AFTER_CLOCK, 100)
def test_the_processor_derives_what_the_engine_derives(processor_parts, stream, batch_size):
    """The same with late events. A clock that reaches a customer moves their time, so a
    later late event is decided as of the clock's time (lifecycle/engine.py: "never move
    the customer's time backwards"), whether or not one of their deadlines had passed:
    lifecycle/deadlines.py says the others only do not "need deciding again"."""
    assert per_customer(process(stream, processor_parts, batch_size)) == per_customer(derive(stream)[0])


# --- the pipeline, on both logs -------------------------------------------------------


def _lines(events: Iterable[AnyEvent]) -> bytes:
    return b"".join(encode_event(event) + b"\n" for event in events)


def _tail(settings: Settings, capsys) -> list[bytes]:
    """`lifecycle tail`: the customer-lifecycle log (the topic, with Kafka)."""
    capsys.readouterr()
    assert lifecycle(settings, "tail") == 0
    return [line.encode() for line in capsys.readouterr().out.splitlines()]


def _embedded_lifecycle_log(home: Path) -> list[bytes]:
    """The embedded `customer-lifecycle` log of `home`'s generation in use, where the
    processor records."""
    with SQLiteEventLog(home=current(home), name=CUSTOMER_LIFECYCLE) as log:
        return [bytes(raw) for batch in log.read(lambda _: None) for raw in batch.values]


def _query(settings: Settings, capsys, sql: str) -> list[dict]:
    capsys.readouterr()
    assert lifecycle(settings, "sql", sql, "--format", "json") == 0
    return json.loads(capsys.readouterr().out)


TRANSITIONS = (
    "SELECT event_id, customer_id, sequence, dimension, from_value, to_value, rule, policy_version, "
    "caused_by, epoch(occurred_at)::BIGINT AS occurred_at FROM lifecycle_transitions ORDER BY customer_id, sequence"
)
DIMENSIONS = "SELECT customer_id, " + ", ".join(INITIAL) + " FROM customers ORDER BY customer_id"


def _rows(events: Iterable[LifecycleEvent]) -> list[dict]:
    rows = [
        {"event_id": str(e.event_id), "customer_id": e.customer_id, "sequence": e.sequence,
         "dimension": e.dimension, "from_value": e.from_value, "to_value": e.to_value, "rule": e.rule,
         "policy_version": e.policy_version, "caused_by": [str(c) for c in e.caused_by],
         "occurred_at": epoch_seconds(e.occurred_at)}
        for e in events
    ]
    return sorted(rows, key=lambda row: (row["customer_id"], row["sequence"]))


def _by_customer(lines: list[bytes]) -> dict[str, list[bytes]]:
    return per_customer(decode_lifecycle_event(line) for line in lines)


def check_log(lines: list[bytes]) -> None:
    """No duplicates; each customer's events in sequence order 1..n."""
    events = [decode_lifecycle_event(line) for line in lines]
    assert len({e.event_id for e in events}) == len(events), "duplicate lifecycle events on the log"
    for customer, raws in per_customer(events).items():
        numbers = [decode_lifecycle_event(raw).sequence for raw in raws]
        assert numbers == list(range(1, len(numbers) + 1)), (customer, numbers)


STREAMS = {
    "in-order": dict(seed=1, late=False),
    "with-late-events": dict(seed=3, late=True),
}


@pytest.mark.parametrize("spec", STREAMS.values(), ids=STREAMS.keys())
def test_the_pipeline_derives_what_the_engine_derives(settings, spec, tmp_path, capsys):
    stream = seeded_stream(**spec)
    source = tmp_path / "stream.jsonl"
    source.write_bytes(_lines(stream))
    assert lifecycle(settings, "publish", "--allow-future", str(source)) == 0
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    recorded = _tail(settings, capsys)
    transitions = _query(settings, capsys, TRANSITIONS)
    customers = _query(settings, capsys, DIMENSIONS)

    # Processing again adds nothing, to the log or the projections.
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    assert "processed 0 events" in capsys.readouterr().err
    assert _tail(settings, capsys) == recorded
    assert _query(settings, capsys, TRANSITIONS) == transitions
    if settings.kafka:
        assert _by_customer(_embedded_lifecycle_log(settings.home)) == _by_customer(recorded)

    # The log, the table and the pipeline's own bookkeeping agree.
    check_log(recorded)
    assert transitions == _rows(decode_lifecycle_event(line) for line in recorded)

    # ... and say what the pure engine says of the same stream.
    expected, states = derive(stream)
    check_consistent(stream, expected, states)
    assert _by_customer(recorded) == per_customer(expected)
    assert transitions == _rows(expected)
    assert customers == [
        {"customer_id": key, **{name: getattr(state, name) for name in INITIAL}}
        for key, state in sorted(states.items())
    ]


def test_a_late_event_after_a_clock_is_decided_as_of_the_clock(settings, tmp_path, capsys):
    """The clock on day 30 reaches the customer (no deadline of theirs has passed), so the
    late purchase of day 2 is decided as of day 30: 28 days after it, dormant at once,
    caused by that purchase - not later, by the next clock that happens to be due."""
    source = tmp_path / "stream.jsonl"
    source.write_bytes(_lines(LATE_AFTER_CLOCK))
    assert lifecycle(settings, "publish", "--allow-future", str(source)) == 0
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    recorded = [decode_lifecycle_event(line) for line in _tail(settings, capsys)]
    activity = [(e.from_value, e.to_value, e.caused_by) for e in recorded if e.dimension == "activity"]
    assert activity == [("active", "dormant", [LATE_AFTER_CLOCK[3].event_id])]
    assert [encode_event(e) for e in recorded] == [encode_event(e) for e in derive(LATE_AFTER_CLOCK)[0]]


# --- SIGKILL mid-way, resumed with other batch boundaries -----------------------------

CRASH_SPEC = PopulationSpec(customers=700, seed=23, days=365)
COMMITS_BEFORE_KILL = 3
BATCHES = {
    # (batch size of the killed run, batch size of the run that resumes it)
    "killed-at-1000-resumed-at-3000": (1_000, 3_000),
    "killed-at-2000-resumed-at-700": (2_000, 700),
}


@pytest.fixture(scope="module")
def crash_expected() -> dict[str, list[bytes]]:
    """The pure engine's lifecycle events of the crash population, per customer."""
    stream = list(generate_events(CRASH_SPEC))
    events, states = derive(stream)
    check_consistent(stream, events, states)
    return per_customer(events)


@pytest.mark.parametrize("batches", BATCHES.values(), ids=BATCHES.keys())
def test_a_killed_processor_resumes_to_the_same_lifecycle_events(settings, batches, tmp_path, capsys,
                                                                  crash_expected):
    killed_batch, resumed_batch = batches
    with open_event_log(settings, CUSTOMER_EVENTS) as log:
        report = publish_lines(generate(CRASH_SPEC), log, lambda n, reason: None)
    assert report.invalid == 0 and report.appended > (COMMITS_BEFORE_KILL + 1) * killed_batch

    kill_processor_after_commits(settings, batch_size=killed_batch, commits=COMMITS_BEFORE_KILL)
    assert lifecycle(settings, "process", "--once", "--no-clock", "--batch-size", str(resumed_batch)) == 0
    resumed = _embedded_lifecycle_log(settings.home)
    resumed_transitions = _query(settings, capsys, TRANSITIONS)
    check_log(resumed)
    if settings.kafka:
        # The topic got each event once, although the first run died before relaying.
        topic = _tail(settings, capsys)
        check_log(topic)
        assert _by_customer(topic) == _by_customer(resumed)

    # An uninterrupted run over the same log, into a home of its own (its relay would
    # add its events to the shared topic again, so the topic was read above).
    reference = Settings(home=tmp_path / "reference", kafka=settings.kafka, partitions=settings.partitions)
    if settings.kafka is None:
        with open_event_log(reference, CUSTOMER_EVENTS) as log:
            publish_lines(generate(CRASH_SPEC), log, lambda n, reason: None)
    assert lifecycle(reference, "process", "--once", "--no-clock") == 0
    uninterrupted = _embedded_lifecycle_log(reference.home)

    assert len(resumed) == len(uninterrupted) > 1_000
    assert _by_customer(resumed) == _by_customer(uninterrupted) == crash_expected
    if settings.kafka is None:
        # One partition: the very same log, in the same order.
        assert resumed == uninterrupted
    assert resumed_transitions == _query(reference, capsys, TRANSITIONS)
