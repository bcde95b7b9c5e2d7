"""Benchmark: where a core's time goes per event in live `lifecycle process --once`.

Samples the process with py-spy (100 samples/s, the Python stacks) while it derives a
seeded population from a fresh home, and sorts each sample of the processing into one
part by the innermost frame that names it: reading the log, decoding records, the
rules, making lifecycle ids (and, since schema version 2, their hash chain), the notes
of personal data, value movements and facts, reading states, writing the stores. The
compiled core (lifecycle.COMPILED) shows no frames of its own: its time counts to the
processor's frame that called it, as rules. `--checkout DIR` runs another checkout of the engine (a
`git worktree` of an older commit) with this environment, to compare before and after
in one sitting.

    .venv/bin/python benchmarks/split.py [--customers N] [--checkout DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from derive import population_file  # noqa: E402

RATE = 100
# (part, frame fragments): the innermost frame matching any fragment names the part.
PARTS = (
    ("ids", ("lifecycle_event_id", "record_hash", "chain.py")),
    ("decode", ("decode_event", "_segment ", "_numbered")),
    ("writes", ("_commit ", "checkpoint ", "write ", "write_many", "record ", "prepare ", "upsert", "customers_table",
                "encode_state", "put_many")),
    ("state reads", ("state_store.py", "decode_state")),
    ("notes", ("customer_facts.py", "value_movements.py", "profiles.py")),
    # The compiled core has no Python frames: its time is that of the frame calling it.
    ("rules", ("engine.py", "facts.py", "activity.py", "attitude.py", "stage.py", "loyalty.py", "value.py",
               "deadlines.py", "partition_time.py", "reasons.py", "_fold (", "_clock (", "_offer (")),
    ("read", ("read ", "_read_from", "drain", "select_notifications", "poll ")),
)


def part_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, fragments in PARTS:
            if any(fragment in frame for fragment in fragments):
                return name
    return "other"


def split(samples: Path) -> tuple[Counter[str], int]:
    parts: Counter[str] = Counter()
    for line in samples.read_text().splitlines():
        stack, count = line.rsplit(" ", 1)
        frames = stack.split(";")
        if any("run_once" in frame for frame in frames):
            parts[part_of(frames)] += int(count)
    return parts, sum(parts.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--checkout", type=Path, default=ROOT, help="the engine's source to run")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "out")
    args = parser.parse_args()
    path, lines, _ = population_file(args)
    home = Path(tempfile.mkdtemp(prefix="split-", dir=args.out_dir))
    try:
        command = [sys.executable, "-m", "consumers.cli"]
        subprocess.run([*command, "publish", "--allow-future", str(path), "--home", str(home)],
                       cwd=args.checkout, check=True, capture_output=True)
        samples = home / "samples.txt"
        started = time.perf_counter()
        subprocess.run([str(Path(sys.executable).parent / "py-spy"), "record", "--rate", str(RATE), "--format", "raw",
                        "--output", str(samples), "--", *command, "process", "--once", "--home", str(home)],
                       cwd=args.checkout, check=True, capture_output=True)
        seconds = time.perf_counter() - started
        parts, total = split(samples)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    # The samples inside `run_once` at 100 a second: the processing, without start-up.
    per_event = total / RATE / lines * 1e6
    print(f"{args.checkout}: {lines:,} events, {seconds:.1f} s under py-spy, {total / RATE:.1f} s processing "
          f"({per_event:.0f} µs an event)")
    print("| part | share | µs an event |")
    print("|---|--:|--:|")
    for name, count in parts.most_common():
        print(f"| {name} | {count / total:.0%} | {per_event * count / total:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
