"""Benchmark: what sealing personal data costs publishing, and the engine.

One seeded population (`lifecycle.population`), published into two fresh embedded homes
in the same run: once as before sealing (the baseline, no sealer) and once sealed
(consumers/privacy/personal_data.py, keys made and stored as a first publish does), then each
home derived with one `process --once --no-clock`. Rates are events per wall second of
`publish_lines` and of processing; each pair alternates over `--rounds` and the median
is kept. Sealing seals one value per personal field (profile updates, contact topics,
resolutions); the engine reads sealed events (larger records) but never opens them.
With `--shared-keys`, a third home seals with its keys in PostgreSQL (the key store
several publishing machines share; a throwaway server on loopback, as the tests start).

    .venv/bin/python benchmarks/sealing.py [--customers N] [--rounds R] [--shared-keys]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path

from consumers.privacy.key_store import open_customer_keys
from consumers.processing.engine_session import EngineSession
from consumers.logs.event_log import CUSTOMER_EVENTS
from consumers.logs import open_event_log
from consumers.privacy.personal_data import Sealer, personal
from consumers.publisher import publish_lines
from consumers.settings import Settings
from lifecycle.population import PopulationSpec, generate
from schemas import decode_event


def _publish(settings: Settings, lines: list[bytes], sealed: bool) -> float:
    started = time.perf_counter()
    with open_event_log(settings, CUSTOMER_EVENTS) as log:
        if sealed:  # with the key store the settings name
            with open_customer_keys(settings) as keys:
                publish_lines(lines, log, lambda n, why: None, sealer=Sealer(keys))
        else:
            publish_lines(lines, log, lambda n, why: None)
    return time.perf_counter() - started


def _process(settings: Settings) -> tuple[float, int]:
    with EngineSession(settings) as session:
        started = time.perf_counter()
        report = session.run_once()
        return time.perf_counter() - started, report.events


def _postgres() -> AbstractContextManager[object]:
    """A throwaway PostgreSQL server, as the tests start one (tests/postgres.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.postgres import PostgreSQLServer

    return PostgreSQLServer()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shared-keys", action="store_true", help="also seal with the keys in PostgreSQL")
    args = parser.parse_args()
    lines = list(generate(PopulationSpec(customers=args.customers, seed=7, days=365)))
    values = sum(len(personal(decode_event(line))) for line in lines)
    kinds = ["plain", "sealed", *(["sealed, keys in PostgreSQL"] if args.shared_keys else [])]
    timings: dict[str, list[float]] = {f"{step} {kind}": [] for step in ("publish", "process") for kind in kinds}
    events = 0
    with ExitStack() as stack:
        server = stack.enter_context(_postgres()) if args.shared_keys else None
        for _ in range(args.rounds):
            for kind in kinds:
                root = Path(tempfile.mkdtemp(prefix="sealing-"))
                try:
                    shared = server.database() if server is not None and "PostgreSQL" in kind else None
                    settings = Settings(home=root / "home", key_store=shared)
                    timings[f"publish {kind}"].append(_publish(settings, lines, kind != "plain"))
                    seconds, events = _process(settings)
                    timings[f"process {kind}"].append(seconds)
                finally:
                    shutil.rmtree(root)
    print(f"{len(lines):,} events of {args.customers:,} customers, {values:,} personal values sealed; "
          f"median of {args.rounds} rounds")
    for name, seconds in timings.items():
        count = len(lines) if name.startswith("publish") else events
        print(f"{name:35} {count / statistics.median(seconds):>10,.0f} events/s")
    for step in ("publish", "process"):
        for kind in kinds[1:]:
            cost = statistics.median(timings[f"{step} {kind}"]) / statistics.median(timings[f"{step} plain"]) - 1
            print(f"{step}: {kind} costs {100 * cost:+.0f}% of wall time")


if __name__ == "__main__":
    main()
