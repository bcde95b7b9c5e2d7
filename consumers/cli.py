"""The `lifecycle` command: publish, process, status, clock, fit-value-model, replay, verify, explain,
dead-letters, access-log, rotate-master-key, sql, export, report, tail, schema, demo.

The edge of the engine: it reads flags and the environment into one `Settings`, opens
the logs and the projections, and turns the engine's errors into one-line messages and
exit statuses (0 ok, 1 some input was invalid, 2 the command could not run, 3 it failed
part-way and said what it kept).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import BinaryIO

import msgspec

from consumers import store_faults
from consumers.processing import engine_commands
from consumers.commands.dead_letter_listing import HINT as DEAD_LETTER_HINT
from consumers.commands.dead_letter_listing import list_dead_letters
from consumers.commands.dead_letter_listing import render_text as render_dead_letters
from consumers.privacy.customer_keys import MasterKey
from consumers.privacy.key_store import open_customer_keys
from consumers.replay.dry_run import dry_run
from consumers.replay.dry_run import render_text as render_dry_run
from consumers.processing.checkpoint import CheckpointPolicy
from consumers.group.member import DEFAULT_GROUP, GroupSettings
from consumers.processing.engine_session import EngineSession
from consumers.errors import ConfigurationError, LifecycleError
from consumers.logs.event_log import CUSTOMER_EVENTS, CUSTOMER_LIFECYCLE
from consumers.commands.explain import UnknownCustomer, explain, render_text
from consumers.logs import open_event_log
from consumers.privacy.access_log import SQLiteAccessLog
from consumers.privacy.personal_data import Opener, Sealer
from consumers.commands.output import FORMATS, safe_json, snapshot_note, visible, visible_lines, write_rows
from consumers.policy_file import load_policy
from consumers.commands.progress import Progress, reading
from consumers.commands.status import as_json as status_json
from consumers.commands.asyncapi import asyncapi_document
from consumers.commands.project import project
from consumers.commands.status import engine_status, group_status
from consumers.commands.status import render_text as render_status
from consumers.privacy.role_reading import readable, role_of, tail
from consumers.publisher import PublishFailed, PublishReport, bounded_lines, publish_lines
from consumers.replay import ReplayReport, default_workers, replay
from consumers.settings import ENV_HOME, ENV_KAFKA, ENV_KEY_STORE, ENV_MASTER_KEY, ENV_ROLES, Settings
from consumers.replay.verify import verify
from lifecycle.errors import LifecycleDomainError
from lifecycle.value_model import ModelNotFitted
from projections.catalog.dead_letters import KINDS
from projections.errors import ProjectionError
from projections.reading.export import export_parquet
from projections.reading.report import build_report
from projections.reading.query import run_query
from schemas import (
    SchemaError,
    customer_events_schema,
    customer_lifecycle_schema,
)

PARTLY_DONE = 3
"""The exit status of a command that failed part-way, after saying what it kept."""
_EXPECTED_ERRORS = (LifecycleError, LifecycleDomainError, ProjectionError, SchemaError, OSError)
_SCHEMAS = {CUSTOMER_EVENTS: customer_events_schema, CUSTOMER_LIFECYCLE: customer_lifecycle_schema,
            "asyncapi": asyncapi_document}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = None
    try:
        settings = Settings.build(home=args.home, kafka=args.kafka, policy=getattr(args, "policy", None),
                                  state_cache=getattr(args, "state_cache", None),
                                  projections_memory=getattr(args, "projections_memory", None),
                                  master_key=getattr(args, "master_key", None), roles=args.roles,
                                  key_store=args.key_store)
        return args.command(args, settings)
    except KeyboardInterrupt:
        print(f"lifecycle {args.name}: interrupted; {_INTERRUPTED.get(args.name, _NOTHING_CHANGED)}", file=sys.stderr)
        return 130
    except Exception as error:
        # The engine's own errors say what happened already; a library's are told here.
        own = isinstance(error, _EXPECTED_ERRORS) and not isinstance(error, OSError)
        fault = None if own else store_faults.told(error, settings, args.name)
        if isinstance(error, BrokenPipeError):
            return _reader_went_away()
        if fault is None and not isinstance(error, _EXPECTED_ERRORS):
            raise
        print(f"lifecycle {args.name}: {fault or error}", file=sys.stderr)
        return PARTLY_DONE if isinstance(fault, store_faults.DiskFull) else 2


_NOTHING_CHANGED = "it only reads: nothing was changed"
_INTERRUPTED = {
    "publish": "the events appended before are on the log: publish the same file again, and what is there already "
               "is skipped",
    "process": "every batch committed is kept: run it again to go on from there",
    "clock": "no clock was appended, or one was: `lifecycle tail customer-events --type clock` says which",
    "replay": "the generation in use is unchanged and the half-built one was removed: run `lifecycle replay` again",
    "verify": "nothing was changed: run `lifecycle verify` again",
    "fit-value-model": "no fit was appended: run it again",
    "export": "the previous export is whole (the new one was written beside it): run the export again",
    "report": "the previous report is whole (the new one is written beside it first): run it again",
    "rotate-master-key": "the keys are re-wrapped in one transaction, all or none: if the message of the rotation "
                         "was not printed, check which master key opens them with `lifecycle explain CUSTOMER "
                         "--show-personal --role privacy` before destroying either key",
    "demo": "what was published and processed is kept: run the demo again (`make demo`); the events already "
            "published are skipped and processing goes on",
}
"""What an interrupted command kept, and what to rerun: each says its own."""


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


def _common(parser: argparse.ArgumentParser, default: object) -> argparse.ArgumentParser:
    """The options every command takes, given before the command or after it."""
    parser.add_argument("--home", default=default, help=f"where local state lives (env {ENV_HOME}, default "
                        "./.lifecycle)")
    parser.add_argument("--kafka", default=default, help=f"Kafka bootstrap host:port (env {ENV_KAFKA}); default: "
                        "embedded log")
    parser.add_argument("--roles", metavar="FILE", default=default, help=f"who may read what (env {ENV_ROLES}; "
                        "default: the shipped roles: analyst, privacy)")
    parser.add_argument("--key-store", metavar="URL", default=default, help="the PostgreSQL database of the customers' "
                        f"keys, shared by several publishing machines (env {ENV_KEY_STORE}; default: HOME's own key "
                        "file)")
    return parser


_ROWS_HELP = "how rows are written: a table for people, csv or json for programs"


def _parser() -> argparse.ArgumentParser:
    # After the command they override what was given before it; when not given after
    # it, SUPPRESS leaves what was given before (or None) in place.
    common = _common(argparse.ArgumentParser(add_help=False), argparse.SUPPRESS)
    reader = argparse.ArgumentParser(add_help=False)
    reader.add_argument("--role", help="read as this role of the roles file (default: its default, the analyst)")
    derive = argparse.ArgumentParser(add_help=False)
    derive.add_argument("--policy", help="the policy TOML file (default: the shipped policy)")
    keyed = argparse.ArgumentParser(add_help=False)
    keyed.add_argument("--master-key", metavar="FILE", help=f"the master key that wraps the customers' keys (env "
                       f"{ENV_MASTER_KEY}; default: HOME/master.key, made on first use)")
    cached = argparse.ArgumentParser(add_help=False)
    cached.add_argument("--state-cache", type=_at_least(0, int), default=Settings.state_cache,
                        help="customers' states kept decoded in memory; the others are read from the state store")
    cached.add_argument("--projections-memory", metavar="SIZE", default=Settings.projections_memory,
                        help="the most memory DuckDB takes for the projections (e.g. 512MB, 2GB); past it, it "
                        "spills to disk")
    parser = argparse.ArgumentParser(prog="lifecycle", description=" ".join(__doc__.split("\n\n")[0].split()),
                                     formatter_class=_HelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('customer-lifecycle')}")
    _common(parser, None)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, run: Callable, text: str, *parents: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common, *parents], help=text, description=text,
                                  formatter_class=_HelpFormatter)
        sub.set_defaults(command=run, name=name)
        return sub

    sub = command("publish", _publish, "validate JSON lines, seal their personal data and append the valid ones to "
                  "the log", derive, keyed)
    sub.add_argument("file", nargs="?", default="-", help="a file of JSON lines, or - for stdin")
    sub.add_argument("--allow-future", action="store_true",
                     help="take events dated more than a day ahead of this machine's clock")
    sub.add_argument("--strict", action="store_true",
                     help="refuse a line with fields the contract does not know (without it they are dropped, and "
                     "counted)")
    sub = command("process", engine_commands.process, "derive the customers' lifecycle from the log", derive, cached)
    sub.add_argument("--once", action="store_true",
                     help="stop when caught up, after appending a clock dated now so that customers age (a batch run)")
    sub.add_argument("--no-clock", dest="clock", action="store_false",
                     help="with --once: append no clock (time moves only with the log's own events and clocks)")
    sub.add_argument("--clock-at", type=_moment, metavar="TIME",
                     help="with --once: date the batch run's clock at TIME instead of now")
    sub.add_argument("--allow-future", action="store_true",
                     help="take a --clock-at more than a day ahead of this machine's clock")
    sub.add_argument("--poll-interval", type=_at_least(0.01, float), default=1.0, help="seconds between reads when live")
    sub.add_argument("--clock-every", type=_at_least(0, float), default=3600.0,
                     help="when live, append a clock event this often, in seconds (0: never)")
    sub.add_argument("--snapshot-every", type=_at_least(0, float), default=60.0,
                     help="when live, publish a read-only snapshot for `lifecycle sql` this often, in seconds (0: never)")
    sub.add_argument("--batch-size", type=_at_least(1, int), default=20_000,
                     help="most records per batch (its lifecycle events are one transaction)")
    sub.add_argument("--checkpoint-batches", type=_at_least(1, int), default=CheckpointPolicy.batches,
                     help="write the projections and the engine's states after this many batches (1: after every "
                     "batch); a crash derives the batches since the last checkpoint again")
    sub.add_argument("--checkpoint-seconds", type=_at_least(0, float), default=CheckpointPolicy.seconds,
                     help="or after this many seconds, whichever comes first")
    sub.add_argument("--group", nargs="?", const=DEFAULT_GROUP, metavar="NAME",
                     help=f"with --kafka: join the consumer group NAME (default {DEFAULT_GROUP}) and process the "
                     "partitions Kafka assigns, their outputs committed in Kafka transactions (README: several "
                     "processors)")
    sub.add_argument("--session-timeout", type=_at_least(1, float), default=GroupSettings.session_timeout_s,
                     metavar="SECONDS", help="with --group: how long the group waits for a silent member before "
                     "moving its partitions")
    sub.add_argument("--metrics-port", type=_at_least(0, int), metavar="PORT",
                     help="serve metrics for Prometheus on this port while processing (0: any free port; "
                     "default: none); docs/operations.md lists them")
    sub.add_argument("--metrics-host", default="127.0.0.1", metavar="HOST",
                     help="the address the metrics are served on (0.0.0.0: every interface)")
    sub.add_argument("-v", "--verbose", action="store_true", help="print each committed batch")
    sub = command("project", project, "build the analysts' projections of a consumer group (`process --group`) "
                  "in this home, from the group's topics", derive, cached)
    sub.add_argument("--group", default=DEFAULT_GROUP, metavar="NAME",
                     help="the consumer group whose members' checkpoints to project")
    sub.add_argument("--once", action="store_true", help="stop when what the topics hold is projected")
    sub.add_argument("--poll-interval", type=_at_least(0.01, float), default=1.0, help="seconds between reads when live")
    sub.add_argument("--snapshot-every", type=_at_least(0, float), default=60.0,
                     help="when live, publish a read-only snapshot for `lifecycle sql` this often, in seconds (0: never)")
    sub.add_argument("-v", "--verbose", action="store_true", help="print what each read projected")
    sub = command("clock", engine_commands.clock, "append a clock event (dated now, or --at) so that time moves "
                  "for every customer, and process it", derive, cached)
    sub.add_argument("--at", type=_moment, metavar="TIME", help="the clock's time (default: now); after a long "
                     "stop, clocks step there within the policy's [time] clock_max_lead_days")
    sub.add_argument("--allow-future", action="store_true",
                     help="take a time more than a day ahead of this machine's clock")
    sub = command("fit-value-model", engine_commands.fit_value_model, "fit BG/NBD and Gamma-Gamma to the purchases, put the fit "
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
    sub.add_argument("--partition", type=_at_least(0, int), action="append", metavar="N",
                     help="with --kafka: only this partition of customer-events (repeatable), so that machines can "
                     "share a large verify; default: every partition")
    sub = command("explain", _explain, "a customer's whole story: each lifecycle event, its rule, facts and causes",
                  keyed, reader)
    sub.add_argument("customer", help="the customer id")
    axis = sub.add_mutually_exclusive_group()
    axis.add_argument("--as-of", type=_moment, metavar="TIME",
                      help="where the customer stood at this event time, as the log is known now")
    axis.add_argument("--known-at", type=_moment, metavar="TIME",
                      help="what the engine had said by this moment (lifecycle events recorded by then)")
    sub.add_argument("--format", choices=("text", "json"), default="text", help="text for people, json for programs")
    sub.add_argument("--show-personal", action="store_true", help="open personal data in the causes with the "
                     "customer's key and show it in clear (needs the master key; each read goes in the access log)")
    sub = command("dead-letters", _dead_letters, "list the records the engine refused, by kind, with what to do")
    sub.add_argument("--kind", choices=sorted(KINDS),
                     help="only dead letters of this kind (held records show with all kinds, or with `time`)")
    sub.add_argument("--limit", type=_at_least(0, int), default=3, help="examples shown of each kind")
    sub.add_argument("--format", choices=("text", "json"), default="text", help="text for people, json for programs")
    sub = command("access-log", _access_log, "list the reads of personal data in clear: who, when, which customer "
                  "and fields, which command", reader)
    sub.add_argument("--customer", help="only the reads of this customer")
    sub.add_argument("--format", choices=FORMATS, default="table", help=_ROWS_HELP)
    sub = command("rotate-master-key", _rotate_master_key, "wrap every customer key by a new master key (nothing "
                  "on the logs changes)", keyed)
    sub.add_argument("new_key", metavar="NEW_KEY_FILE", help="the new master key (made there if missing)")
    sub = command("sql", _sql, "run a read-only query against the projections", reader)
    sub.add_argument("query", help="one SQL statement, read-only (docs/catalog.md lists the tables and views)")
    sub.add_argument("--format", choices=FORMATS, default="table", help=_ROWS_HELP)
    sub = command("export", _export, "write the catalog as Parquet files for warehouse tools (no personal data)",
                  reader)
    sub.add_argument("--parquet", required=True, metavar="DIR", help="the directory to write the files to")
    sub = command("report", _report, "write one self-contained HTML report of the catalog, with charts", reader)
    sub.add_argument("--out", default="lifecycle-report.html", help="the HTML file to write")
    sub.add_argument("--since", type=_moment, metavar="TIME", help="stage flows from this time "
                     "(default: 90 days before --until)")
    sub.add_argument("--until", type=_moment, metavar="TIME", help="stage flows up to this time "
                     "(default: the population's time)")
    sub = command("tail", tail, "print the events of a log as JSON lines, oldest first (personal data masked)",
                  keyed, reader)
    sub.add_argument("log", nargs="?", default=CUSTOMER_LIFECYCLE, choices=sorted((CUSTOMER_EVENTS, CUSTOMER_LIFECYCLE)),
                     help="which log")
    sub.add_argument("--show-personal", action="store_true", help="customer-events: open personal data with the "
                     "customers' keys and show it in clear (needs the master key; each read goes in the access log)")
    sub.add_argument("--follow", action="store_true", help="keep printing new records as they come, until Ctrl-C")
    sub.add_argument("--from", dest="start", action="append", metavar="POSITION",
                     help="start after this position: N in every partition, or PARTITION=N (repeatable); it ends "
                     "by telling where it stopped")
    sub.add_argument("--customer", metavar="ID", help="only this customer's records")
    sub.add_argument("--type", action="append", metavar="TYPE",
                     help="only records of this type (repeatable), e.g. stage_changed or purchase")
    sub = command("status", _status, "where the engine stands: running or not, and per partition what is committed, "
                  "where the log ends and the lag")
    sub.add_argument("--format", choices=("text", "json"), default="text", help="text for people, json for programs")
    sub.add_argument("--group", metavar="NAME", help="with --kafka: the consumer group of `process --group NAME` "
                     "instead of this home's engine")
    sub = command("schema", _schema, "print the JSON Schema of a log's events, or the AsyncAPI document of every "
                  "topic")
    sub.add_argument("log", nargs="?", default=CUSTOMER_EVENTS, choices=sorted(_SCHEMAS), help="which log's events "
                     "(`asyncapi`: the AsyncAPI 3.0 document of the Kafka topics: keys, headers and values)")
    sub = command("demo", _demo, "generate, publish and process a synthetic population", derive, cached, keyed)
    sub.add_argument("--customers", type=_at_least(1, int), default=10_000,
                     help="customers in the synthetic population")
    sub.add_argument("--seed", type=int, default=7, help="the population's seed: the same seed gives the same events")
    # Eighteen months: long enough for the one-year churn rule to show.
    sub.add_argument("--days", type=_at_least(1, int), default=548, help="days of history the population covers")
    return parser


def _status(args: argparse.Namespace, settings: Settings) -> int:
    status = engine_status(settings) if args.group is None else group_status(settings, args.group)
    if args.format == "json":
        print(json.dumps(status_json(status)))
    else:
        print(render_status(status, datetime.now(UTC)))
    return 0


def _publish(args: argparse.Namespace, settings: Settings) -> int:
    limit = load_policy(settings.policy).input.max_event_bytes
    not_after = None if args.allow_future else datetime.now(UTC) + engine_commands.FUTURE_MARGIN
    with _open_input(args.file) as stream, open_event_log(settings, CUSTOMER_EVENTS) as log, \
            open_customer_keys(settings) as keys:
        lines, progress = bounded_lines(stream, limit), Progress("publish") if sys.stderr.isatty() else None
        if progress is not None:
            lines = reading(lines, progress, _size(stream))
        try:
            report = publish_lines(lines, log, partial(_report_invalid, progress=progress), max_line_bytes=limit,
                                   not_after=not_after, sealer=Sealer(keys), strict=args.strict)
        except PublishFailed as failed:
            if progress is not None:
                progress.done()
            full = store_faults.disk_full(failed.cause)
            print(f"lifecycle publish: {'the disk is full: ' if full else ''}{failed}; "
                  f"{_publish_summary(failed.report)} before it, and they stay; "
                  f"{'free some space, then ' if full else ''}publish the same file again: "
                  "what is already on the log is skipped", file=sys.stderr)
            return PARTLY_DONE
        if progress is not None:
            progress.done()
    print(_publish_summary(report), file=sys.stderr)
    return 1 if report.invalid or report.conflicts else 0


def _size(stream: BinaryIO) -> int | None:
    """The size of a file being read; None for a pipe."""
    try:
        status = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return None
    return status.st_size if stat.S_ISREG(status.st_mode) else None


def _report_invalid(line: int, reason: str, progress: Progress | None = None) -> None:
    if progress is not None:
        progress.clear()  # the progress line is drawn again after it
    print(f"line {line}: {reason}", file=sys.stderr)


def _publish_summary(report: PublishReport) -> str:
    summary = (f"published {report.appended} events ({report.duplicates} already on the log, "
               f"{report.conflicts} conflicts, {report.invalid} invalid lines of {report.lines})")
    if report.unknown_fields:
        fields = ", ".join(f"`{name}` ({lines:,} line{'s' * (lines != 1)})"
                           for name, lines in sorted(report.unknown_fields.items()))
        summary += (f"; fields the contract does not know were dropped: {fields} (`lifecycle schema "
                    "customer-events` lists the fields; --strict refuses such lines)")
    return summary


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    if args.dry_run:
        changes = _replaying(dry_run, "dry run", args, settings)
        _write_document(changes, args.format, render_dry_run)
        return 0
    report = _replaying(partial(replay, republish=args.republish), "replay", args, settings)
    print(_replay_summary(report), file=sys.stderr)
    if report.history_lost is not None:
        print(f"the engine-commit history (what the engine had said when, for `explain --known-at`) and the "
              f"policy versions of the generation replaced could not be read ({' '.join(report.history_lost.split())}): "
              "the new generation starts them afresh, from this replay", file=sys.stderr)
    if report.dead_letters:
        print(DEAD_LETTER_HINT, file=sys.stderr)
    return 0


def _replaying(run: Callable, name: str, args: argparse.Namespace, settings: Settings):  # type: ignore[no-untyped-def, type-arg]
    """`run(settings, policy, workers, progress)`, with progress shown on a terminal."""
    progress = Progress(name) if sys.stderr.isatty() else None
    result = run(settings, load_policy(settings.policy), args.workers, progress)
    if progress is not None:
        progress.done()
    return result


def _write_document(document: dict, form: str, render: Callable[[dict], str]) -> None:  # type: ignore[type-arg]
    if form == "json":
        encoded = msgspec.json.format(msgspec.json.encode(document), indent=2).decode()
        print(safe_json(encoded))
    else:
        print(visible_lines(render(document)))
    sys.stdout.flush()


def _verify(args: argparse.Namespace, settings: Settings) -> int:
    report = _replaying(partial(verify, partitions=args.partition), "verify", args, settings)
    if report.damaged:
        for damage in report.damaged:
            print(f"damaged: {visible(str(damage))}")
        print(f"nothing compared: {store_faults.remedy(report.damaged)}", file=sys.stderr)
        return 1
    for mismatch in report.mismatches:
        print(f"customer {visible(mismatch.customer_id)}: {mismatch.store}: {mismatch.detail}")
    sys.stdout.flush()
    customers = len({m.customer_id for m in report.mismatches})
    verdict = f"{customers} customers differ" if report.mismatches else "all match"
    stores = ", ".join([*_VERIFIED_TABLES, *report.stores])
    print(f"verified {report.customers} customers and {report.lifecycle_events} lifecycle events from "
          f"{report.records} events against {stores}: {verdict} ({report.seconds:.1f} s)", file=sys.stderr)
    return 1 if report.mismatches else 0


_VERIFIED_TABLES = ("customers", "lifecycle_transitions", "value_movements", "customer_facts", "value_estimates")


def _replay_summary(report: ReplayReport) -> str:
    return (
        f"replayed {report.records} events into {report.generation}: {report.customers} customers, "
        f"{report.lifecycle_events} lifecycle events, {report.dead_letters} dead letters, "
        f"{report.events_per_second:,.0f} events/s ({_replay_phases(report.phases)})"
    )


def _replay_phases(phases: dict[str, float]) -> str:
    """'scan 1.0 s, time 0.1 s, fold 5.0 s, writes 2.0 s: projections 1.5 s beside lifecycle log 1.2 s + states 0.3 s'."""
    steps = ", ".join(f"{phase} {phases[phase]:.1f} s" for phase in ("scan", "time", "fold", "writes") if phase in phases)
    if "projections" not in phases:
        return steps
    beside = " + ".join(f"{phase} {phases[phase]:.1f} s" for phase in ("lifecycle log", "states") if phase in phases)
    return f"{steps}: projections {phases['projections']:.1f} s beside {beside}"


def _moment(text: str) -> datetime:
    """An ISO 8601 time; without a UTC offset it is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time (e.g. 2025-03-01T12:00:00Z)") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _explain(args: argparse.Namespace, settings: Settings) -> int:
    role = role_of(settings, args.role)
    database = readable(settings, role)
    try:
        if args.show_personal:
            role.require_clear("explain --show-personal")
            with open_customer_keys(settings) as keys, SQLiteAccessLog(settings.home) as access:
                opener = Opener(keys)
                document = explain(settings, args.customer, as_of=args.as_of, known_at=args.known_at, opener=opener,
                                   database=database)
                access.record(getpass.getuser(), role.name, "explain", opener.opened.items())
        else:
            document = explain(settings, args.customer, as_of=args.as_of, known_at=args.known_at, database=database)
    except UnknownCustomer as error:
        print(f"lifecycle explain: {error}", file=sys.stderr)
        return 1
    _write_document(document, args.format, render_text)
    return 0


def _access_log(args: argparse.Namespace, settings: Settings) -> int:
    settings.require_home()
    role_of(settings, args.role).require_clear("access-log")
    with SQLiteAccessLog(settings.home) as access:
        rows = access.reads(args.customer)
    write_rows(sys.stdout, ["at", "reader", "role", "command", "customer_id", "fields"], rows, args.format)
    sys.stdout.flush()
    return 0


def _rotate_master_key(args: argparse.Namespace, settings: Settings) -> int:
    new_path = Path(args.new_key)
    new = MasterKey.load(new_path, create=True)
    progress = Progress("rotate-master-key") if sys.stderr.isatty() else None
    with open_customer_keys(settings) as keys:
        old = keys.master.fingerprint
        count = keys.rewrap(new, None if progress is None else lambda done: progress("re-wrapped", done, None, "keys"))
    if progress is not None:
        progress.done()
    if settings.master_key is None:
        os.replace(new_path, settings.master_key_path)
        where = f"it replaced {settings.master_key_path}, the home's default"
    else:
        where = f"point --master-key or {ENV_MASTER_KEY} at {new_path} from now on"
    print(f"re-wrapped {count:,} customer keys from master key {old} to {new.fingerprint}: {where}; the old "
          "master key opens nothing any more: destroy every copy of it", file=sys.stderr)
    return 0


def _dead_letters(args: argparse.Namespace, settings: Settings) -> int:
    document = list_dead_letters(settings, args.kind, args.limit)
    _write_document(document, args.format, render_dead_letters)
    return 0


def _sql(args: argparse.Namespace, settings: Settings) -> int:
    settings.require_home()
    database = readable(settings, role_of(settings, args.role))
    result = run_query(database, args.query)
    note = snapshot_note(result.source, database)
    if note is not None:
        print(note, file=sys.stderr)
    write_rows(sys.stdout, result.columns, result.rows, args.format)
    sys.stdout.flush()
    return 0


def _export(args: argparse.Namespace, settings: Settings) -> int:
    settings.require_home()
    database = readable(settings, role_of(settings, args.role))
    progress = Progress("export") if sys.stderr.isatty() else None
    shown = None if progress is None else lambda done, of: progress("written", done, of, "tables")
    source, written = export_parquet(database, Path(args.parquet), shown)
    if progress is not None:
        progress.done()
    if source != database:
        print("(a running `lifecycle process` holds the projections: exported from its snapshot)", file=sys.stderr)
    for table, rows in written:
        print(f"{table}.parquet: {rows} rows", file=sys.stderr)
    return 0


def _report(args: argparse.Namespace, settings: Settings) -> int:
    settings.require_home()
    _write_report(readable(settings, role_of(settings, args.role)), Path(args.out), args.since, args.until)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _write_report(database: Path, out: Path, since: datetime | None, until: datetime | None) -> None:
    progress = Progress("report") if sys.stderr.isatty() else None
    html = build_report(database, since, until, None if progress is None else progress.step)
    if progress is not None:
        progress.done()
    partial = out.with_name(out.name + ".partial")
    partial.write_text(html, encoding="utf-8")
    partial.replace(out)


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
        with open_customer_keys(settings) as keys:
            published = publish_lines(generate(spec), session.log, _report_invalid, max_line_bytes=limit,
                                      sealer=Sealer(keys))
        print(f"{_publish_summary(published)} in {time.perf_counter() - started:.1f}s", file=sys.stderr)
        progress = engine_commands.CommitProgress(session, "demo") if sys.stderr.isatty() else None
        report = session.run_once(progress)
        if progress is not None:
            progress.finish()
        print(engine_commands.process_summary(report))
        try:
            engine_commands.print_fit(session.fit_value_models())
        except ModelNotFitted as error:
            print(f"demo: no value model fit: {error}", file=sys.stderr)
        session.publish_partner_snapshots()
    for title, query in _DEMO_QUERIES:
        print(f"\n{title}")
        result = run_query(settings.views_path, query)
        write_rows(sys.stdout, result.columns, result.rows, "table")
    report_path = settings.home / "report.html"
    _write_report(settings.views_path, report_path, None, None)
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


def console() -> None:
    """The `lifecycle` program: `main`, then its exit status."""
    status = main()
    if status == 130:
        # Interrupted part-way, a library's half-made objects complain as they are
        # collected ("Exception ignored in ..."); the line printed said all.
        sys.unraisablehook = lambda unraisable: None
    sys.exit(status)


if __name__ == "__main__":
    console()
