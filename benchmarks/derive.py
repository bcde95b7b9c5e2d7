"""Benchmark: how fast the engine publishes and derives a synthetic population.

What it measures, per log backend, on one seeded population (`lifecycle.population`,
about 14 customer events per customer plus one `clock` a day):

- publish: `publish_lines` of the JSON-lines file into a fresh log (validation included);
- derive: one `LifecycleProcessor.run_once()` over the whole log, from an empty store:
  read, decode, fold into customer states, record lifecycle events, upsert DuckDB.
  Rate = records processed / wall seconds of `run_once` (opening the session is not
  timed). With Kafka the relay of lifecycle events to their topic is timed apart;
- floor, in the same run: what any per-event engine must do at the least - read the
  same log again, decode every record, find the customer, and make and encode as many
  lifecycle events (ids included) as the derive made - with no rules and no storage.
  It bounds what tuning the rules and the projections could ever reach;
- Kafka only, in the same run: a bare kafka-python consumer reading the same topic
  with the same fetch settings, counting records without decoding them, and a bare
  kafka-python producer writing as many records as the derive made lifecycle events,
  of their mean size, with the relay's producer settings. Together they are the
  ceiling for the Kafka path; "end to end / bare" is (derive + relay) / (bare consume
  + bare produce), the issue's measure (target: at most 2).

Generating the population is timed apart and the file is reused by later runs with the
same spec. With Kafka a `clock` goes to every partition, so the topic holds more records
than the file has lines; the Kafka rates count records. Compare rates within one run:
the machine is noisy and the broker (tansu, in memory) shares its two cores.

    .venv/bin/python benchmarks/derive.py [--customers N] [--backends embedded,kafka]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402

from consumers.processing.engine_session import EngineSession  # noqa: E402
from consumers.logs.event_log import CUSTOMER_EVENTS, CUSTOMER_LIFECYCLE  # noqa: E402
from consumers.logs import open_event_log  # noqa: E402
from consumers.publisher import publish_lines  # noqa: E402
from consumers.settings import Settings  # noqa: E402
from lifecycle.engine import lifecycle_event_id  # noqa: E402
from lifecycle.population import PopulationSpec, generate  # noqa: E402
from lifecycle.state import CustomerState  # noqa: E402
from schemas import Clock, decode_event, encode_event  # noqa: E402
from schemas.lifecycle_events import StageChanged  # noqa: E402
from tests.broker import TansuBroker  # noqa: E402

PACKAGES = ("kafka-python", "crc32c", "msgspec", "duckdb", "eventsourcing", "pyarrow")
# What KafkaEventLog._consumer uses (consumers/logs/kafka_event_log.py); checked at run time.
FETCH = {
    "fetch_min_bytes": 1,
    "fetch_max_wait_ms": 10,
    "fetch_max_bytes": 64 * 1024 * 1024,
    "max_partition_fetch_bytes": 8 * 1024 * 1024,
    "max_poll_records": 10_000,
}
STALL_S = 30.0  # the bare consumer gives up when the broker sends nothing for this long


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--backends", default="embedded,kafka", help="comma-separated: embedded, kafka")
    parser.add_argument("--batch-size", type=int, default=20_000, help="processor batch size")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "out")
    args = parser.parse_args()
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(args.backends) - {"embedded", "kafka"}
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    return args


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def population_file(args: argparse.Namespace) -> tuple[Path, int, float | None]:
    """The JSON-lines file of the spec (made once); its line count and generation seconds."""
    spec = PopulationSpec(customers=args.customers, seed=args.seed, days=args.days)
    path = args.out_dir / f"population-c{spec.customers}-s{spec.seed}-d{spec.days}.jsonl"
    if path.exists():
        with path.open("rb") as lines:
            return path, sum(1 for _ in lines), None
    say(f"generating {path.name} ...")
    started = time.perf_counter()
    partial, count = path.with_suffix(".partial"), 0
    with partial.open("wb") as out:
        for line in generate(spec):
            out.write(line + b"\n")
            count += 1
    partial.rename(path)  # only a complete file is ever reused
    return path, count, time.perf_counter() - started


def fresh_home(args: argparse.Namespace, backend: str) -> Path:
    home = args.out_dir / f"home-{backend}"
    shutil.rmtree(home, ignore_errors=True)
    return home


def publish(session: EngineSession, path: Path) -> dict:
    def invalid(line: int, reason: str) -> None:
        raise SystemExit(f"line {line} of {path} is invalid: {reason}")

    started = time.perf_counter()
    with path.open("rb") as lines:
        report = publish_lines(lines, session.log, invalid)
    seconds = time.perf_counter() - started
    return {"published": report.appended, "publish_s": seconds, "publish_rate": report.appended / seconds}


def derive(session: EngineSession) -> dict:
    report = session.processor.run_once()
    relay_s = None
    if session.relay is not None:
        started = time.perf_counter()
        session.relay.relay()
        relay_s = time.perf_counter() - started
    if report.dead_letters:
        say(f"WARNING: {report.dead_letters} dead letters in a valid population")
    return {
        "records": report.events,
        "derive_s": report.seconds,
        "derive_rate": report.events_per_second,
        "lifecycle": report.lifecycle_events,
        "relay_s": relay_s,
    }


def floor(session: EngineSession, lifecycle_events: int, batch_size: int) -> dict:
    """Read and decode the whole log, and make as many lifecycle events as the derive did,
    spread evenly over the customer events: the work no per-event engine can avoid."""
    records = customer_events = 0
    for batch in session.log.read(lambda name: None, batch_size):  # counting: not timed
        records += len(batch.values)
        customer_events += sum(1 for raw in batch.values if type(decode_event(raw)) is not Clock)
    per_event = lifecycle_events / max(customer_events, 1)
    started = time.perf_counter()
    states: dict[str, CustomerState] = {}
    owed = 0.0
    for batch in session.log.read(lambda name: None, batch_size):
        for raw in batch.values:
            event = decode_event(raw)
            if type(event) is Clock:
                continue
            state = states.get(event.customer_id)
            if state is None:
                state = states[event.customer_id] = CustomerState(customer_id=event.customer_id)
            state.events += 1
            owed += per_event
            while owed >= 1:
                owed -= 1
                state.sequence += 1
                name = f"{event.event_id}/{state.customer_id}/{state.sequence}/stage/repeat"
                encode_event(StageChanged(
                    event_id=lifecycle_event_id(name), customer_id=state.customer_id, sequence=state.sequence,
                    dimension="stage", from_value="first_time", to_value="repeat",
                    occurred_at=event.occurred_at, rule="stage.repeat", policy_version="floor",
                    caused_by=[event.event_id],
                ))
    seconds = time.perf_counter() - started
    return {"floor_records": records, "floor_s": seconds, "floor_rate": records / seconds}


def run_backend(args: argparse.Namespace, path: Path, settings: Settings) -> dict:
    with EngineSession(settings, batch_size=args.batch_size) as session:
        result = publish(session, path)
        say(f"  published {result['published']:,} events at {result['publish_rate']:,.0f}/s")
    # A new session, as `lifecycle process` would open: derive starts from empty state.
    with EngineSession(settings, batch_size=args.batch_size) as session:
        result |= derive(session)
        say(f"  derived {result['records']:,} records at {result['derive_rate']:,.0f}/s")
        result |= floor(session, result["lifecycle"], args.batch_size)
    if result["floor_records"] != result["records"]:
        say(f"WARNING: the floor read {result['floor_records']:,} records, derive {result['records']:,}")
    say(f"  floor: {result['floor_rate']:,.0f} records/s")
    return result


def run_kafka(args: argparse.Namespace, path: Path) -> dict:
    with TansuBroker() as broker:
        settings = Settings(home=fresh_home(args, "kafka"), kafka=broker.bootstrap, partitions=4)
        result = run_backend(args, path, settings)
        check_fetch_settings(broker.bootstrap, settings)
        result |= bare_consume(broker.bootstrap, CUSTOMER_EVENTS)
        result |= bare_produce(broker.bootstrap, result["lifecycle"], settings)
    result["vs_bare"] = result["derive_rate"] / result["bare_rate"]
    result["end_to_end_vs_bare"] = (result["derive_s"] + (result["relay_s"] or 0)) / (
        result["bare_s"] + result["bare_produce_s"])
    if result["bare_records"] != result["records"]:
        say(f"WARNING: bare consumer read {result['bare_records']:,} records, derive {result['records']:,}")
    say(f"  bare consume {result['bare_records']:,} records at {result['bare_rate']:,.0f}/s; "
        f"bare produce {result['lifecycle']:,} in {result['bare_produce_s']:.1f} s; "
        f"end to end / bare: {result['end_to_end_vs_bare']:.1f}x")
    return result


def bare_produce(bootstrap: str, count: int, settings: Settings) -> dict:
    """Write `count` records of the lifecycle events' mean size, keyed, to a new topic,
    with the relay's producer settings (acks=all, idempotent, linger 5 ms, 256 KiB)."""
    with open_event_log(settings, CUSTOMER_LIFECYCLE, create=False) as log:
        sizes = [len(v) for batch in log.read(lambda _: None) for v in batch.values]
    value = b"x" * (sum(sizes) // max(len(sizes), 1))
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5,
                             batch_size=256 * 1024)
    started = time.perf_counter()
    for number in range(count):
        producer.send("bare-produce", key=f"c{number % 20_000:07d}".encode(), value=value)
    producer.flush()
    seconds = time.perf_counter() - started
    producer.close()
    return {"bare_produce_s": seconds}


def check_fetch_settings(bootstrap: str, settings: Settings) -> None:
    """Warn if KafkaEventLog's consumer no longer fetches as the bare consumer does."""
    from consumers.logs.kafka_event_log import KafkaEventLog

    index = settings.home / "fetch-check.sqlite"
    with KafkaEventLog(bootstrap=bootstrap, name=CUSTOMER_EVENTS, index_path=index) as log:
        make_consumer = getattr(log, "_consumer", None)  # private: this is only a check
        if make_consumer is None:
            say("WARNING: cannot compare fetch settings with KafkaEventLog (no _consumer)")
            return
        consumer = make_consumer()
        drift = {k: consumer.config.get(k) for k, v in FETCH.items() if consumer.config.get(k) != v}
        consumer.close()
    if drift:
        say(f"WARNING: KafkaEventLog fetches with {drift}; the bare consumer uses {FETCH}")


def bare_consume(bootstrap: str, topic: str) -> dict:
    """Count every record of `topic` from offset 0 to the high-water marks, undecoded."""
    started = time.perf_counter()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, **FETCH)
    tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, 0)
    nexts, count, last_records = dict.fromkeys(tps, 0), 0, time.monotonic()
    while nexts:
        polled = consumer.poll(timeout_ms=5, max_records=FETCH["max_poll_records"])
        for tp, records in polled.items():
            count += len(records)
            nexts[tp] = records[-1].offset + 1
            last_records = time.monotonic()
        if time.monotonic() - last_records > STALL_S:
            raise SystemExit(f"bare consumer: no records for {STALL_S:.0f} s, still to read: {nexts}")
        for tp in list(nexts):
            end = consumer.highwater(tp)  # tansu's end_offsets() is wrong: see MEASUREMENTS.md
            if end is not None and nexts[tp] >= end:
                del nexts[tp]
                consumer.pause(tp)
    seconds = time.perf_counter() - started
    consumer.close()
    return {"bare_records": count, "bare_s": seconds, "bare_rate": count / seconds}


def code_version() -> str:
    def git(*command: str) -> str:
        return subprocess.run(["git", *command], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    dirty = " + uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else ""
    return f"{git('rev-parse', '--short', 'HEAD') or 'unknown'}{dirty}"


def machine_info() -> list[str]:
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    python = os.path.relpath(sys.executable) if sys.executable.startswith(str(Path.cwd())) else sys.executable
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return [
        f"- command: `{shlex.join([python, *sys.argv])}`",
        f"- code: git {code_version()}",
        f"- machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}",
        f"- packages: {', '.join(versions)}",
        f"- peak RSS of the benchmark process: {rss_mib:,.0f} MiB",
    ]


def rate(value: float | None, unit: str = "") -> str:
    return "—" if value is None else f"{value:,.0f}{unit}"


def seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def table(args: argparse.Namespace, lines: int, generated_s: float | None, results: dict) -> str:
    made = "reused file" if generated_s is None else f"{generated_s:.1f} s"
    out = [
        f"### {args.customers:,} customers, {args.days} days, seed {args.seed}: "
        f"{lines:,} events (generation: {made}); batch size {args.batch_size:,}",
        "",
        "| backend | publish s | publish events/s | records | derive s | derive events/s "
        "| lifecycle events | relay s | floor events/s | derive / floor | bare consume msg/s | derive / bare "
        "| bare produce s | end to end / bare |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, r in results.items():
        vs_bare = f"{r['vs_bare']:.0%}" if "vs_bare" in r else "—"
        end_to_end = f"{r['end_to_end_vs_bare']:.1f}x" if "end_to_end_vs_bare" in r else "—"
        out.append(
            f"| {name} | {seconds(r['publish_s'])} | {rate(r['publish_rate'])} | {r['records']:,} "
            f"| {seconds(r['derive_s'])} | **{rate(r['derive_rate'])}** | {r['lifecycle']:,} "
            f"| {seconds(r['relay_s'])} | {rate(r['floor_rate'])} | {r['derive_rate'] / r['floor_rate']:.0%} "
            f"| {rate(r.get('bare_rate'))} | {vs_bare} | {seconds(r.get('bare_produce_s'))} | {end_to_end} |"
        )
    return "\n".join([*out, "", *machine_info(), ""])


def main() -> int:
    args = parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    path, lines, generated_s = population_file(args)
    results, status = {}, 0
    try:
        for backend in args.backends:
            say(f"{backend}:")
            if backend == "kafka":
                results[backend] = run_kafka(args, path)
            else:
                results[backend] = run_backend(args, path, Settings(home=fresh_home(args, backend)))
    except KeyboardInterrupt:
        say(f"interrupted during {backend}: the table has the backends that finished")
        status = 130
    text = table(args, lines, generated_s, results)
    print(text)
    (args.out_dir / "results.md").write_text(text)
    return status


if __name__ == "__main__":
    sys.exit(main())
