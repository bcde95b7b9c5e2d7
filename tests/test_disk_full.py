"""A disk that fills up: every writer stops with one line that says so and what was kept,
exits 3, and after space is freed the same command goes on to a whole result."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from consumers import home
from consumers.policy_file import load_policy
from consumers.replay import derive_parts
from consumers.settings import Settings
from consumers.logs.event_log import CUSTOMER_EVENTS
from consumers.logs.sqlite_event_log import SQLiteEventLog
from lifecycle.population import PopulationSpec, generate
from tests.small_disk import footprint, run_with_free_space

LIFECYCLE = [sys.executable, "-m", "consumers.cli"]
AMPLE = 200_000_000


def _events(path: Path, customers: int) -> Path:
    path.write_bytes(b"\n".join(generate(PopulationSpec(customers=customers, seed=3, days=300))) + b"\n")
    return path


def _run(home_dir: Path, free: int, *args: str):  # type: ignore[no-untyped-def]
    return run_with_free_space(home_dir, free, [*LIFECYCLE, *args, "--home", "{home}"])


def _on_log(home_dir: Path) -> int:
    with SQLiteEventLog(home=home_dir, name=CUSTOMER_EVENTS) as log:
        return sum(len(batch.values) for batch in log.read(lambda _: None))


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_publish_on_a_full_disk_keeps_whole_chunks_and_goes_on_once_there_is_space(tmp_path):
    events, home_dir = _events(tmp_path / "events.jsonl", 2_000), tmp_path / "home"
    lines = len(events.read_bytes().splitlines())

    done = _run(home_dir, 8_000_000, "publish", str(events))
    assert done.returncode == 3
    message = _one_line(done.stderr)
    assert message.startswith("lifecycle publish: the disk is full") and "free some space" in message
    kept = _on_log(home_dir)
    assert 0 < kept < lines and f"published {kept} events" in message, "whole chunks stay, and are told"

    done = _run(home_dir, AMPLE, "publish", str(events))
    assert done.returncode == 0, done.stderr
    assert f"published {lines - kept} events ({kept} already on the log" in done.stderr
    assert _on_log(home_dir) == lines


def test_process_on_a_full_disk_says_how_far_it_got_and_goes_on_from_there(tmp_path):
    events, home_dir = _events(tmp_path / "events.jsonl", 600), tmp_path / "home"
    assert _run(home_dir, AMPLE, "publish", str(events)).returncode == 0

    done = _run(home_dir, 2_000_000, "process", "--once", "--no-clock", "--batch-size", "500", "--checkpoint-batches",
                "1")
    assert done.returncode == 3
    message = _one_line(done.stderr)
    assert message.startswith("lifecycle process: the disk is full")
    assert "derived up to position" in message and "run `lifecycle process` again" in message

    done = _run(home_dir, AMPLE, "process", "--once", "--no-clock")
    assert done.returncode == 0, done.stderr
    done = _run(home_dir, AMPLE, "verify", "--workers", "1")
    assert done.returncode == 0 and "all match" in done.stderr, done.stderr


def _parts_footprint(home_dir: Path, scratch: Path) -> int:
    """What a replay's parts of this home take, the scans' buckets included."""
    scratch.mkdir()
    derive_parts(Settings(home=home_dir), load_policy(None), 1, scratch)
    return footprint(scratch)


@pytest.mark.parametrize("fills", ["while folding", "while writing the stores"])
def test_replay_on_a_full_disk_leaves_the_generation_in_use_and_no_half_built_one(tmp_path, fills):
    events, home_dir = _events(tmp_path / "events.jsonl", 600), tmp_path / "home"
    assert _run(home_dir, AMPLE, "publish", str(events)).returncode == 0
    assert _run(home_dir, AMPLE, "process", "--once", "--no-clock").returncode == 0
    in_use = home.current(home_dir)
    assert in_use is not None

    # Writing the stores: the parts fit, the new generation's stores (written side by
    # side, whichever writer meets the full disk first) do not.
    free = 3_000_000 if fills == "while folding" else (
        _parts_footprint(home_dir, tmp_path / "parts") + footprint(in_use) // 2)
    done = _run(home_dir, free, "replay", "--workers", "1")
    assert done.returncode == 3
    message = _one_line(done.stderr)
    assert message.startswith("lifecycle replay: the disk is full") and "half-built generation was removed" in message
    assert home.current(home_dir) == in_use
    assert sorted(p.name for p in home_dir.glob(f"{home.PREFIX}*")) == [in_use.name]

    done = _run(home_dir, AMPLE, "replay", "--workers", "1")
    assert done.returncode == 0, done.stderr
    done = _run(home_dir, AMPLE, "verify", "--workers", "1")
    assert done.returncode == 0 and "all match" in done.stderr, done.stderr
