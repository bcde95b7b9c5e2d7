"""Which customers time has caught up with: a queue of deadlines, one per log partition.

Each customer's state names the next event time at which time alone could change one
of their dimensions. A `clock` event reaches every customer of its partition, but only
those whose deadline it has passed need deciding again; the queue finds them without
visiting the others. Entries are never removed early: an entry whose deadline is no
longer the customer's is skipped when it comes up.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping

from lifecycle.state import CustomerState


class DeadlineQueue:
    """A heap of (deadline, customer id) for the customers of one partition."""

    def __init__(self, states: Iterable[CustomerState] = ()) -> None:
        self._heap = [(s.next_deadline, s.customer_id) for s in states if s.next_deadline is not None]
        heapq.heapify(self._heap)

    def push(self, state: CustomerState) -> None:
        if state.next_deadline is not None:
            heapq.heappush(self._heap, (state.next_deadline, state.customer_id))

    def due(self, at: int, states: Mapping[str, CustomerState]) -> Iterator[CustomerState]:
        """Customers whose deadline is at or before `at`, earliest first (ties by id)."""
        heap = self._heap
        while heap and heap[0][0] <= at:
            deadline, customer_id = heapq.heappop(heap)
            state = states[customer_id]
            if state.next_deadline == deadline:
                yield state

    def __len__(self) -> int:
        return len(self._heap)
