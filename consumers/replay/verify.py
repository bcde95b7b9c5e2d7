"""`lifecycle verify`: does every store still say what the log says?

First every store is read in full for damage (consumers/store_faults.py): a damaged
one is named and nothing is compared, since what it says cannot be trusted. Then the
log of record is replayed into a scratch place (consumers/replay/scratch.py) and
compared, customer by customer, with the live stores (projections/bulk/verification.py): the
`customers` rows (chain heads included), `lifecycle_transitions`, the engine's
lifecycle log, and with Kafka the `customer-lifecycle` topic subscribers read.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

from consumers import store_faults
from consumers.logs.event_log import CUSTOMER_LIFECYCLE, EventLog
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


def verify(settings: Settings, policy: Policy, workers: int, progress: Progress | None = None) -> VerifyReport:
    """Check every store for damage; unless some is damaged, replay the log into a
    scratch place and compare it with every live store."""
    started = time.perf_counter()
    damaged = store_faults.check(settings, thorough=True)
    if damaged:
        return VerifyReport(damaged=damaged, seconds=time.perf_counter() - started)
    with scratch_replay(settings, policy, workers, progress) as replayed:
        verification = Verification(replayed.compare(), replayed.parts, policy)
        try:
            report = VerifyReport(records=replayed.report.records, stores=[ENGINE_LOG])
            with SQLiteEventLog(home=replayed.generation, name=CUSTOMER_LIFECYCLE) as log:
                _load(verification, ENGINE_LOG, log)
            if settings.kafka is not None:
                report.stores.append(TOPIC)
                with open_event_log(settings, CUSTOMER_LIFECYCLE, create=False) as topic:
                    _load(verification, TOPIC, topic)
            report.mismatches = verification.mismatches(report.stores)
            report.customers, report.lifecycle_events = verification.counts()
        finally:
            verification.close()
    report.seconds = time.perf_counter() - started
    return report


def _load(verification: Verification, store: str, log: EventLog) -> None:
    ordinal = 0
    for batch in log.read(lambda _: None):
        rows = [_identify(raw) for raw in batch.values]
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
