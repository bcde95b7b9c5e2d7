"""`lifecycle project`: the analysts' projections of a consumer group, built in this
home from the group's topics (consumers/group/projector.py).

It holds the home as an engine does (one writer of its DuckDB file), publishes the
read-only snapshot `lifecycle sql` and the report read while it runs, and each partner
role's own, as a single engine does.
"""

from __future__ import annotations

import argparse
import sys
import time

from kafka import KafkaConsumer
from kafka.errors import KafkaError

from consumers import home
from consumers.commands.stopping import Stopping
from consumers.errors import ConfigurationError
from consumers.group.projector import GroupProjector, NoProjectionTopic, ProjectReport
from consumers.logs.kafka_event_log import KafkaUnavailable
from consumers.policy_file import load_policy
from consumers.privacy.roles_file import load_roles
from consumers.settings import Settings
from lifecycle.policy import Policy
from projections.stores.projection_store import DuckDBProjectionStore


def project(args: argparse.Namespace, settings: Settings) -> int:
    if settings.kafka is None:
        raise ConfigurationError("project needs --kafka: it reads the topics a consumer group's members write "
                                 "(a single engine on the embedded log writes its projections itself)")
    policy = load_policy(settings.policy)
    with Stopping() as stopping, home.engine_lock(settings.home):
        generation = home.current_or_new(settings.home)
        home.claim_for_projector(generation, args.group)
        store = DuckDBProjectionStore(generation / home.VIEWS, settings.projections_memory)
        consumer = offsets = None
        try:
            consumer = _connect(settings, group_id=None, isolation_level="read_committed", enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=100,
                                max_partition_fetch_bytes=8 * 1024 * 1024)
            offsets = _connect(settings, group_id=args.group, enable_auto_commit=False)
            projector = _projector(consumer, offsets, store, policy, args, stopping)
            report = ProjectReport() if projector is None else _run(projector, store, settings, args, stopping)
        finally:
            for client in (consumer, offsets):
                if client is not None:
                    client.close(autocommit=False)
            store.close()
    print(f"projected {report.applied} checkpoints of the group {args.group} ({report.lifecycle_events:,} lifecycle "
          f"events; {report.skipped} held already) in {report.seconds:.1f} s", file=sys.stderr)
    if report.waiting:
        print(f"{report.waiting} checkpoints read wait for the group to commit their input offsets: a later run "
              "projects them", file=sys.stderr)
    return 0


def _projector(consumer: KafkaConsumer, offsets: KafkaConsumer, store: DuckDBProjectionStore, policy: Policy,
               args: argparse.Namespace, stopping: Stopping) -> GroupProjector | None:
    """The projector of the group; live, it waits for the group's first member to make
    the projection topic (None if stopped meanwhile)."""
    told = False
    while True:
        try:
            return GroupProjector(consumer, offsets, args.group, store, policy)
        except NoProjectionTopic as missing:
            if args.once:
                raise
            if not told:
                _say(f"{missing}; waiting for it")
                told = True
        stopping.wait(args.poll_interval)
        if stopping():
            return None


def _run(projector: GroupProjector, store: DuckDBProjectionStore, settings: Settings, args: argparse.Namespace,
         stopping: Stopping) -> ProjectReport:
    """Project until caught up (`--once`) or stopped, publishing snapshots as it goes."""
    report, published_at, published = ProjectReport(), time.monotonic(), -1
    partners = load_roles(settings.roles).partners()
    while True:
        before = report.applied
        projector.step(report, stopping)
        if args.verbose and report.applied != before:
            _say(f"{report.applied} checkpoints projected, {report.waiting} waiting for the group's commit")
        due = args.once or stopping() or (args.snapshot_every and
                                          time.monotonic() - published_at >= args.snapshot_every)
        if due and report.applied != published:
            store.publish_snapshot()
            for role in partners:
                store.publish_role_snapshot(role)
            published_at, published = time.monotonic(), report.applied
        if args.once or stopping():
            return report
        stopping.wait(args.poll_interval)


def _connect(settings: Settings, **config) -> KafkaConsumer:  # type: ignore[no-untyped-def]
    try:
        return KafkaConsumer(bootstrap_servers=settings.kafka, client_id="lifecycle-project", **config)
    except KafkaError as error:
        raise KafkaUnavailable(f"cannot reach Kafka at {settings.kafka} ({error}): is the broker running?") from error


def _say(message: str) -> None:
    print(f"lifecycle project: {message}", file=sys.stderr, flush=True)
