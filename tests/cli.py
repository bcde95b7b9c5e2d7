"""Running the `lifecycle` command against a test's settings: in-process, or as a process to kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from consumers.cli import main
from consumers.settings import Settings

ROOT = Path(__file__).parent.parent


def _flags(settings: Settings) -> list[str]:
    flags = ["--home", str(settings.home)]
    if settings.kafka:
        flags += ["--kafka", settings.kafka]
    if settings.roles:
        flags += ["--roles", str(settings.roles)]
    if settings.key_store:
        flags += ["--key-store", settings.key_store]
    return flags


def lifecycle(settings: Settings, *args: str) -> int:
    """`lifecycle ARGS --home ... [--kafka ...] [--roles ...] [--key-store ...]`, returning the exit status."""
    return main([*args, *_flags(settings)])


def sql_rows(settings: Settings, capsys, sql: str) -> list[tuple]:  # type: ignore[no-untyped-def, type-arg]
    """`lifecycle sql SQL --format json`, as rows of values."""
    capsys.readouterr()
    assert lifecycle(settings, "sql", sql, "--format", "json") == 0
    return [tuple(row.values()) for row in json.loads(capsys.readouterr().out)]


def lifecycle_command(settings: Settings, *args: str) -> list[str]:
    """The argv of `lifecycle ARGS` for a subprocess, with the test's settings."""
    return [sys.executable, "-m", "consumers.cli", *args, *_flags(settings)]


def kill_processor_after_commits(settings: Settings, batch_size: int, commits: int = 3, *flags: str) -> None:
    """Start `lifecycle process --once FLAGS` with small batches; SIGKILL it after `commits` commits."""
    process = subprocess.Popen(
        lifecycle_command(settings, "process", "--once", "--no-clock", "--verbose", "--batch-size", str(batch_size),
                          *flags),
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    seen = 0
    assert process.stderr is not None
    for line in process.stderr:
        seen += line.startswith("committed ")
        if seen == commits:
            os.kill(process.pid, signal.SIGKILL)
            break
    assert process.wait() == -signal.SIGKILL, "the processor finished before it was killed"
