"""The time rule on its own (lifecycle/partition_time.py): pure logic, so a fake-free unit
test of it, and a property test on random streams with late events, quiet gaps and
far-ahead outliers: no record of the real history lost, no outlier moving time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from hypothesis import Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from lifecycle.partition_time import (
    CLOCK,
    EVENT,
    IGNORE,
    REFUSE,
    TAKE,
    WAIT,
    PartitionTime,
    clock_steps,
    waiting_reason,
)
from lifecycle.policy import Policy, TimePolicy
from lifecycle.state import DAY, epoch_seconds

POLICY = Policy(version="test-time")
YEAR = 365 * DAY


def day(text: str) -> int:
    return epoch_seconds(datetime.fromisoformat(text).replace(tzinfo=UTC))


@dataclass
class Feed:
    """Records offered in log order; what was taken, in the order taken."""

    rule: PartitionTime = field(default_factory=lambda: PartitionTime(POLICY))
    taken: list[int] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)
    seq: int = 0

    def event(self, at: int, customer: int) -> str:
        return self._offer(EVENT, at, customer)

    def clock(self, at: int) -> str:
        return self._offer(CLOCK, at, 0)

    def _offer(self, kind: int, at: int, customer: int) -> str:
        self.seq += 1
        seq = self.seq
        verdict = self.rule.offer_event(seq, at, customer) if kind == EVENT else self.rule.offer_clock(seq, at)
        if verdict == TAKE:
            self.taken.append(seq)
        elif verdict == REFUSE:
            self.refused.append(seq)
        self.taken.extend(record.seq for record in self.rule.released())
        return verdict

    def step_to(self, at: int) -> None:
        """What `lifecycle clock` appends: clocks stepping from the confirmed time to `at`."""
        for moment in clock_steps(POLICY, self.rule.confirmed, at):
            self.clock(moment)


def test_an_old_first_event_then_years_of_history_is_taken_once_customers_agree():
    feed = Feed()
    assert feed.event(day("2019-03-01"), 1) == TAKE
    verdicts = [feed.event(day("2021-01-10") + n * DAY, 100 + n % 50) for n in range(200)]
    # The first two customers of 2021 wait: two could be wrong; the third confirms them.
    assert verdicts[:2] == [WAIT, WAIT] and set(verdicts[2:]) == {TAKE}
    assert sorted(feed.taken) == list(range(1, 202)) and not feed.rule.held
    assert feed.rule.confirmed is not None and feed.rule.confirmed >= day("2021-01-10")


def test_a_quiet_year_then_ordinary_customers():
    feed = Feed()
    for n in range(30):
        feed.event(day("2023-01-01") + n * 5 * DAY, n % 6)
    for n in range(30):
        feed.event(day("2025-02-01") + n * DAY, n % 6)
    assert len(feed.taken) == 60 and not feed.rule.held


def test_one_far_ahead_customer_moves_no_time_and_waits():
    feed = Feed()
    for n in range(10):
        feed.event(day("2025-01-01") + n * DAY, n % 4)
    assert [feed.event(day("2099-12-31"), 99) for _ in range(5)] == [WAIT] * 5
    assert feed.clock(day("2099-12-31")) == WAIT
    # It takes one witness's place: time is what the other customers agree on.
    assert feed.rule.confirmed == day("2025-01-09")
    # Real records beside it still go through, and the outliers keep waiting.
    assert feed.event(day("2025-01-20"), 2) == TAKE
    assert len(feed.rule.held) == 6 and feed.rule.confirmed <= day("2025-01-20")


def test_a_clock_long_after_the_last_event_waits_until_stepped_to():
    feed = Feed()
    for n in range(9):
        feed.event(day("2025-01-01") + n * DAY, n % 3)
    late = feed.clock(day("2025-07-01"))
    assert late == WAIT
    held = next(iter(feed.rule.held.values()))
    reason = waiting_reason(held, feed.rule.confirmed, POLICY)
    assert "clock dated 2025-07-01" in reason and "lifecycle clock" in reason
    feed.step_to(day("2025-07-01"))
    assert not feed.rule.held and feed.rule.clock_at == day("2025-07-01")


def test_a_clock_in_a_partition_without_customers_moves_no_one():
    assert Feed().clock(day("2025-01-01")) == IGNORE


def test_released_records_come_after_the_record_releasing_them_in_time_order():
    feed = Feed(PartitionTime(Policy(version="t", time=TimePolicy(confirm_customers=2))))
    feed.event(day("2020-01-01"), 1)
    assert feed.event(day("2022-03-01"), 2) == WAIT
    assert feed.clock(day("2022-02-01")) == WAIT
    # A third customer agrees with the second (two customers reach 2022-01-01): it is
    # taken, then what waited, by time: the clock of February, the event of March.
    assert feed.event(day("2022-01-01"), 3) == TAKE
    assert feed.taken == [1, 4, 3, 2]
    assert feed.rule.confirmed == day("2022-02-01")


def test_a_released_clock_confirms_time_and_releases_more():
    feed = Feed(PartitionTime(Policy(version="t", time=TimePolicy(confirm_customers=2))))
    feed.event(day("2024-01-01"), 1)
    feed.event(day("2024-01-02"), 2)
    assert feed.clock(day("2024-03-01")) == WAIT
    assert feed.clock(day("2024-03-25")) == WAIT
    # Stepped to: 2024-01-30 confirms the first, which confirms the second.
    assert feed.clock(day("2024-01-30")) == TAKE
    assert feed.taken == [1, 2, 5, 3, 4] and feed.rule.clock_at == day("2024-03-25")


def test_at_most_max_held_records_wait_then_they_are_refused():
    feed = Feed(PartitionTime(Policy(version="t", time=TimePolicy(max_held_records=2))))
    for n in range(6):
        feed.event(day("2025-01-01") + n * DAY, n % 3)
    assert [feed.event(day("2090-01-01"), 9) for _ in range(3)] == [WAIT, WAIT, REFUSE]
    assert "max_held_records" in (feed.rule.refusal or "")


def test_a_restored_rule_decides_as_the_one_it_was_saved_from():
    feed = Feed()
    for n in range(20):
        feed.event(day("2024-01-01") + n * 9 * DAY, n % 5)
    feed.event(day("2026-06-01"), 40)
    clock_at, latest, witnesses = feed.rule.state()
    restored = PartitionTime(POLICY, clock_at, witnesses, feed.rule.held_records(), latest)
    later = [(day("2026-06-02") + n * DAY, 41 + n) for n in range(4)]
    original = [(feed.rule.offer_event(100 + n, at, c), feed.rule.released()) for n, (at, c) in enumerate(later)]
    again = [(restored.offer_event(100 + n, at, c), restored.released()) for n, (at, c) in enumerate(later)]
    assert original == again and (restored.confirmed, restored.latest) == (feed.rule.confirmed, feed.rule.latest)


# --- random streams --------------------------------------------------------------------


@dataclass(frozen=True)
class Stream:
    """Records in log order: (kind, time, customer, is it an outlier)."""

    records: list[tuple[int, int, int, bool]]

    @property
    def end(self) -> int:
        return max(at for _, at, _, outlier in self.records if not outlier)


@st.composite
def streams(draw: st.DrawFn) -> Stream:
    """A real-shaped history: customers who come and go, quiet gaps of up to three years,
    late events (earlier than those before them), clocks now and then; and up to two
    outlier customers whose every record is dated decades ahead, sprinkled in."""
    customers = draw(st.integers(3, 12))
    outliers = draw(st.integers(0, POLICY.time.confirm_customers - 1))
    # The partition's first customer record sets its time: one of the real history.
    now, records = day("2019-01-01"), [(EVENT, day("2019-01-01"), 1, False)]
    for _ in range(draw(st.integers(5, 120))):
        now += draw(st.one_of(st.integers(0, 10 * DAY), st.integers(0, 3 * YEAR)))
        kind = draw(st.sampled_from((EVENT, EVENT, EVENT, CLOCK)))
        late = draw(st.integers(0, 4)) == 0
        at = now - draw(st.integers(0, 400 * DAY)) if late else now
        records.append((kind, at, 0 if kind == CLOCK else draw(st.integers(1, customers)), False))
        if outliers and draw(st.integers(0, 9)) == 0:
            ahead = now + draw(st.integers(30, 80)) * YEAR
            records.append((EVENT, ahead, 1000 + draw(st.integers(1, outliers)), True))
    return Stream(records)


RULES = hypothesis_settings(max_examples=300, deadline=None, derandomize=True,
                            phases=(Phase.explicit, Phase.reuse, Phase.generate))


@RULES
@given(streams())
def test_no_real_record_is_lost_and_no_outlier_moves_time(stream):
    feed, kinds, outliers = Feed(), {}, set()
    kinds: dict[int, int]
    reached = None  # the latest time of the real history so far
    for kind, at, customer, outlier in stream.records:
        verdict = feed.event(at, customer) if kind == EVENT else feed.clock(at)
        kinds[feed.seq] = kind
        if outlier:
            outliers.add(feed.seq)
        else:
            reached = at if reached is None else max(reached, at)
        assert verdict != REFUSE
        confirmed = feed.rule.confirmed
        assert confirmed is None or confirmed <= reached, "an outlier moved time"
    # A batch run's clock up to the history's end takes everything real that waited.
    feed.step_to(stream.end)
    waiting = set(feed.rule.held)
    assert waiting == outliers
    # Every record of the stream was taken, waits (the outliers), or is a clock before
    # any customer (it moves no one).
    missing = set(kinds) - set(feed.taken) - waiting
    assert all(kinds[seq] == CLOCK for seq in missing)


@given(st.integers(0, 2_000_000_000), st.integers(0, 3 * 365 * DAY), st.integers(1, 60))
def test_clock_steps_move_a_day_at_most_each_and_end_at_now(since, gap, lead_days):
    """Each step is at most a day (and within the clock lead), so that one clock decides
    at most about a day's deadlines before the processor can checkpoint after it."""
    policy = Policy(version="test-steps", time=TimePolicy(clock_max_lead_days=lead_days))
    steps = clock_steps(policy, since, since + gap)
    assert steps[-1] == since + gap
    moves = [later - earlier for earlier, later in zip([since, *steps], steps)]
    assert all(0 < move <= min(DAY, lead_days * DAY) for move in moves) or gap == 0
