"""A log partition's event time, and the rule that keeps one record from moving it far.

A partition's *event time* is the latest event time among the records of the partition
the engine has taken (customer events and clocks); its *clock* is the latest clock it
has taken, which moves the time of every customer of the partition. One record must not
move time for everyone: a clock dated in 2099 would churn every customer at once, and
time never goes back. So a record dated further ahead of the partition's event time
than the policy allows (`[time] clock_max_lead_days` for a clock,
`event_max_lead_days` for a customer event, whose time moves only its customer) is
refused, and dead-lettered with the reason.

The rule reads only the log and the policy, never the wall clock, so a replay refuses
exactly the same records. A clock in a partition that has no customer event yet moves
no one and sets nothing (there is nobody to move, and nothing to judge it against): the
first customer event sets the partition's event time. A live engine that was stopped
for longer than the clock lead steps its clocks forward (see `clock_steps`).
"""

from __future__ import annotations

from lifecycle.policy import Policy
from lifecycle.state import DAY, as_datetime


class PartitionTime:
    """One partition's event time and latest clock (epoch seconds, None before any)."""

    __slots__ = ("clock_at", "event_time", "policy")

    def __init__(self, policy: Policy, event_time: int | None = None, clock_at: int | None = None) -> None:
        self.policy = policy
        self.event_time = event_time
        self.clock_at = clock_at

    def event_refusal(self, at: int) -> str | None:
        """Why a customer event at `at` is refused, or None; changes nothing."""
        return self._too_far_ahead(at, self.policy.time.event_max_lead_days, "customer event", "event_max_lead_days")

    def saw_event(self, at: int) -> None:
        """A customer event at `at` was taken."""
        if self.event_time is None or at > self.event_time:
            self.event_time = at

    def take_clock(self, at: int) -> tuple[str | None, bool]:
        """Take a clock at `at`: (why it is refused or None, whether it moves the partition's customers)."""
        if self.event_time is None:
            return None, False
        reason = self._too_far_ahead(at, self.policy.time.clock_max_lead_days, "clock", "clock_max_lead_days")
        if reason is not None:
            return reason, False
        self.event_time = max(self.event_time, at)
        if self.clock_at is None or at > self.clock_at:
            self.clock_at = at
        return None, True

    def _too_far_ahead(self, at: int, lead_days: int, what: str, setting: str) -> str | None:
        if self.event_time is None or at - self.event_time <= lead_days * DAY:
            return None
        ahead = (at - self.event_time) / DAY
        return (
            f"a {what} dated {as_datetime(at).isoformat()}, {ahead:,.1f} days ahead of its partition's "
            f"event time {as_datetime(self.event_time).isoformat()}; the policy allows {lead_days} "
            f"([time] {setting}): time would jump for everyone it reaches. If the date is right, "
            f"publish clocks at most {self.policy.time.clock_max_lead_days} days apart up to it first"
        )


def clock_steps(policy: Policy, since: int | None, now: int) -> list[int]:
    """The clock times to append to move a partition from `since` to `now` within the rule:
    `now`, preceded by steps of half the clock lead when the gap is longer than the lead."""
    if since is None or now - since <= policy.time.clock_max_lead_days * DAY:
        return [now]
    step = max(policy.time.clock_max_lead_days * DAY // 2, 1)
    return [*range(since + step, now, step), now]
