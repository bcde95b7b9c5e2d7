"""Several processors in one Kafka consumer group (`lifecycle process --group NAME`).

Kafka assigns the partitions of `customer-events` to the group's members and moves them
when a member joins, leaves or dies. A member keeps each of its partitions apart: the
engine's states in a store of the partition's own, and per checkpoint one Kafka
transaction holding the partition's lifecycle events, its state changes (the group's
changelog topic), its dead letters and its consumed offset. A partition that moves is
restored on its new member from the changelog before it is processed; the old member,
if it comes back, is fenced by the partition's transactional id and commits nothing.

- `changelog`: the state changelog's records and restoring a partition's store from it;
- `transactional_outputs`: the processor's outputs as one transaction per checkpoint;
- `polled_log`: a partition's polled records, as the processor reads them;
- `member`: the member itself, its partitions' tasks and its rebalance handling.
"""
