"""Which customers time has caught up with, in deadline order.

Each customer's state names the next event time at which time alone could change one
of their dimensions. A `clock` event reaches every customer of its partition, but only
those whose deadline it has passed need deciding again; an index of deadlines finds
them without visiting the others. The engine keeps that index in its state store,
written with each batch; the deadlines set since (within the batch) wait in a
`DeadlineQueue`. `due` merges the two. Entries are never removed early: an entry whose
deadline is no longer the customer's is skipped when it comes up.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator

from lifecycle.state import CustomerState


class DeadlineQueue:
    """A heap of (deadline, customer id): deadlines set since the index was written."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, str]] = []

    def push(self, state: CustomerState) -> None:
        if state.next_deadline is not None:
            heapq.heappush(self._heap, (state.next_deadline, state.customer_id))

    def pop_due(self, at: int) -> Iterator[tuple[int, str]]:
        """Entries at or before `at`, earliest first (ties by id), removed as they go."""
        heap = self._heap
        while heap and heap[0][0] <= at:
            yield heapq.heappop(heap)

    def __len__(self) -> int:
        return len(self._heap)


def due(
    written: Iterable[tuple[int, str]],
    pending: DeadlineQueue,
    at: int,
    state_of: Callable[[str], CustomerState],
) -> Iterator[CustomerState]:
    """Customers whose deadline is at or before `at`, earliest first (ties by id), from
    the `written` index entries up to `at` and the `pending` ones; each entry is checked
    against the customer's deadline now, so a stale one is skipped."""
    for deadline, customer_id in heapq.merge(written, pending.pop_due(at)):
        state = state_of(customer_id)
        if state.next_deadline == deadline:
            yield state
