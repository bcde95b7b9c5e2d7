"""Benchmark: several processors in one consumer group (`lifecycle process --group`), on
the test broker (tansu, in memory, on this machine's cores too).

One seeded population, nine tenths published into a fresh broker with six partitions:
- throughput: one member, then two (another group, the same input): seconds from
  starting the members until the group's committed offsets reach the end, the wait
  for the first assignment included and given apart; events/s; the ratio;
- failover: with the two members caught up, one is SIGKILLed and the last tenth
  published; seconds from the kill until the survivor processes a batch of a partition
  the killed member held (the session timeout, the rebalance and the restoration
  included), and the restoration of those partitions;
- restoration: a member with an empty disk joins the group alone and restores all six
  partitions from the changelog (states, changelog records read, seconds, states/s);
- the projector: `lifecycle project --once` of the group into an empty home (seconds,
  checkpoints, lifecycle events, input records/s), and the bytes of the projection
  topic against the changelog's.

    .venv/bin/python benchmarks/group.py [--customers N] [--session-timeout S]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kafka import KafkaConsumer, TopicPartition  # noqa: E402

from consumers.logs import open_event_log  # noqa: E402
from consumers.group.changelog import changelog_topic  # noqa: E402
from consumers.group.projection_topic import projections_topic  # noqa: E402
from consumers.logs.event_log import CUSTOMER_EVENTS  # noqa: E402
from consumers.logs.kafka_event_log import drain  # noqa: E402
from consumers.publisher import publish_lines  # noqa: E402
from consumers.settings import Settings  # noqa: E402
from lifecycle.population import PopulationSpec, generate  # noqa: E402
from tests.broker import TansuBroker  # noqa: E402

PARTITIONS = 6
_RESTORED = re.compile(r"restored ([\d,]+) states of \S+ from \S+ \(([\d,]+) records read in ([\d.]+) s")


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Member:
    """`lifecycle process --group` as a process, its stderr kept with the time of each line."""

    def __init__(self, settings: Settings, group: str, home: Path, session_timeout: float) -> None:
        command = [sys.executable, "-m", "consumers.cli", "process", "--group", group, "-v", "--clock-every", "0",
                   "--session-timeout", str(session_timeout), "--kafka", settings.kafka or "", "--home", str(home)]
        self.started = time.monotonic()
        self.process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
        self.lines: list[tuple[float, str]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append((time.monotonic(), line))

    def first(self, text: str, after: float = 0.0) -> float | None:
        return next((at for at, line in self.lines if at >= after and text in line), None)

    def assigned(self) -> set[int]:
        told = [line for _, line in self.lines if "assigned customer-events partitions" in line]
        return set(map(int, re.findall(r"\d+", told[-1].rsplit("[", 1)[1]))) if told else set()

    def restored(self) -> tuple[int, int, float]:
        found = [_RESTORED.search(line) for _, line in self.lines]
        hits = [m for m in found if m]
        return (sum(int(m.group(1).replace(",", "")) for m in hits), sum(int(m.group(2).replace(",", "")) for m in hits),
                sum(float(m.group(3)) for m in hits))

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=120)


def committed(settings: Settings, group: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka, group_id=group, enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(CUSTOMER_EVENTS, p)) or 0 for p in range(PARTITIONS)}
    finally:
        consumer.close()


def ends(settings: Settings) -> dict[int, int]:
    with open_event_log(settings, CUSTOMER_EVENTS, create=False) as log:
        return {int(name.rsplit(":", 1)[1]): end for name, end in log.ends_from(lambda _: None).items()}


def wait_caught_up(settings: Settings, group: str, members: list[Member]) -> float:
    target = ends(settings)
    while committed(settings, group) != target:
        if any(member.process.poll() is not None for member in members):
            raise SystemExit("a member exited:\n" + "".join(line for m in members for _, line in m.lines))
        time.sleep(0.5)
    return time.monotonic()


def throughput(settings: Settings, group: str, homes: list[Path], records: int, timeout: float) -> dict:
    members = [Member(settings, group, home, timeout) for home in homes]
    started = members[0].started
    done = wait_caught_up(settings, group, members)
    joined = min(filter(None, (m.first("assigned customer-events") for m in members)), default=done)
    return {"members": members, "seconds": done - started, "join": joined - started,
            "rate": records / (done - started)}


def topic_bytes(settings: Settings, topic: str) -> tuple[int, int]:
    """(records, bytes of their values) of a whole topic."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka, enable_auto_commit=False,
                             max_partition_fetch_bytes=8 * 1024 * 1024)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(parts)
        for tp in parts:
            consumer.seek(tp, 0)
        records = size = 0
        for _, chunk, _ in drain(consumer, dict.fromkeys(parts, 0), 20_000):
            records += len(chunk)
            size += sum(len(record.value) for record in chunk)
        return records, size
    finally:
        consumer.close()


def project(settings: Settings, group: str, home: Path) -> tuple[float, str]:
    """`lifecycle project --once` into `home`: wall seconds, and its summary line."""
    command = [sys.executable, "-m", "consumers.cli", "project", "--group", group, "--once",
               "--kafka", settings.kafka or "", "--home", str(home)]
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    return time.monotonic() - started, done.stderr.strip().splitlines()[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--session-timeout", type=float, default=6.0)
    args = parser.parse_args()
    lines = list(generate(PopulationSpec(customers=args.customers, seed=7, days=365)))
    cut = len(lines) * 9 // 10
    with TansuBroker() as broker, tempfile.TemporaryDirectory(prefix="group-bench-") as scratch:
        work = Path(scratch)
        settings = Settings(home=work / "publisher", kafka=broker.bootstrap, partitions=PARTITIONS)
        with open_event_log(settings, CUSTOMER_EVENTS) as log:
            publish_lines(lines[:cut], log, lambda n, why: say(f"line {n}: {why}"))
        records = sum(ends(settings).values())
        say(f"published {cut:,} events ({records:,} records with clocks) into {PARTITIONS} partitions")

        one = throughput(settings, "one", [work / "one"], records, args.session_timeout)
        for member in one["members"]:
            member.stop()
        say(f"1 member: {one['seconds']:.1f} s ({one['join']:.1f} s to the first assignment), {one['rate']:,.0f}/s")
        two = throughput(settings, "two", [work / "a", work / "b"], records, args.session_timeout)
        say(f"2 members: {two['seconds']:.1f} s ({two['join']:.1f} s to the first assignment), {two['rate']:,.0f}/s")

        survivor, killed = two["members"]
        held = killed.assigned()
        os.kill(killed.process.pid, signal.SIGKILL)
        dead_at = time.monotonic()
        with open_event_log(settings, CUSTOMER_EVENTS) as log:
            publish_lines(lines[cut:], log, lambda n, why: say(f"line {n}: {why}"))
        wait_caught_up(settings, "two", [survivor])
        pattern = re.compile(rf"processed \d+ records of customer-events:({'|'.join(map(str, held))}) ")
        resumed = next(at for at, line in survivor.lines if at >= dead_at and pattern.search(line))
        failover_restored = survivor.restored()
        survivor.stop()
        say(f"failover: partitions {sorted(held)} processed again {resumed - dead_at:.1f} s after the kill")

        fresh = Member(settings, "two", work / "empty", args.session_timeout)
        while sum("restored" in line for _, line in fresh.lines) < PARTITIONS:
            if fresh.process.poll() is not None:
                raise SystemExit("the fresh member exited:\n" + "".join(line for _, line in fresh.lines))
            time.sleep(0.5)
        states, read, spent = fresh.restored()
        fresh.stop()

        projected, summary = project(settings, "two", work / "projector")
        input_records = sum(ends(settings).values())
        say(f"projector: {projected:.1f} s: {summary}")
        changelog, projections = topic_bytes(settings, changelog_topic("two")), topic_bytes(settings,
                                                                                           projections_topic("two"))

    print(f"| {args.customers:,} customers, {records:,} records, {PARTITIONS} partitions | value |")
    print("|---|--:|")
    print(f"| 1 member: seconds to the end (first assignment) | {one['seconds']:.1f} ({one['join']:.1f}) |")
    print(f"| 1 member: records/s | {one['rate']:,.0f} |")
    print(f"| 2 members: seconds to the end (first assignment) | {two['seconds']:.1f} ({two['join']:.1f}) |")
    print(f"| 2 members: records/s | {two['rate']:,.0f} (x{two['rate'] / one['rate']:.2f}) |")
    print(f"| failover: kill to the killed member's partitions processed again, s | {resumed - dead_at:.1f} |")
    print(f"| failover: states restored, changelog records read, s | {failover_restored[0]:,}, "
          f"{failover_restored[1]:,}, {failover_restored[2]:.1f} |")
    print(f"| restoration on an empty disk, 6 partitions: states, changelog records read, s | {states:,}, {read:,}, "
          f"{spent:.1f} |")
    print(f"| restoration: states/s | {states / max(spent, 1e-3):,.0f} |")
    print(f"| projector, `project --once` into an empty home: wall s (its own line) | {projected:.1f} ({summary}) |")
    print(f"| projector: input records/s | {input_records / projected:,.0f} |")
    print(f"| changelog: records, MB | {changelog[0]:,}, {changelog[1] / 1e6:.1f} |")
    print(f"| projection topic: records, MB | {projections[0]:,}, {projections[1] / 1e6:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
