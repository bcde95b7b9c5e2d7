# cython: annotation_typing=False
"""Purchase occasions: a customer's counted purchases, a day's (or `[stage] occasion_days`')
taken as one.

Three orders in one hour are one visit to the shop, not a habit: the ladder (first-time
against repeat, purchases in the loyal window), the loyalty type's repeat behaviour and
the rhythm (the usual gap between purchases) count occasions, as the value models do
(BG/NBD counts purchase days: docs/catalog.md). An occasion is the set of a customer's
purchases in one period of `occasion_days` since the epoch (UTC days, for the default
of one), dated at its first purchase. Purchase times are kept sorted, so the purchases
of an occasion sit next to each other.
"""

from __future__ import annotations

from bisect import bisect_right


def shares_occasion(times: list[int], index: int, at: int, period: int) -> bool:
    """Whether a purchase at `at`, to be inserted at `index` of `times`, falls on an
    occasion that a neighbour already makes."""
    bucket = at // period
    if index > 0:
        neighbour = times[index - 1]
        if neighbour // period == bucket:
            return True
    if index < len(times):
        neighbour = times[index]
        return neighbour // period == bucket
    return False


def within(times: list[int], since: int, period: int, enough: int | None = None) -> int:
    """Occasions among the purchases after `since` (counting stops at `enough`, if given)."""
    start = bisect_right(times, since)
    if len(times) - start <= 1:
        return len(times) - start
    limit = -1 if enough is None else enough
    at = times[start]
    count, last = 1, at // period
    for index in range(start + 1, len(times)):
        at = times[index]
        bucket = at // period
        if bucket != last:
            if count == limit:
                break
            count, last = count + 1, bucket
    return count


def next_window_end(times: list[int], since: int, window: int, period: int) -> int | None:
    """When the oldest occasion after `since` leaves a window of `window` seconds: as its
    last purchase does."""
    index = bisect_right(times, since)
    if index == len(times):
        return None
    at = times[index]
    bucket = at // period
    while index + 1 < len(times):
        at = times[index + 1]
        if at // period != bucket:
            break
        index += 1
    at = times[index]
    return at + window


def recent_starts(times: list[int], count: int, period: int) -> list[int]:
    """The first purchase time of each of the latest `count` occasions, oldest first."""
    starts: list[int] = []
    bucket = 0
    for index in range(len(times) - 1, -1, -1):
        at = times[index]
        this = at // period
        if not starts or this != bucket:
            if len(starts) == count:
                break
            starts.append(at)
            bucket = this
        else:
            starts[-1] = at
    starts.reverse()
    return starts


def start_of_latest(times: list[int], count: int, period: int) -> int:
    """The index in `times` where the latest `count` occasions begin (0 if there are fewer)."""
    seen, bucket = 0, 0
    for index in range(len(times) - 1, -1, -1):
        at = times[index]
        if seen == 0 or at // period != bucket:
            if seen == count:
                return index + 1
            seen, bucket = seen + 1, at // period
    return 0


def whole(times: list[int], index: int, period: int) -> int:
    """`index` moved back to the start of the occasion it falls in, so that a cut there
    never splits one."""
    while 0 < index < len(times):
        earlier, at = times[index - 1], times[index]
        if earlier // period != at // period:
            break
        index -= 1
    return index
