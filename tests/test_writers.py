"""Writers wait their turn on the embedded log: concurrent `publish` runs (and the
engine's own appends) serialise on it and never fail half-way for it; a failure that
does happen exits 3 with a summary of what was appended."""

from __future__ import annotations

import fcntl
import subprocess

import pytest

from consumers.logs import sqlite_event_log
from consumers.logs.event_log import CUSTOMER_EVENTS
from consumers.logs import open_event_log
from consumers import publisher
from consumers.publisher import PublishFailed, publish_lines
from consumers.settings import Settings
from lifecycle.population import PopulationSpec, generate
from tests.cli import ROOT, lifecycle, lifecycle_command

CHUNK = 1_000  # the publisher's appends, made small here


def _files(tmp_path, parts: int):  # type: ignore[no-untyped-def]
    lines = [line + b"\n" for line in generate(PopulationSpec(customers=1_500, seed=17, days=200,
                                                              clock_every_days=0))]
    paths = []
    for n in range(parts):
        path = tmp_path / f"part-{n}.jsonl"
        path.write_bytes(b"".join(lines[n::parts]))
        paths.append((path, len(lines[n::parts])))
    return paths


def test_concurrent_publishes_on_a_fresh_home_all_go_through(tmp_path, capsys):
    settings = Settings(home=tmp_path / "home")
    files = _files(tmp_path, 3)
    runs = [subprocess.Popen(lifecycle_command(settings, "publish", str(path)), cwd=ROOT, stderr=subprocess.PIPE,
                             text=True) for path, _ in files]
    outputs = [run.communicate(timeout=300)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs
    for (_, lines), err in zip(files, outputs):
        assert f"published {lines} events (0 already on the log" in err, err
    capsys.readouterr()
    assert lifecycle(settings, "tail", "customer-events") == 0
    assert len(capsys.readouterr().out.splitlines()) == sum(lines for _, lines in files)


def test_a_log_held_too_long_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    settings = Settings(home=tmp_path / "home")
    (path, _), = _files(tmp_path, 1)
    assert lifecycle(settings, "publish", str(path)) == 0
    monkeypatch.setattr(sqlite_event_log, "WRITER_WAIT", 0.3)
    with (settings.home / "customer-events.append.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        capsys.readouterr()
        assert lifecycle(settings, "publish", str(path)) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "another writer has held" in line and "try again when it is done" in line


def test_a_publish_failing_part_way_says_what_it_kept(tmp_path, monkeypatch):
    """The lock is taken by another writer after the first chunk: that chunk stays, the
    failure says how many were appended, and publishing again takes the rest."""
    settings = Settings(home=tmp_path / "home")
    (path, lines), = _files(tmp_path, 1)
    monkeypatch.setattr(sqlite_event_log, "WRITER_WAIT", 0.3)
    monkeypatch.setattr(publisher, "CHUNK", CHUNK)
    held = (settings.home / "customer-events.append.lock")
    settings.home.mkdir(parents=True)
    with open_event_log(settings, CUSTOMER_EVENTS) as log, held.open("a") as other:
        def lines_then_a_rival():  # type: ignore[no-untyped-def]
            for number, line in enumerate(path.read_bytes().splitlines()):
                if number == CHUNK + 1:
                    fcntl.flock(other, fcntl.LOCK_EX)
                yield line
        with pytest.raises(PublishFailed) as failed:
            publish_lines(lines_then_a_rival(), log, lambda n, reason: None)
    assert failed.value.report.appended == CHUNK and "another writer has held" in str(failed.value)
    with open_event_log(settings, CUSTOMER_EVENTS) as log:
        again = publish_lines(path.read_bytes().splitlines(), log, lambda n, reason: None)
    assert (again.appended, again.duplicates) == (lines - CHUNK, CHUNK)


def test_the_engines_own_clock_waits_for_a_publish(tmp_path):
    """`lifecycle clock` appends while a `publish` writes: both finish."""
    settings = Settings(home=tmp_path / "home")
    (path, _), (other, _) = _files(tmp_path, 2)
    assert lifecycle(settings, "publish", str(path)) == 0
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    publishing = subprocess.Popen(lifecycle_command(settings, "publish", str(other)), cwd=ROOT,
                                  stderr=subprocess.PIPE, text=True)
    assert lifecycle(settings, "clock", "--at", "2025-09-01T00:00:00Z") == 0
    assert publishing.wait(timeout=300) == 0, publishing.stderr.read() if publishing.stderr else ""
