"""`lifecycle status`: where the engine of a home stands, read without disturbing it.

Whether an engine is working on the home (and which process), the generation in use,
and per partition of `customer-events`: the position whose lifecycle events are
committed, where the log ends now and the lag between them; when the lifecycle log was
last written; with Kafka, how far the relay of lifecycle events to the
`customer-lifecycle` topic is behind. Nothing is locked: it runs beside a live engine.
With `--group NAME`, the same for a consumer group of several processors: the offsets
its members committed, the ends and the lags, and each member as it last reported
itself on the group's members topic (consumers/group/member_reports.py): its
partitions, a restoration under way, its last commit, or that it stopped or fell silent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kafka import KafkaConsumer
from kafka.errors import KafkaError

from consumers import home
from consumers.group.member_reports import REPORT_EVERY_S, MemberReport, read_reports
from consumers.logs import open_event_log
from consumers.logs.event_log import CUSTOMER_EVENTS, CUSTOMER_LIFECYCLE
from consumers.logs.kafka_event_log import committed_offsets
from consumers.logs.lifecycle_relay import LifecycleRelay
from consumers.logs.sqlite_event_log import SQLiteEventLog
from consumers.errors import ConfigurationError
from consumers.settings import Settings
from projections.reading.query import reading


@dataclass(frozen=True)
class PartitionStatus:
    partition: str
    committed: int
    """The position after the last batch whose lifecycle events are committed."""
    end: int | None
    """Where the partition ends now; None if the log did not answer for it."""

    @property
    def lag(self) -> int | None:
        return None if self.end is None else max(0, self.end - self.committed)


@dataclass(frozen=True)
class EngineStatus:
    home: str
    engine_pid: int | None
    """The process working on the home, if one is."""
    generation: str | None
    partitions: list[PartitionStatus]
    last_commit: datetime | None
    """When the lifecycle log was last written (its files' modification time)."""
    relay_behind: int | None
    """With Kafka: positions of the lifecycle log not yet relayed to the topic."""
    group: str | None = None
    """The consumer group whose offsets these are, if it is a group's status."""
    members: list[MemberReport] | None = None
    """A group's members, as each last reported itself."""
    projector_of: str | None = None
    """The consumer group whose projections the home holds, if a projector's (`lifecycle project`)."""

    @property
    def lag(self) -> int | None:
        lags = [p.lag for p in self.partitions]
        return None if any(lag is None for lag in lags) else sum(lags)  # type: ignore[misc]


def group_status(settings: Settings, group: str) -> EngineStatus:
    """Where a consumer group stands (`process --group`): per partition, the offset its
    members committed with their last checkpoint, where the log ends and the lag."""
    if settings.kafka is None:
        raise ConfigurationError("--group needs --kafka: consumer groups are Kafka's")
    with open_event_log(settings, CUSTOMER_EVENTS, create=False) as log:
        names = log.partitions()
        committed = committed_offsets(settings.kafka, group, names)
        ends = log.ends_from(committed.get)
    partitions = [PartitionStatus(name, committed.get(name, 0), ends.get(name)) for name in names]
    return EngineStatus(str(settings.home), None, None, partitions, None, None, group, _members(settings, group))


def _members(settings: Settings, group: str) -> list[MemberReport] | None:
    """The members' reports; None if the broker did not answer."""
    try:
        consumer = KafkaConsumer(bootstrap_servers=settings.kafka, client_id="lifecycle-status",
                                 enable_auto_commit=False)
    except KafkaError:
        return None
    try:
        return read_reports(consumer, group)
    except KafkaError:
        return None
    finally:
        consumer.close()


def engine_status(settings: Settings) -> EngineStatus:
    generation = home.current(settings.home)
    if generation is not None and home.projector_group(generation) is not None:
        return _projector_status(settings, generation)
    with open_event_log(settings, CUSTOMER_EVENTS, create=False) as log:
        names = log.partitions()
        if generation is None or not SQLiteEventLog.path_of(generation, CUSTOMER_LIFECYCLE).exists():
            committed: dict[str, int] = {}
            last_commit, relay_behind = None, None
        else:
            with SQLiteEventLog(home=generation, name=CUSTOMER_LIFECYCLE) as lifecycle_log:
                committed = {name: lifecycle_log.recorded_position(name) or 0 for name in names}
                relay_behind = _relay_behind(settings, lifecycle_log)
            last_commit = _modified(SQLiteEventLog.path_of(generation, CUSTOMER_LIFECYCLE))
        ends = log.ends_from(committed.get)
    partitions = [PartitionStatus(name, committed.get(name, 0), ends.get(name)) for name in names]
    return EngineStatus(str(settings.home), _engine_pid(settings.home), generation.name if generation else None,
                        partitions, last_commit, relay_behind)


def _projector_status(settings: Settings, generation: Path) -> EngineStatus:
    """A projector's home (`lifecycle project`): per partition, the input position its
    projections reach, against where the log ends."""
    with reading(generation / home.VIEWS) as (connection, source):
        committed = dict(connection.execute("SELECT application_name, notification_id FROM tracking").fetchall())
    with open_event_log(settings, CUSTOMER_EVENTS, create=False) as log:
        names = log.partitions()
        ends = log.ends_from(committed.get)
    partitions = [PartitionStatus(name, committed.get(name, 0), ends.get(name)) for name in names]
    return EngineStatus(str(settings.home), _engine_pid(settings.home), generation.name, partitions,
                        _modified(source), None, projector_of=home.projector_group(generation))


def _relay_behind(settings: Settings, lifecycle_log: SQLiteEventLog) -> int | None:
    if settings.kafka is None:
        return None
    relayed = lifecycle_log.recorded_position(f"{LifecycleRelay.POSITION_PREFIX}{CUSTOMER_LIFECYCLE}") or 0
    return max(0, lifecycle_log.end_positions()[CUSTOMER_LIFECYCLE] - relayed)


def _modified(path: Path) -> datetime | None:
    """The latest write to an SQLite file or its write-ahead log."""
    times = [p.stat().st_mtime for p in (path, path.with_name(path.name + "-wal")) if p.exists()]
    return datetime.fromtimestamp(max(times), UTC) if times else None


def _engine_pid(directory: Path) -> int | None:
    """The engine holding the home's lock: it writes its pid there, and empties the file
    when it stops; a pid left by a killed engine names no live process."""
    try:
        text = (directory / "engine.lock").read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    if not text.startswith("pid "):
        return None
    pid = int(text.removeprefix("pid "))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    return pid


def render_text(status: EngineStatus, now: datetime) -> str:
    engine = f"running (pid {status.engine_pid})" if status.engine_pid else "not running"
    if status.group is not None:
        lines = [f"consumer group {status.group}: the offsets its members committed with their checkpoints"]
    elif status.projector_of is not None:
        projector = engine.replace("running", "projecting", 1)
        lines = [f"home {status.home}: the projections of the consumer group {status.projector_of} "
                 f"(`lifecycle project`, {projector}), generation {status.generation}; committed: what they hold"]
    else:
        lines = [f"home {status.home}: engine {engine}, generation "
                 f"{status.generation or '(none yet: nothing processed)'}"]
    width = max([len("partition"), *(len(p.partition) for p in status.partitions)])
    lines.append(f"{'partition':<{width}}  {'committed':>12}  {'log end':>12}  {'lag':>12}")
    for p in status.partitions:
        end = "?" if p.end is None else f"{p.end:,}"
        lag = "?" if p.lag is None else f"{p.lag:,}"
        lines.append(f"{p.partition:<{width}}  {p.committed:>12,}  {end:>12}  {lag:>12}")
    if len(status.partitions) > 1:
        total = "?" if status.lag is None else f"{status.lag:,}"
        lines.append(f"{'all':<{width}}  {'':>12}  {'':>12}  {total:>12}")
    if status.last_commit is not None:
        ago = max(0, int((now - status.last_commit).total_seconds()))
        lines.append(f"last commit {status.last_commit.replace(microsecond=0).isoformat()} ({ago:,} s ago)")
    if status.relay_behind is not None:
        behind = "all relayed" if not status.relay_behind else f"{status.relay_behind:,} positions behind"
        lines.append(f"lifecycle events to Kafka's {CUSTOMER_LIFECYCLE}: {behind}")
    if any(p.end is None for p in status.partitions):
        lines.append("?: the log did not answer for that partition in time")
    if status.group is not None:
        lines.extend(_member_lines(status.members, now))
    return "\n".join(lines)


SILENT_AFTER_S = 3 * REPORT_EVERY_S
"""A member that has not reported for this long is told as silent."""


def _member_lines(members: list[MemberReport] | None, now: datetime) -> list[str]:
    if members is None:
        return ["members: the broker did not answer for them"]
    if not members:
        return ["members: none has reported yet (`lifecycle process --kafka ... --group NAME` starts one)"]
    lines = [f"members, as each last reported itself (every {REPORT_EVERY_S:.0f} s):"]
    width = max(len(member.member) for member in members)
    for member in members:
        lines.append(f"  {member.member:<{width}}  {_member_state(member, now.timestamp())}")
    return lines


def _member_state(member: MemberReport, now: float) -> str:
    ago = max(0, int(now - member.at))
    if member.stopped:
        return f"stopped {ago:,} s ago"
    if ago > SILENT_AFTER_S:
        return (f"silent for {ago:,} s: stopped without saying so, or paused (the group moves its partitions "
                "after its session timeout)")
    held = ", ".join(map(str, member.partitions)) or "none"
    parts = [f"partitions {held}"]
    parts += [f"restoring {CUSTOMER_EVENTS}:{p} ({read:,} of ~{of:,} changelog records)"
              for p, (read, of) in sorted(member.restoring.items())]
    if member.last_commit is not None:
        parts.append(f"last commit {max(0, int(now - member.last_commit)):,} s ago")
    return "; ".join(parts) + f" (reported {ago:,} s ago)"


def as_json(status: EngineStatus) -> dict[str, object]:
    return {
        "home": status.home,
        "engine_pid": status.engine_pid,
        "generation": status.generation,
        "partitions": [{"partition": p.partition, "committed": p.committed, "end": p.end, "lag": p.lag}
                       for p in status.partitions],
        "lag": status.lag,
        "last_commit": None if status.last_commit is None else status.last_commit.isoformat(),
        "relay_behind": status.relay_behind,
        "group": status.group,
        "members": None if status.members is None else [_member_json(m) for m in status.members],
        "projector_of": status.projector_of,
    }


def _member_json(member: MemberReport) -> dict[str, object]:
    def moment(seconds: float | None) -> str | None:
        return None if seconds is None else datetime.fromtimestamp(seconds, UTC).isoformat()

    return {"member": member.member, "partitions": member.partitions, "reported_at": moment(member.at),
            "restoring": {str(p): {"read": read, "of": of} for p, (read, of) in member.restoring.items()},
            "last_commit": moment(member.last_commit), "stopped": member.stopped}
