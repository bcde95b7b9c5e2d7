"""The commands that run the engine over the log: `process`, `clock` and `fit-value-model`,
and how what they did is told on stderr.

Time moves for customers nothing happens to only with clocks on the log. A live
`process` appends one every `--clock-every` seconds; a batch run (`process --once`, the
way a nightly job runs the engine) appends one dated now after catching up, so a
customer whose last purchase was 300 days ago is aged when the job runs, and a replay
of the log ages them the same way. `lifecycle clock` appends one by hand.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from functools import partial
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from consumers.commands.progress import Progress
from consumers.group.member import GroupMember, GroupSettings
from consumers.commands.dead_letter_listing import HINT as DEAD_LETTER_HINT
from consumers.processing.checkpoint import CheckpointPolicy
from consumers.processing.engine_metrics import EngineMetrics, both
from consumers.processing.engine_session import EngineSession, FitRun
from consumers.errors import ConfigurationError, LogUnavailable
from consumers.logs.event_log import RecordBatch
from consumers.processing.process_report import ProcessReport
from consumers.policy_file import load_policy
from consumers.settings import Settings
from consumers.commands.stopping import Stopping
from lifecycle.engine import LifecycleEngine
from lifecycle.value_model import ModelNotFitted

MAX_RETRY_WAIT = 30.0
"""The longest a live engine waits before trying an unreachable log again, in seconds."""
FUTURE_MARGIN = timedelta(days=1)
"""How far ahead of this machine's clock a record or clock is taken without being asked:
a day covers clocks set a little wrong and offsets written by hand."""


def process(args: argparse.Namespace, settings: Settings) -> int:
    if args.group is not None:
        return _group_member(args, settings)
    at = _clock_time(args.clock_at, args.allow_future)
    on_commit = _print_commit if args.verbose else None
    checkpoints = CheckpointPolicy(args.checkpoint_batches, args.checkpoint_seconds)
    with Stopping() as stopping, EngineSession(settings, args.batch_size, checkpoints) as session, \
            _serving(args.metrics_host, args.metrics_port) as metrics:
        if args.once:
            progress = CommitProgress(session, "process --once") if on_commit is None and sys.stderr.isatty() else None
            on_commit = both(on_commit or progress, metrics and metrics.batch_committed)
            report = session.run_once(on_commit, should_stop=stopping)
            if progress is not None:
                progress.finish()
            if args.clock and not stopping():
                report = report + _batch_clock(session, at, on_commit, stopping)
            if metrics is not None:
                metrics.run_done(report)
            session.publish_partner_snapshots()
            print_report(report)
            return 0
        live = _Live(session, args, both(on_commit, metrics and metrics.batch_committed), stopping, metrics)
        outage = _Outage(metrics)
        while not stopping():
            try:
                live.step()
            except LogUnavailable as error:
                stopping.wait(outage.wait(error))
                continue
            outage.over()
            stopping.wait(args.poll_interval)
        # Stopped at a batch boundary: what the batches since the last checkpoint did is whole.
        session.processor.checkpoint()
        return 0


def _group_member(args: argparse.Namespace, settings: Settings) -> int:
    """`process --group NAME`: a member of a consumer group on Kafka (consumers/group/)."""
    if settings.kafka is None:
        raise ConfigurationError("--group needs --kafka: the partitions of a consumer group are Kafka's to assign")
    if args.once:
        raise ConfigurationError("--group runs until stopped (SIGTERM or Ctrl-C): a member cannot tell when the "
                                 "group as a whole has caught up; drop --once, or drop --group for a batch run")
    checkpoints = CheckpointPolicy(args.checkpoint_batches, args.checkpoint_seconds)
    with Stopping() as stopping, _serving(args.metrics_host, args.metrics_port) as metrics:
        member = GroupMember(settings, GroupSettings(args.group, args.session_timeout, args.clock_every),
                             LifecycleEngine(load_policy(settings.policy)), args.batch_size, checkpoints, _say,
                             args.verbose, metrics)
        report = member.run(stopping)
    print_report(report)
    return 0


def _say(message: str) -> None:
    print(f"lifecycle process: {message}", file=sys.stderr, flush=True)


@contextmanager
def _serving(host: str, port: int | None) -> Iterator[EngineMetrics | None]:
    """The engine's metrics, served at `host`:`port` while it runs; None without a port."""
    if port is None:
        yield None
        return
    metrics = EngineMetrics()
    print(f"lifecycle process: metrics for Prometheus at {metrics.serve(host, port)}", file=sys.stderr, flush=True)
    try:
        yield metrics
    finally:
        metrics.close()


class _Live:
    """One pass of a live engine: what is new on the log, a fit when due, a snapshot when
    due, a clock when due."""

    def __init__(self, session: EngineSession, args: argparse.Namespace, on_commit, stopping,  # type: ignore[no-untyped-def]
                 metrics: EngineMetrics | None) -> None:
        self.session, self.args, self.on_commit, self.stopping = session, args, on_commit, stopping
        self.metrics = metrics
        self.snapshot = _Snapshots(session, args.snapshot_every)
        self.last_clock = time.monotonic()

    def step(self) -> None:
        if self.metrics is not None:
            self.metrics.run_started()
        report = self.session.run_once(self.on_commit, should_stop=self.stopping, checkpoint=False)
        if self.metrics is not None:
            self.metrics.run_done(report)
        if report.events:
            print_report(report)
        if self.stopping():
            return
        if report.events:
            _refit_when_due(self.session)
        self.snapshot.after(report)
        if self.args.clock_every and time.monotonic() - self.last_clock >= self.args.clock_every:
            self.session.tick()
            self.last_clock = time.monotonic()


class _Outage:
    """A live engine's view of an unreachable log: it waits and tries again, for as long
    as it runs, each wait twice the last (1 s to `MAX_RETRY_WAIT`), and says so."""

    def __init__(self, metrics: EngineMetrics | None) -> None:
        self.delay = 0.0
        self.since: float | None = None
        self.metrics = metrics

    def wait(self, error: Exception) -> float:
        """How long to wait before trying again, after telling what happened."""
        if self.metrics is not None:
            self.metrics.log_reachable.set(0)
        self.since = time.monotonic() if self.since is None else self.since
        self.delay = min(max(self.delay * 2, 1.0), MAX_RETRY_WAIT)
        down = time.monotonic() - self.since
        print(f"lifecycle process: the log is unreachable ({error}); trying again in {self.delay:.0f} s "
              f"(unreachable for {down:.0f} s; nothing is lost: processing goes on from the last commit)",
              file=sys.stderr, flush=True)
        return self.delay

    def over(self) -> None:
        if self.metrics is not None:
            self.metrics.log_reachable.set(1)
        if self.since is not None:
            print(f"lifecycle process: the log is reachable again after {time.monotonic() - self.since:.0f} s",
                  file=sys.stderr, flush=True)
        self.delay, self.since = 0.0, None


def _batch_clock(session: EngineSession, at: datetime | None, on_commit, stopping) -> ProcessReport:  # type: ignore[no-untyped-def]
    """A batch run's clock, once caught up: dated `at` (now if None), processed at once."""
    at = at or datetime.now(UTC)
    appended = session.tick(at)
    if not appended:
        return ProcessReport(0, 0, 0, 0, 0.0)
    print(f"{_appended(appended, at)}: customers age to then (--no-clock: none)", file=sys.stderr)
    return session.run_once(on_commit, should_stop=stopping)


def clock(args: argparse.Namespace, settings: Settings) -> int:
    at = _clock_time(args.at, args.allow_future) or datetime.now(UTC)
    with EngineSession(settings) as session:
        progress = CommitProgress(session, "clock") if sys.stderr.isatty() else None
        caught_up = session.run_once(progress)
        appended = session.tick(at, source="lifecycle-clock")
        report = caught_up + session.run_once(progress) if appended else caught_up
        if progress is not None:
            progress.finish()
        session.publish_partner_snapshots()
    if appended:
        print(_appended(appended, at), file=sys.stderr)
    else:
        print(f"no clock appended: the log's clocks have reached {at.replace(microsecond=0).isoformat()} already, "
              "or no customer event has been processed yet (a clock would move no one)", file=sys.stderr)
    print_report(report)
    return 0


def _appended(clocks: int, at: datetime) -> str:
    return f"appended {clocks} clock event{'s' if clocks > 1 else ''} up to {at.replace(microsecond=0).isoformat()}"


def _clock_time(at: datetime | None, allow_future: bool) -> datetime | None:
    if at is not None and not allow_future and at > datetime.now(UTC) + FUTURE_MARGIN:
        msg = (f"{at.isoformat()} is more than a day ahead of this machine's clock: every customer would age "
               "ahead of time; pass --allow-future if that is what you want")
        raise ConfigurationError(msg)
    return at


def fit_value_model(args: argparse.Namespace, settings: Settings) -> int:
    with EngineSession(settings) as session:
        progress = CommitProgress(session, "fit-value-model") if sys.stderr.isatty() else None
        fitting = None if progress is None else partial(progress.progress.step, "fitting the models to the purchases")
        fitted = session.fit_value_models(args.as_of, progress, fitting)
        if progress is not None:
            progress.finish()
        print_fit(fitted)
        session.publish_partner_snapshots()
    return 0


def _refit_when_due(session: EngineSession) -> None:
    """Fit the value models when the policy's schedule says so; a fit the data cannot
    support yet is reported, and tried again once as much log time has passed."""
    if not session.value_fit_due():
        return
    try:
        print_fit(session.fit_value_models())
    except ModelNotFitted as error:
        print(f"lifecycle process: no value model fit yet: {error}", file=sys.stderr)


def print_fit(fitted: FitRun) -> None:
    fit, appended, processed = fitted
    if processed.events:
        print(f"{process_summary(processed)} (caught up with the log for the fit, and the fit itself)",
              file=sys.stderr)
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
        self.stale = self.stale or report.checkpoints > 0
        if not self.every or not self.stale:
            return
        now = time.monotonic()
        if self.published_at is None or now - self.published_at >= self.every:
            self.session.publish_snapshots()
            self.published_at, self.stale = now, False


class CommitProgress:
    """On a terminal, a catch-up's progress after each commit: the records committed, and
    of the log's positions as far as the log can tell its end (the embedded log)."""

    def __init__(self, session: EngineSession, command: str) -> None:
        self.progress = Progress(command)
        self.ends = session.log.end_positions()
        self.reached = dict(session.processor.positions)
        self.records = 0
        self.shown = False

    def __call__(self, batch: RecordBatch) -> None:
        self.records += len(batch.values)
        self.reached[batch.tracking.application_name] = batch.tracking.notification_id
        if self.ends is not None:
            at, end = sum(self.reached.get(name, 0) for name in self.ends), sum(self.ends.values())
            self.progress("position", at, end, unit=f"({self.records:,} records committed)")
        else:
            self.progress("committed", self.records, None)
        self.shown = True

    def finish(self) -> None:
        if self.shown or self.progress.stepped:
            self.progress.done()


def _print_commit(batch: RecordBatch) -> None:
    tracking = batch.tracking
    end = "" if batch.end is None else f" of {batch.end}"
    print(
        f"committed {len(batch.values)} records of {tracking.application_name} "
        f"up to position {tracking.notification_id}{end}",
        file=sys.stderr,
        flush=True,
    )


def print_report(report: ProcessReport) -> None:
    print(process_summary(report), file=sys.stderr)
    if report.dead_letters:
        print(DEAD_LETTER_HINT, file=sys.stderr)
    if report.waiting:
        print(f"{report.waiting} records wait for time to confirm them (dated far ahead of the rest of their "
              "partition): see `lifecycle dead-letters`; a clock up to their time takes them "
              "(`lifecycle clock --at TIME`)", file=sys.stderr)
    if report.unpriced:
        currencies = ", ".join(f"{code} {count}" for code, count in sorted(report.unpriced.items()))
        print(f"{sum(report.unpriced.values())} purchases in currencies the policy has no rate for "
              f"({currencies}) count no value: add them under [value.rates_to_base]", file=sys.stderr)


def process_summary(report: ProcessReport) -> str:
    return (
        f"processed {report.events} events in {report.batches} batches "
        f"({report.dead_letters} dead letters, {report.lifecycle_events} lifecycle events), "
        f"{report.events_per_second:,.0f} events/s"
    )
