"""What a running engine tells Prometheus: `process --metrics-port PORT` serves these at
`http://HOST:PORT/metrics`, in Prometheus' text format, from a thread of the engine.

Each engine has a registry of its own (not the library's global one), so the page holds
the engine's figures and the Python process collectors, nothing imported by chance.
Lag is counted in log positions (Kafka offsets; embedded log segments), against the end
the log reported when the batch was read: the high-water mark a Kafka fetch brings, not
the broker's "latest offset" answer, which some brokers give wrongly.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

from consumers.errors import ConfigurationError
from consumers.logs.event_log import RecordBatch
from consumers.processing.process_report import ProcessReport

# Batch latency buckets, seconds: a batch of 20 000 records takes 0.5-3 s on two cores.
_BATCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)


class EngineMetrics:
    """The figures of one running `lifecycle process`, updated as it goes."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=registry)
        self.records = Counter("lifecycle_records", "records read from customer-events and processed, "
                               "dead-lettered or set waiting", registry=registry)
        self.dead_letters = Counter("lifecycle_dead_letters", "records refused (see `lifecycle dead-letters`)",
                                    registry=registry)
        self.lifecycle_events = Counter("lifecycle_lifecycle_events", "lifecycle events derived and committed",
                                        registry=registry)
        self.batches = Counter("lifecycle_batches", "batches committed", registry=registry)
        self.checkpoints = Counter("lifecycle_checkpoints", "checkpoints written (projections and states)",
                                   registry=registry)
        self.batch_seconds = Histogram("lifecycle_batch_seconds", "seconds from reading a batch (or the end of the "
                                       "one before) to its lifecycle events committed", buckets=_BATCH_BUCKETS,
                                       registry=registry)
        self.position = Gauge("lifecycle_position", "the position reached in a partition of customer-events",
                              ["partition"], registry=registry)
        self.lag = Gauge("lifecycle_consumer_lag", "positions of a partition not yet processed, as of the last read",
                         ["partition"], registry=registry)
        self.waiting = Gauge("lifecycle_records_waiting", "records waiting for their partition's time to confirm them",
                             registry=registry)
        self.last_commit = Gauge("lifecycle_last_commit_timestamp_seconds", "when the last batch was committed "
                                 "(Unix time)", registry=registry)
        self.log_reachable = Gauge("lifecycle_log_reachable", "1 while the log answers, 0 while the engine waits "
                                   "for it", registry=registry)
        self.log_reachable.set(1)
        self.partitions = Gauge("lifecycle_partitions_assigned", "partitions of customer-events this engine holds",
                                registry=registry)
        self.restored_states = Counter("lifecycle_restored_states", "states restored from a group's changelog",
                                       registry=registry)
        self.restore_records = Counter("lifecycle_restore_records", "changelog records read restoring states",
                                       registry=registry)
        self.restore_seconds = Counter("lifecycle_restore_seconds", "seconds spent restoring states",
                                       registry=registry)
        self._mark = time.monotonic()

    def serve(self, host: str, port: int) -> str:
        """Start serving on `host`:`port` (0: any free port); the page's address."""
        if port > 65_535:
            raise ConfigurationError(f"--metrics-port {port} is not a port: pick one from 1 to 65535 (0: any free one)")
        try:
            server, _ = start_http_server(port, host, self.registry)
        except OSError as error:
            msg = (f"cannot serve metrics on {host}:{port} ({error.strerror or error}): pick another --metrics-port, "
                   "or stop what listens there")
            raise ConfigurationError(msg) from error
        self._server = server
        return f"http://{host}:{server.server_port}/metrics"

    def run_started(self) -> None:
        self._mark = time.monotonic()

    def batch_committed(self, batch: RecordBatch) -> None:
        now = time.monotonic()
        self.batch_seconds.observe(now - self._mark)
        self._mark = now
        self.batches.inc()
        self.last_commit.set(time.time())
        partition, position = batch.tracking.application_name, batch.tracking.notification_id
        self.position.labels(partition).set(position)
        if batch.end is not None:
            self.lag.labels(partition).set(max(0, batch.end - position))

    def run_done(self, report: ProcessReport, waiting: int | None = None) -> None:
        """A run's totals: a rewind's records count once (consumers/processing/process_report.py);
        `waiting`, the records waiting for time in all the engine's partitions, if the
        run was of some of them."""
        self.records.inc(report.events)
        self.dead_letters.inc(report.dead_letters)
        self.lifecycle_events.inc(report.lifecycle_events)
        self.checkpoints.inc(report.checkpoints)
        self.waiting.set(report.waiting if waiting is None else waiting)

    def restored(self, states: int, records: int, seconds: float) -> None:
        self.restored_states.inc(states)
        self.restore_records.inc(records)
        self.restore_seconds.inc(seconds)

    def close(self) -> None:
        server = getattr(self, "_server", None)
        if server is not None:
            server.shutdown()
            server.server_close()


def both(first: Callable[[RecordBatch], None] | None,
         second: Callable[[RecordBatch], None] | None) -> Callable[[RecordBatch], None] | None:
    """One commit hook that tells both (either may be None)."""
    if first is None or second is None:
        return first or second

    def told(batch: RecordBatch) -> None:
        first(batch)
        second(batch)

    return told
