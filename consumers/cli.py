"""The `lifecycle` command: publish, process, fit-value-model, replay, verify, explain, sql, export, report, tail,
schema, demo.

The edge of the engine: it reads flags and the environment into one `Settings`, opens
the logs and the projections, and turns the engine's errors into one-line messages and
exit statuses (0 ok, 1 some input was invalid, 2 the command could not run).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import BinaryIO

import msgspec

from consumers.dry_run import dry_run
from consumers.dry_run import render_text as render_dry_run
from consumers.engine_session import EngineSession
from consumers.errors import ConfigurationError, LifecycleError
from consumers.event_log import CUSTOMER_EVENTS, CUSTOMER_LIFECYCLE, RecordBatch
from consumers.explain import UnknownCustomer, explain, render_text
from consumers.logs import open_event_log
from consumers.output import FORMATS, visible, write_rows
from consumers.policy_file import load_policy
from consumers.processor import ProcessReport
from consumers.publisher import PublishReport, bounded_lines, publish_lines
from consumers.replay import ReplayReport, default_workers, replay
from consumers.settings import ENV_HOME, ENV_KAFKA, Settings
from consumers.stopping import Stopping
from consumers.verify import verify
from lifecycle.errors import LifecycleDomainError
from lifecycle.value_model import ModelNotFitted
from projections.errors import ProjectionError
from projections.export import export_parquet
from projections.report import build_report
from projections.query import run_query
from schemas import SchemaError, ValueModelFitted, customer_events_schema, customer_lifecycle_schema

_EXPECTED_ERRORS = (LifecycleError, LifecycleDomainError, ProjectionError, SchemaError, OSError)
_SCHEMAS = {CUSTOMER_EVENTS: customer_events_schema, CUSTOMER_LIFECYCLE: customer_lifecycle_schema}
# How far ahead of this machine's clock `publish` takes an event without --allow-future:
# a day covers clocks set a little wrong and offsets written by hand.
_FUTURE_MARGIN = timedelta(days=1)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.build(home=args.home, kafka=args.kafka, policy=getattr(args, "policy", None),
                                  state_cache=getattr(args, "state_cache", None))
        return args.command(args, settings)
    except _EXPECTED_ERRORS as error:
        if isinstance(error, BrokenPipeError):
            return _reader_went_away()
        print(f"lifecycle {args.name}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _reader_went_away() -> int:
    """The reader of our output closed it (`lifecycle tail | head`): that is not an error.
    Output still buffered goes nowhere, instead of failing again at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 0


class _HelpFormatter(argparse.HelpFormatter):
    """Shows each option's default, where it has one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


def _at_least(minimum: float, kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value >= minimum:
            raise argparse.ArgumentTypeError(f"{text} is less than {minimum}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", help=f"where local state lives (env {ENV_HOME}, default ./.lifecycle)")
    common.add_argument("--kafka", help=f"Kafka bootstrap host:port (env {ENV_KAFKA}); default: embedded log")
    derive = argparse.ArgumentParser(add_help=False)
    derive.add_argument("--policy", help="the policy TOML file (default: the shipped policy)")
    cached = argparse.ArgumentParser(add_help=False)
    cached.add_argument("--state-cache", type=_at_least(0, int), default=Settings.state_cache,
                        help="customers' states kept decoded in memory; the others are read from the state store")
    parser = argparse.ArgumentParser(prog="lifecycle", description=__doc__.splitlines()[0], formatter_class=_HelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('customer-lifecycle')}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, run: Callable, text: str, *parents: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common, *parents], help=text, description=text,
                                  formatter_class=_HelpFormatter)
        sub.set_defaults(command=run, name=name)
        return sub

    sub = command("publish", _publish, "validate JSON lines and append the valid ones to the log", derive)
    sub.add_argument("file", nargs="?", default="-", help="a file of JSON lines, or - for stdin")
    sub.add_argument("--allow-future", action="store_true",
                     help="take events dated more than a day ahead of this machine's clock")
    sub = command("process", _process, "derive the customers' lifecycle from the log", derive, cached)
    sub.add_argument("--once", action="store_true", help="stop when caught up")
    sub.add_argument("--poll-interval", type=_at_least(0.01, float), default=1.0, help="seconds between reads when live")
    sub.add_argument("--clock-every", type=_at_least(0, float), default=3600.0,
                     help="when live, append a clock event this often, in seconds (0: never)")
    sub.add_argument("--snapshot-every", type=_at_least(0, float), default=60.0,
                     help="when live, publish a read-only snapshot for `lifecycle sql` this often, in seconds (0: never)")
    sub.add_argument("--batch-size", type=_at_least(1, int), default=20_000, help="most records per transaction")
    sub.add_argument("-v", "--verbose", action="store_true", help="print each committed batch")
    sub = command("fit-value-model", _fit_value_model, "fit BG/NBD and Gamma-Gamma to the purchases, put the fit "
                  "on the log and give every customer its figures", derive, cached)
    sub.add_argument("--as-of", type=_moment, metavar="TIME",
                     help="the cutoff: purchases up to this event time (default: the log's time)")
    sub = command("replay", _replay, "derive everything again from the log, in bulk, into a new generation", derive)
    sub.add_argument("--workers", type=_at_least(1, int), default=default_workers(),
                     help="worker processes (the machine's cores)")
    sub.add_argument("--dry-run", action="store_true",
                     help="replay into a scratch place and report what would change against the live stores")
    sub.add_argument("--format", choices=("text", "json"), default="text", help="of the dry run's report")
    sub.add_argument("--republish", action="store_true",
                     help="with Kafka: replace the customer-lifecycle topic with the replayed lifecycle events "
                          "(subscribers read it again from the start)")
    sub = command("verify", _verify, "replay the log into a scratch place and compare every live store with it",
                  derive)
    sub.add_argument("--workers", type=_at_least(1, int), default=default_workers(),
                     help="worker processes (the machine's cores)")
    sub = command("explain", _explain, "a customer's whole story: each lifecycle event, its rule, facts and causes")
    sub.add_argument("customer", help="the customer id")
    axis = sub.add_mutually_exclusive_group()
    axis.add_argument("--as-of", type=_moment, metavar="TIME",
                      help="where the customer stood at this event time, as the log is known now")
    axis.add_argument("--known-at", type=_moment, metavar="TIME",
                      help="what the engine had said by this moment (lifecycle events recorded by then)")
    sub.add_argument("--format", choices=("text", "json"), default="text")
    sub.add_argument("--show-personal", action="store_true", help="show personal data in the causes unmasked")
    sub = command("sql", _sql, "run a read-only query against the projections")
    sub.add_argument("query")
    sub.add_argument("--format", choices=FORMATS, default="table")
    sub = command("export", _export, "write the catalog as Parquet files for warehouse tools (no personal data)")
    sub.add_argument("--parquet", required=True, metavar="DIR", help="the directory to write the files to")
    sub = command("report", _report, "write one self-contained HTML report of the catalog, with charts")
    sub.add_argument("--out", default="lifecycle-report.html", help="the HTML file to write")
    sub.add_argument("--since", type=_moment, metavar="TIME", help="stage flows from this time "
                     "(default: 90 days before --until)")
    sub.add_argument("--until", type=_moment, metavar="TIME", help="stage flows up to this time "
                     "(default: the population's time)")
    sub = command("tail", _tail, "print the events of a log as JSON lines, oldest first")
    sub.add_argument("log", nargs="?", default=CUSTOMER_LIFECYCLE, choices=sorted(_SCHEMAS))
    sub = command("schema", _schema, "print the JSON Schema of a log's events")
    sub.add_argument("log", nargs="?", default=CUSTOMER_EVENTS, choices=sorted(_SCHEMAS))
    sub = command("demo", _demo, "generate, publish and process a synthetic population", derive, cached)
    sub.add_argument("--customers", type=_at_least(1, int), default=10_000)
    sub.add_argument("--seed", type=int, default=7)
    # Eighteen months: long enough for the one-year churn rule to show.
    sub.add_argument("--days", type=_at_least(1, int), default=548)
    return parser


def _publish(args: argparse.Namespace, settings: Settings) -> int:
    limit = load_policy(settings.policy).input.max_event_bytes
    not_after = None if args.allow_future else datetime.now(UTC) + _FUTURE_MARGIN
    with _open_input(args.file) as stream, open_event_log(settings, CUSTOMER_EVENTS) as log:
        report = publish_lines(bounded_lines(stream, limit), log, _report_invalid,
                               max_line_bytes=limit, not_after=not_after)
    print(_publish_summary(report), file=sys.stderr)
    return 1 if report.invalid or report.conflicts else 0


def _report_invalid(line: int, reason: str) -> None:
    print(f"line {line}: {reason}", file=sys.stderr)


def _publish_summary(report: PublishReport) -> str:
    return (
        f"published {report.appended} events ({report.duplicates} already on the log, "
        f"{report.conflicts} conflicts, {report.invalid} invalid lines of {report.lines})"
    )


def _process(args: argparse.Namespace, settings: Settings) -> int:
    on_commit = _print_commit if args.verbose else None
    with Stopping() as stopping, EngineSession(settings, batch_size=args.batch_size) as session:
        last_clock = time.monotonic()
        snapshot = _Snapshots(session, args.snapshot_every)
        while True:
            report = session.run_once(on_commit, should_stop=stopping)
            if report.events or args.once:
                _print_report(report)
            if args.once or stopping():
                return 0
            if report.events:
                _refit_when_due(session)
            snapshot.after(report)
            if args.clock_every and time.monotonic() - last_clock >= args.clock_every:
                session.tick()
                last_clock = time.monotonic()
            stopping.wait(args.poll_interval)


def _refit_when_due(session: EngineSession) -> None:
    """Fit the value models when the policy's schedule says so; a fit the data cannot
    support yet is reported, and tried again once as much log time has passed."""
    if not session.value_fit_due():
        return
    try:
        _print_fit(session.fit_value_models())
    except ModelNotFitted as error:
        print(f"lifecycle process: no value model fit yet: {error}", file=sys.stderr)


def _fit_value_model(args: argparse.Namespace, settings: Settings) -> int:
    with EngineSession(settings) as session:
        _print_fit(session.fit_value_models(args.as_of))
    return 0


def _print_fit(fitted: tuple[ValueModelFitted, bool]) -> None:
    fit, appended = fitted
    bg, gg = fit.bg_nbd, fit.gamma_gamma
    where = ("is on the log and applied" if appended else
             "was already on the log (the same cutoff, data and policy): nothing appended")
    print(f"fitted the value models as of {fit.occurred_at.isoformat()} to {fit.customers:,} customers "
          f"({fit.repeat_customers:,} repeat buyers): BG/NBD r={bg.r:.4g} alpha={bg.alpha:.4g} a={bg.a:.4g} "
          f"b={bg.b:.4g} per day; Gamma-Gamma p={gg.p:.4g} q={gg.q:.4g} gamma={gg.gamma:.4g} {fit.currency} "
          f"minor units; fit {fit.event_id} {where} (see `value_models`)", file=sys.stderr)


class _Snapshots:
    """When a live engine publishes a snapshot for `lifecycle sql`: after its first pass,
    then whenever something was committed since the last one and the interval has
    passed, also while the log is idle (so a snapshot never stays stale)."""

    def __init__(self, session: EngineSession, every: float) -> None:
        self.session, self.every = session, every
        self.published_at: float | None = None
        self.stale = True

    def after(self, report: ProcessReport) -> None:
        self.stale = self.stale or report.events > 0
        if not self.every or not self.stale:
            return
        now = time.monotonic()
        if self.published_at is None or now - self.published_at >= self.every:
            self.session.store.publish_snapshot()
            self.published_at, self.stale = now, False


def _print_commit(batch: RecordBatch) -> None:
    tracking = batch.tracking
    print(
        f"committed {len(batch.values)} records of {tracking.application_name} "
        f"up to position {tracking.notification_id}",
        file=sys.stderr,
        flush=True,
    )


def _print_report(report: ProcessReport) -> None:
    print(_process_summary(report), file=sys.stderr)
    if report.dead_letters:
        print(f"{report.dead_letters} records were refused: see "
              "`lifecycle sql \"select partition, position, reason from dead_letters\"`", file=sys.stderr)
    if report.unpriced:
        currencies = ", ".join(f"{code} {count}" for code, count in sorted(report.unpriced.items()))
        print(f"{sum(report.unpriced.values())} purchases in currencies the policy has no rate for "
              f"({currencies}) count no value: add them under [value.rates_to_base]", file=sys.stderr)


def _process_summary(report: ProcessReport) -> str:
    return (
        f"processed {report.events} events in {report.batches} batches "
        f"({report.dead_letters} dead letters, {report.lifecycle_events} lifecycle events), "
        f"{report.events_per_second:,.0f} events/s"
    )


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    if args.dry_run:
        changes = _replaying(dry_run, "dry run", args, settings)
        _write_document(changes, args.format, render_dry_run)
        return 0
    report = _replaying(partial(replay, republish=args.republish), "replay", args, settings)
    print(_replay_summary(report), file=sys.stderr)
    return 0


def _replaying(run: Callable, name: str, args: argparse.Namespace, settings: Settings):  # type: ignore[no-untyped-def, type-arg]
    """`run(settings, policy, workers, progress)`, with progress shown on a terminal."""
    progress = _Progress(name) if sys.stderr.isatty() else None
    result = run(settings, load_policy(settings.policy), args.workers, progress)
    if progress is not None:
        progress.done()
    return result


def _write_document(document: dict, form: str, render: Callable[[dict], str]) -> None:  # type: ignore[type-arg]
    if form == "json":
        sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(document), indent=2) + b"\n")
    else:
        print(render(document))
    sys.stdout.flush()


def _verify(args: argparse.Namespace, settings: Settings) -> int:
    report = _replaying(verify, "verify", args, settings)
    for mismatch in report.mismatches:
        print(f"customer {visible(mismatch.customer_id)}: {mismatch.store}: {mismatch.detail}")
    sys.stdout.flush()
    customers = len({m.customer_id for m in report.mismatches})
    verdict = f"{customers} customers differ" if report.mismatches else "all match"
    stores = ", ".join([*_VERIFIED_TABLES, *report.stores])
    print(f"verified {report.customers} customers and {report.lifecycle_events} lifecycle events from "
          f"{report.records} events against {stores}: {verdict} ({report.seconds:.1f} s)", file=sys.stderr)
    return 1 if report.mismatches else 0


_VERIFIED_TABLES = ("customers", "lifecycle_transitions", "value_movements", "value_estimates")


def _replay_summary(report: ReplayReport) -> str:
    return (
        f"replayed {report.records} events into {report.generation}: {report.customers} customers, "
        f"{report.lifecycle_events} lifecycle events, {report.dead_letters} dead letters, "
        f"{report.events_per_second:,.0f} events/s"
    )


class _Progress:
    """One line on a terminal, rewritten: what is done, how fast, and how long is left."""

    def __init__(self, command: str) -> None:
        self.command = command
        self.started = time.monotonic()
        self.phase = ""

    def __call__(self, phase: str, done: int, of: int) -> None:
        if phase != self.phase:
            self.phase, self.started = phase, time.monotonic()
        rate = done / max(time.monotonic() - self.started, 1e-6)
        left = f", {(of - done) / rate:,.0f} s left" if rate and of > done else ""
        sys.stderr.write(f"\r{self.command}: {phase} {done:,} of {of:,} records, {rate:,.0f}/s{left}\x1b[K")
        sys.stderr.flush()

    @staticmethod
    def done() -> None:
        sys.stderr.write("\n")


def _moment(text: str) -> datetime:
    """An ISO 8601 time; without a UTC offset it is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time (e.g. 2025-03-01T12:00:00Z)") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _explain(args: argparse.Namespace, settings: Settings) -> int:
    try:
        document = explain(settings, args.customer, as_of=args.as_of, known_at=args.known_at,
                           unmasked=args.show_personal)
    except UnknownCustomer as error:
        print(f"lifecycle explain: {error}", file=sys.stderr)
        return 1
    _write_document(document, args.format, render_text)
    return 0


def _sql(args: argparse.Namespace, settings: Settings) -> int:
    settings.require_home()
    result = run_query(settings.views_path, args.query)
    if result.source != settings.views_path:
        published = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(result.source.stat().st_mtime))
        print(f"(a running `lifecycle process` holds the projections: answered from its snapshot "
              f"of {published})", file=sys.stderr)
    write_rows(sys.stdout, result.columns, result.rows, args.format)
    sys.stdout.flush()
    return 0


def _export(args: argparse.Namespace, settings: Settings) -> int:
    settings.require_home()
    source, written = export_parquet(settings.views_path, Path(args.parquet))
    if source != settings.views_path:
        print("(a running `lifecycle process` holds the projections: exported from its snapshot)", file=sys.stderr)
    for table, rows in written:
        print(f"{table}.parquet: {rows} rows", file=sys.stderr)
    return 0


def _report(args: argparse.Namespace, settings: Settings) -> int:
    settings.require_home()
    _write_report(settings, Path(args.out), args.since, args.until)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _write_report(settings: Settings, out: Path, since: datetime | None, until: datetime | None) -> None:
    html = build_report(settings.views_path, since, until)
    partial = out.with_name(out.name + ".partial")
    partial.write_text(html, encoding="utf-8")
    partial.replace(out)


def _tail(args: argparse.Namespace, settings: Settings) -> int:
    if settings.kafka is None:
        settings.require_home()
    out = sys.stdout.buffer
    with open_event_log(settings, args.log, create=False) as log:
        for batch in log.read(lambda _: None):
            for raw in batch.values:
                out.write(bytes(raw) + b"\n")
    out.flush()
    return 0


def _schema(args: argparse.Namespace, settings: Settings) -> int:
    print(json.dumps(_SCHEMAS[args.log](), indent=2))
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from lifecycle.population import PopulationSpec, generate

    spec = PopulationSpec(customers=args.customers, seed=args.seed, days=args.days)
    print(f"demo: {spec.customers:,} customers over {spec.days} days (seed {spec.seed}), "
          f"log: {settings.kafka or settings.home}", file=sys.stderr)
    started = time.perf_counter()
    with EngineSession(settings) as session:
        limit = session.processor.engine.policy.input.max_event_bytes
        published = publish_lines(generate(spec), session.log, _report_invalid, max_line_bytes=limit)
        print(f"{_publish_summary(published)} in {time.perf_counter() - started:.1f}s", file=sys.stderr)
        report = session.run_once()
        print(_process_summary(report))
        try:
            _print_fit(session.fit_value_models())
        except ModelNotFitted as error:
            print(f"demo: no value model fit: {error}", file=sys.stderr)
    for title, query in _DEMO_QUERIES:
        print(f"\n{title}")
        result = run_query(settings.views_path, query)
        write_rows(sys.stdout, result.columns, result.rows, "table")
    report_path = settings.home / "report.html"
    _write_report(settings, report_path, None, None)
    print(f"\nthe report, for people: {report_path} (open it in a browser); "
          f"for auditors: lifecycle explain <customer id>", file=sys.stderr)
    return 0


_DEMO_QUERIES = (
    ("customers per stage and activity",
     "PIVOT (SELECT stage, activity FROM customers) ON activity IN ('active', 'drowsy', 'half_asleep', "
     "'dormant', 'churned') USING count(*) GROUP BY stage ORDER BY list_position("
     "['prospect', 'qualified', 'first_time', 'repeat', 'loyal', 'member', 'advocate'], stage)"),
    ("lifecycle events per dimension",
     "SELECT dimension, count(*) AS events, count(DISTINCT customer_id) AS customers "
     "FROM lifecycle_transitions GROUP BY 1 ORDER BY 1"),
)


@contextmanager
def _open_input(name: str) -> Iterator[BinaryIO]:
    """A binary line stream from a path, or stdin for `-`."""
    if name == "-":
        yield sys.stdin.buffer
        return
    try:
        stream = open(name, "rb")  # noqa: SIM115 - closed below, after the caller is done
    except OSError as error:
        raise ConfigurationError(f"cannot read {name}: {error.strerror}") from None
    with stream:
        yield stream


if __name__ == "__main__":
    sys.exit(main())
