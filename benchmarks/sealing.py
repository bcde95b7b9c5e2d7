"""Benchmark: what sealing personal data costs publishing, and the engine.

One seeded population (`lifecycle.population`), published into two fresh embedded homes
in the same run: once as before sealing (the baseline, no sealer) and once sealed
(consumers/privacy/personal_data.py, keys made and stored as a first publish does), then each
home derived with one `process --once --no-clock`. Rates are events per wall second of
`publish_lines` and of processing; each pair alternates over `--rounds` and the median
is kept. Sealing seals one value per personal field (profile updates, contact topics,
resolutions); the engine reads sealed events (larger records) but never opens them.

    .venv/bin/python benchmarks/sealing.py [--customers N] [--rounds R]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from consumers.privacy.customer_keys import open_customer_keys
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
        if sealed:
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    lines = list(generate(PopulationSpec(customers=args.customers, seed=7, days=365)))
    values = sum(len(personal(decode_event(line))) for line in lines)
    timings: dict[str, list[float]] = {"publish plain": [], "publish sealed": [], "process plain": [],
                                       "process sealed": []}
    events = 0
    for _ in range(args.rounds):
        for sealed in (False, True):
            root = Path(tempfile.mkdtemp(prefix="sealing-"))
            try:
                settings = Settings(home=root / "home")
                kind = "sealed" if sealed else "plain"
                timings[f"publish {kind}"].append(_publish(settings, lines, sealed))
                seconds, events = _process(settings)
                timings[f"process {kind}"].append(seconds)
            finally:
                shutil.rmtree(root)
    print(f"{len(lines):,} events of {args.customers:,} customers, {values:,} personal values sealed; "
          f"median of {args.rounds} rounds")
    for name, seconds in timings.items():
        count = len(lines) if name.startswith("publish") else events
        print(f"{name:15} {count / statistics.median(seconds):>10,.0f} events/s")
    for step in ("publish", "process"):
        cost = statistics.median(timings[f"{step} sealed"]) / statistics.median(timings[f"{step} plain"]) - 1
        print(f"{step}: sealed costs {100 * cost:+.0f}% of wall time")


if __name__ == "__main__":
    main()
