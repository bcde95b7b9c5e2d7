"""`lifecycle verify`: does every store still say what the log says?

First every store is read in full for damage (consumers/store_faults.py): a damaged
one is named and nothing is compared, since what it says cannot be trusted. Then the
log of record is replayed into a scratch place (consumers/replay/scratch.py) and
compared, customer by customer, with the live stores (projections/bulk/verification.py): the
`customers` rows (chain heads included), `lifecycle_transitions`, the engine's
lifecycle log, and with Kafka the `customer-lifecycle` topic subscribers read.

In a projector's home (`lifecycle project`) there is no engine's lifecycle log: the
projections are compared, and what the group committed to `customer-lifecycle` up to
where they reach (consumers/group/committed_topic.py). With Kafka it may be given some
of the log's partitions, so that verifying a large group spreads over machines.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from consumers import home, store_faults
from consumers.errors import ConfigurationError
from consumers.group.committed_topic import committed_values
from consumers.logs.event_log import CUSTOMER_EVENTS, CUSTOMER_LIFECYCLE
from consumers.logs import open_event_log
from consumers.replay import Progress
from consumers.replay.scratch import scratch_replay
from consumers.settings import Settings
from consumers.logs.sqlite_event_log import SQLiteEventLog
from lifecycle.policy import Policy
from projections.bulk.verification import Mismatch, Verification
from schemas import SchemaError, decode_lifecycle_event

ENGINE_LOG = "lifecycle log"
TOPIC = "customer-lifecycle topic"


@dataclass
class VerifyReport:
    records: int = 0
    customers: int = 0
    lifecycle_events: int = 0
    stores: list[str] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)
    damaged: tuple[store_faults.Damage, ...] = ()
    seconds: float = 0.0


def verify(settings: Settings, policy: Policy, workers: int, progress: Progress | None = None,
           partitions: Sequence[int] | None = None) -> VerifyReport:
    """Check every store for damage; unless some is damaged, replay the log (its
    `partitions` only, if given) into a scratch place and compare it with every live store."""
    if partitions is not None and settings.kafka is None:
        raise ConfigurationError("--partition needs --kafka: the embedded log is one partition")
    scope = None if partitions is None else [f"{CUSTOMER_EVENTS}:{p}" for p in sorted(set(partitions))]
    started = time.perf_counter()
    damaged = store_faults.check(settings, thorough=True)
    if damaged:
        return VerifyReport(damaged=damaged, seconds=time.perf_counter() - started)
    with scratch_replay(settings, policy, workers, progress, scope) as replayed:
        verification = Verification(replayed.compare(), replayed.parts, policy, scope)
        try:
            report = VerifyReport(records=replayed.report.records)
            group = home.projector_group(replayed.generation)
            if group is None:
                report.stores.append(ENGINE_LOG)
                with SQLiteEventLog(home=replayed.generation, name=CUSTOMER_LIFECYCLE) as log:
                    _load(verification, ENGINE_LOG, (batch.values for batch in log.read(lambda _: None)))
            if settings.kafka is not None:
                report.stores.append(TOPIC)
                if group is None:
                    with open_event_log(settings, CUSTOMER_LIFECYCLE, create=False) as topic:
                        _load(verification, TOPIC, (batch.values for batch in topic.read(lambda _: None)))
                else:
                    _load(verification, TOPIC, committed_values(settings, group, CUSTOMER_LIFECYCLE,
                                                                replayed.positions))
            report.mismatches = verification.mismatches(report.stores)
            report.customers, report.lifecycle_events = verification.counts()
        finally:
            verification.close()
    report.seconds = time.perf_counter() - started
    return report


def _load(verification: Verification, store: str, runs: Iterable[Sequence[bytes]]) -> None:
    ordinal = 0
    for values in runs:
        rows = [_identify(raw) for raw in values]
        verification.add_records(store, ordinal, rows)
        ordinal += len(rows)


def _identify(raw: bytes) -> tuple[str | None, int | None, str]:
    raw = bytes(raw)
    digest = hashlib.sha256(raw).hexdigest()
    try:
        event = decode_lifecycle_event(raw)
    except SchemaError:
        return None, None, digest
    return event.customer_id, event.sequence, digest
