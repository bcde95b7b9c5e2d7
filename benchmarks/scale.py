"""Benchmark: the engine at scale, on the embedded log - `lifecycle replay` and live
`lifecycle process` over the same seeded population, with the peak memory of all their
processes.

- publish: `lifecycle publish` of the population file into a home kept under
  `--out-dir` and reused by later runs with the same spec (publishing 10 M events takes
  minutes; the home's log is checked to hold every line);
- replay: `lifecycle replay --workers N` from that log into a new generation;
- live: `lifecycle process --once -v` from an empty generation over the same log, one
  batch at a time as a live engine works; its rate is given over the first and the last
  tenth of the records, to show whether it holds as the population grows. Its closing
  clock is dated `--clock-at` (by default 340 days after the population's last day, as
  the recorded runs had it), not at the wall clock: the clocks a run appends stay on the
  home's log, and a later run then takes the very same records.

Each command runs as its own process; the peak RSS is that of the whole process tree
(the replay's workers included), sampled every 0.2 s from /proc. Progress goes to stderr.

    .venv/bin/python benchmarks/scale.py [--customers N] [--days D] [--workers W] [--skip-live | --skip-replay]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from derive import population_file  # noqa: E402
from lifecycle.population import PopulationSpec  # noqa: E402

LIFECYCLE = [sys.executable, "-m", "consumers.cli"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--state-cache", type=int, default=100_000)
    parser.add_argument("--skip-live", action="store_true", help="measure the replay only")
    parser.add_argument("--skip-replay", action="store_true", help="measure live processing only")
    parser.add_argument("--checkpoint-batches", default="10",
                        help="live runs, one for each of these comma-separated `--checkpoint-batches` (1: the "
                        "projections and states written every batch, as before checkpoints)")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "out")
    parser.add_argument("--clock-at", type=datetime.fromisoformat, default=None,
                        help="the live run's closing clock (default: 340 days after the population's last day)")
    args = parser.parse_args()
    if args.clock_at is None:
        args.clock_at = PopulationSpec().start + timedelta(days=args.days + 340)
    return args


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def tree_rss(root: int) -> int:
    """Resident bytes of `root` and all its descendants."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as stat:
                    parents[int(entry)] = int(stat.read().rsplit(b")", 1)[1].split()[1])
            except OSError:
                continue
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    total = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/status") as status:
                total += next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) * 1024
        except (OSError, StopIteration):
            continue
    return total


def run(command: list[str], on_line=None) -> tuple[float, int, str]:  # type: ignore[no-untyped-def]
    """Run `command`; (wall seconds, peak RSS of its process tree, its stderr)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    peak = [0]

    def sample() -> None:
        while process.poll() is None:
            peak[0] = max(peak[0], tree_rss(process.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    lines = []
    assert process.stderr is not None
    for line in process.stderr:
        lines.append(line)
        if on_line is not None:
            on_line(line, time.perf_counter() - started)
    process.wait()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{''.join(lines[-20:])}")
    return time.perf_counter() - started, peak[0], "".join(lines)


def published_home(args: argparse.Namespace, path: Path, lines: int) -> tuple[Path, float | None]:
    home = args.out_dir / f"home-scale-c{args.customers}-s{args.seed}-d{args.days}"
    marker = home / "published"
    if marker.exists() and marker.read_text() == str(lines):
        return home, None
    shutil.rmtree(home, ignore_errors=True)
    say(f"publishing {lines:,} events into {home} ...")
    seconds, _, _ = run([*LIFECYCLE, "publish", "--allow-future", str(path), "--home", str(home)])
    marker.write_text(str(lines))
    return home, seconds


def forget_derived(home: Path) -> None:
    for path in home.glob("derived-*"):
        shutil.rmtree(path)
    (home / "current").unlink(missing_ok=True)


def replay(args: argparse.Namespace, home: Path, lines: int) -> dict:
    forget_derived(home)
    say(f"replaying with {args.workers} workers ...")
    seconds, peak, _ = run([*LIFECYCLE, "replay", "--workers", str(args.workers), "--home", str(home)])
    return {"seconds": seconds, "rate": lines / seconds, "rss": peak}


def live(args: argparse.Namespace, home: Path, lines: int, checkpoint_batches: str) -> dict:
    forget_derived(home)
    say(f"processing live, batch by batch, a checkpoint every {checkpoint_batches} batches ...")
    commits: list[tuple[float, int]] = []

    def on_line(line: str, at: float) -> None:
        if line.startswith("committed "):
            done = (commits[-1][1] if commits else 0) + int(line.split()[1])
            commits.append((at, done))

    command = [*LIFECYCLE, "process", "--once", "-v", "--state-cache", str(args.state_cache), "--home", str(home),
               "--checkpoint-batches", checkpoint_batches, "--clock-at", args.clock_at.isoformat()]
    seconds, peak, _ = run(command, on_line)
    return {"seconds": seconds, "rate": lines / seconds, "rss": peak,
            "first_tenth": _rate(commits, 0.0, 0.1), "last_tenth": _rate(commits, 0.9, 1.0)}


def _rate(commits: list[tuple[float, int]], start: float, stop: float) -> float:
    """Records per second between the commits at `start` and `stop` of the records."""
    total = commits[-1][1]
    first = next(c for c in commits if c[1] >= total * start) if start else (0.0, 0)
    last = next(c for c in commits if c[1] >= total * stop)
    return (last[1] - first[1]) / max(last[0] - first[0], 1e-9)


def main() -> None:
    args = parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    path, lines, _ = population_file(args)
    home, publish_s = published_home(args, path, lines)
    rows = [] if args.skip_replay else [("replay", replay(args, home, lines))]
    if not args.skip_live:
        for every in args.checkpoint_batches.split(","):
            rows.append((f"live process, checkpoint every {every} batches", live(args, home, lines, every)))
    print(f"\n{args.customers:,} customers, {lines:,} events, {args.workers} workers"
          + (f"; published in {publish_s:.0f} s ({lines / publish_s:,.0f} events/s)" if publish_s else ""))
    print("| run | seconds | events/s | first tenth events/s | last tenth events/s | peak RSS, all processes |")
    print("|---|--:|--:|--:|--:|--:|")
    for name, row in rows:
        tenths = (f"{row['first_tenth']:,.0f} | {row['last_tenth']:,.0f}" if "first_tenth" in row else "— | —")
        print(f"| {name} | {row['seconds']:.1f} | **{row['rate']:,.0f}** | {tenths} | {row['rss'] / 2**20:,.0f} MiB |")


if __name__ == "__main__":
    main()
