"""Ctrl-C in the middle of a long command: a one-line word of what was kept and what to
rerun, nothing half-built left behind, and the rerun completes."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from consumers.settings import Settings
from lifecycle.population import PopulationSpec, generate
from tests.cli import ROOT, lifecycle, lifecycle_command


def _interrupt_when(command: list[str], ready, timeout: float = 120) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    """Run `command`, send SIGINT once `ready()` holds; its exit status and stderr."""
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    return process.returncode, err


def _generations(home: Path) -> list[str]:
    return sorted(path.name for path in home.glob("derived-*"))


def test_an_interrupted_replay_leaves_nothing_half_built_and_says_to_rerun(tmp_path):
    settings = Settings(home=tmp_path / "home")
    source = tmp_path / "population.jsonl"
    source.write_bytes(b"\n".join(generate(PopulationSpec(customers=3_000, seed=8, days=365))) + b"\n")
    assert lifecycle(settings, "publish", str(source)) == 0
    assert _generations(settings.home) == []
    status, err = _interrupt_when(lifecycle_command(settings, "replay", "--workers", "2"),
                                  lambda: bool(_generations(settings.home)))
    assert status == 130, err
    assert err.strip().splitlines()[-1] == ("lifecycle replay: interrupted; the generation in use is unchanged and "
                                            "the half-built one was removed: run `lifecycle replay` again")
    assert _generations(settings.home) == [], "nothing half-built is left"
    assert lifecycle(settings, "replay", "--workers", "1") == 0
    assert len(_generations(settings.home)) == 1


def test_an_interrupted_demo_keeps_what_it_did_and_a_rerun_goes_on(tmp_path):
    settings = Settings(home=tmp_path / "home")
    log = settings.home / "customer-events.sqlite"
    demo = ["demo", "--customers", "1500", "--days", "200"]
    # Once it has made its generation and its log (in that order: a Ctrl-C between the
    # two, under a loaded machine, leaves no log to keep).
    status, err = _interrupt_when(lifecycle_command(settings, *demo),
                                  lambda: bool(_generations(settings.home)) and log.exists())
    assert status == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("lifecycle demo: interrupted; what was published and processed is kept: run the demo "
                           "again (`make demo`)"), last
    assert log.exists()
    assert lifecycle(settings, *demo) == 0, "the rerun skips what was published and completes"
