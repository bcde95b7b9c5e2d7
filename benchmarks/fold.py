"""Benchmark: the pure fold, compiled core against its Python source, in the same run.

A seeded population (`lifecycle.population`, no I/O: decoded once, held in memory) is
grouped by customer, its clocks shared as one partition's, and each customer folded
through `fold_customer` (lifecycle/customer_fold.py), as a replay worker does (the
cyclic garbage collector paused, consumers/processing/gc_pause.py). Each
variant runs in a process of its own, alternating, `--rounds` times; CPU time of the
fold alone, per event, median. The interpreted variant runs a copy of `lifecycle/`
without its built modules (PYTHONPATH first), so both run the very same source; with
`--baseline REV`, a third variant runs `lifecycle/` and `schemas/` as they were at
commit REV, interpreted (the engine before a change, in the same run).

    .venv/bin/python benchmarks/fold.py [--customers N] [--rounds R] [--baseline REV]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def fold(customers: int) -> dict[str, object]:
    """Fold the population once; CPU seconds of the fold, events, lifecycle events."""
    import lifecycle.engine
    from lifecycle.customer_fold import PartitionClocks, fold_customer, take_order
    from lifecycle.engine import LifecycleEngine
    from consumers.policy_file import load_policy
    from consumers.processing.gc_pause import gc_paused
    from lifecycle.population import PopulationSpec, generate
    from lifecycle.state import epoch_seconds
    from schemas import Clock, decode_event

    events = [decode_event(line) for line in generate(PopulationSpec(customers=customers, seed=7, days=365))]
    by_customer: dict[str, list] = {}  # type: ignore[type-arg]
    clocks = []
    for seq, event in enumerate(events):
        at = epoch_seconds(event.occurred_at)
        if type(event) is Clock:
            clocks.append((take_order(seq), at, event))
        else:
            by_customer.setdefault(event.customer_id, []).append((take_order(seq), event, at))  # type: ignore[union-attr]
    partition = PartitionClocks(clocks)
    engine = LifecycleEngine(load_policy(None))
    with gc_paused():  # as a replay worker folds a bucket
        started = time.process_time()
        derived = sum(len(fold_customer(engine, c, mine, partition).derived) for c, mine in by_customer.items())
        seconds = time.process_time() - started
    return {"seconds": seconds, "events": len(events) - len(clocks), "derived": derived,
            "core": lifecycle.engine.__file__}


def _variant(customers: int, path: Path | None) -> dict[str, object]:
    environment = dict(os.environ)
    if path is not None:
        environment["PYTHONPATH"] = str(path)
    done = subprocess.run([sys.executable, __file__, "--one", str(customers)], capture_output=True, text=True,
                          env=environment, check=True)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", metavar="REV", help="also run the interpreted engine of this commit")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        sys.path.append(str(ROOT))
        print(json.dumps(fold(args.one)))
        return
    source = Path(tempfile.mkdtemp(prefix="fold-source-"))
    shutil.copytree(ROOT / "lifecycle", source / "lifecycle", ignore=shutil.ignore_patterns("*.so", "*.c", "__pycache__"))
    variants: list[tuple[str, Path | None]] = [("interpreted", source), ("compiled", None)]
    if args.baseline:
        variants.insert(0, (f"interpreted {args.baseline}", _checkout(args.baseline, source.parent)))
    runs: dict[str, list[dict[str, object]]] = {name: [] for name, _ in variants}
    try:
        for round_ in range(args.rounds):
            for name, path in variants:
                runs[name].append(_variant(args.customers, path))
                print(f"round {round_ + 1} {name}: {runs[name][-1]['seconds']:.1f} s", file=sys.stderr)
    finally:
        for _, path in variants:
            if path is not None:
                shutil.rmtree(path)
    first = runs["interpreted"][0]
    assert all(done[0]["derived"] == first["derived"] for done in runs.values()), "the variants derived differently"
    print(f"{first['events']:,} events of {args.customers:,} customers, {first['derived']:,} lifecycle events; "
          f"CPU time of the fold, median of {args.rounds}")
    medians = {}
    for name, done in runs.items():
        medians[name] = statistics.median(float(run["seconds"]) for run in done)  # type: ignore[arg-type]
        print(f"{name:20} {1e6 * medians[name] / int(first['events']):6.2f} us an event   ({done[0]['core']})")
    for name in medians:
        if name != "compiled":
            print(f"compiled: {medians[name] / medians['compiled']:.2f}x the {name} fold")


def _checkout(revision: str, beside: Path) -> Path:
    """`lifecycle/` and `schemas/` as they were at `revision`, in a directory of their own."""
    target = Path(tempfile.mkdtemp(prefix="fold-baseline-", dir=beside))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "lifecycle", "schemas"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


if __name__ == "__main__":
    main()
