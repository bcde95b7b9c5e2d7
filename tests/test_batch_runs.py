"""Time in batch runs: a nightly `lifecycle process --once` ages customers on time, with no
clock written by hand, and they decline exactly as a live run with hourly clocks would
(lifecycle/engine.py: a change time alone brings is dated at its threshold, whichever
clock reveals it); a replay of the nightly log says the same."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from consumers.settings import Settings
from lifecycle.population import PopulationSpec, generate_events
from schemas import Clock, encode_event
from tests.cli import lifecycle

DAYS = 75
SPEC = PopulationSpec(customers=150, seed=41, days=DAYS, clock_every_days=0)
START = SPEC.start
TRANSITIONS = (
    "SELECT event_id, customer_id, sequence, dimension, from_value, to_value, rule, occurred_at, caused_by, facts "
    "FROM lifecycle_transitions ORDER BY customer_id, sequence"
)
CUSTOMERS = "SELECT * EXCLUDE (chain_head) FROM customers ORDER BY customer_id"


def _query(settings: Settings, capsys, sql: str) -> list[dict]:
    capsys.readouterr()
    assert lifecycle(settings, "sql", sql, "--format", "json") == 0
    return json.loads(capsys.readouterr().out)


def _write(path: Path, events) -> Path:  # type: ignore[no-untyped-def]
    path.write_bytes(b"".join(encode_event(event) + b"\n" for event in events))
    return path


def _days() -> dict[int, list]:
    by_day = defaultdict(list)
    for event in generate_events(SPEC):
        by_day[(event.occurred_at - START) // timedelta(days=1)].append(event)
    return by_day


def test_a_nightly_batch_declines_customers_as_a_live_run_would(tmp_path, capsys):
    by_day = _days()
    nightly = Settings(home=tmp_path / "nightly")
    for day in range(DAYS):
        assert lifecycle(nightly, "publish", str(_write(tmp_path / f"day-{day}.jsonl", by_day[day]))) == 0
        midnight = (START + timedelta(days=day + 1)).isoformat()
        assert lifecycle(nightly, "process", "--once", "--clock-at", midnight) == 0
        assert "appended 1 clock event" in capsys.readouterr().err
    # Live: the same events with a clock every hour in between, as `process` appends them.
    hourly = [Clock(event_id=_clock_id(hour), occurred_at=START + timedelta(hours=hour), source="clock")
              for hour in range(1, DAYS * 24 + 1)]
    events = [event for day in range(DAYS) for event in by_day[day]]
    live_log = sorted([*events, *hourly], key=lambda e: (e.occurred_at, type(e) is not Clock))
    live = Settings(home=tmp_path / "live")
    assert lifecycle(live, "publish", str(_write(tmp_path / "live.jsonl", live_log))) == 0
    assert lifecycle(live, "process", "--once", "--no-clock") == 0

    declines = _query(nightly, capsys, "SELECT count(*) AS n FROM lifecycle_transitions WHERE caused_by = []")
    assert declines[0]["n"] > 50, "the history should show customers declining with time alone"
    assert _query(nightly, capsys, TRANSITIONS) == _query(live, capsys, TRANSITIONS)
    assert _query(nightly, capsys, CUSTOMERS) == _query(live, capsys, CUSTOMERS)
    assert lifecycle(nightly, "verify", "--workers", "1") == 0


def _clock_id(hour: int):  # type: ignore[no-untyped-def]
    import uuid

    return uuid.uuid5(uuid.UUID("6a1b0c9d-8e7f-4a5b-9c3d-2e1f0a9b8c7d"), f"hour/{hour}")


def test_a_batch_run_ages_a_customer_whose_last_purchase_was_long_ago(tmp_path, capsys):
    """The reported case: a purchase 300 days before the run, and no clock: churned? No,
    dormant by the fixed thresholds (180 days), dated where the threshold was reached."""
    settings = Settings(home=tmp_path / "home")
    run_at = datetime(2026, 11, 1, tzinfo=UTC)
    bought = run_at - timedelta(days=300)
    line = {"type": "purchase", "event_id": "7e0c1f2a-0000-4000-8000-000000000001", "customer_id": "c1",
            "occurred_at": bought.isoformat(), "source": "pos", "order_id": "o1", "amount_minor": 1999,
            "currency": "EUR"}
    (tmp_path / "one.jsonl").write_text(json.dumps(line) + "\n")
    assert lifecycle(settings, "publish", str(tmp_path / "one.jsonl")) == 0
    assert lifecycle(settings, "process", "--once", "--clock-at", run_at.isoformat()) == 0
    assert "clock events up to 2026-11-01T00:00:00+00:00" in capsys.readouterr().err
    (row,) = _query(settings, capsys, "SELECT activity, as_of FROM customers")
    assert row == {"activity": "dormant", "as_of": "2026-11-01T00:00:00+00:00"}
    moves = _query(settings, capsys, "SELECT to_value, occurred_at FROM lifecycle_transitions "
                                     "WHERE dimension = 'activity' ORDER BY sequence")
    assert [m["to_value"] for m in moves] == ["drowsy", "half_asleep", "dormant"]
    assert moves[-1]["occurred_at"] == (bought + timedelta(days=180)).isoformat()
    # Without the batch clock, time moves only with the log: nobody ages.
    assert lifecycle(Settings(home=tmp_path / "other"), "publish", str(tmp_path / "one.jsonl")) == 0
    assert lifecycle(Settings(home=tmp_path / "other"), "process", "--once", "--no-clock") == 0
    assert _query(Settings(home=tmp_path / "other"), capsys, "SELECT activity FROM customers") == [
        {"activity": "active"}]


def test_a_clock_too_far_ahead_of_this_machine_is_refused_unless_asked(tmp_path, capsys):
    settings = Settings(home=tmp_path / "home")
    far = (datetime.now(UTC) + timedelta(days=40)).isoformat()
    assert lifecycle(settings, "clock", "--at", far) == 2
    assert "more than a day ahead of this machine's clock" in capsys.readouterr().err
    assert lifecycle(settings, "process", "--once", "--clock-at", far) == 2


def _on_a_terminal(command: list[str]) -> list[str]:
    """What `command` writes to its stderr when that is a terminal, line by line
    (a rewritten line counts each time it is drawn)."""
    import os
    import pty
    import subprocess

    from tests.cli import ROOT

    main, terminal = pty.openpty()
    shown = b""
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=terminal) as process:
        os.close(terminal)
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            shown += chunk
    os.close(main)
    assert process.returncode in (0, 1), shown
    return shown.decode().replace("\r", "\n").splitlines()


def test_a_batch_run_shows_its_progress_on_a_terminal_only(tmp_path):
    import subprocess

    from lifecycle.population import PopulationSpec, generate
    from tests.cli import ROOT, lifecycle, lifecycle_command

    source = tmp_path / "population.jsonl"
    source.write_bytes(b"\n".join(generate(PopulationSpec(customers=300, seed=2, days=200))) + b"\n")
    settings, watched = Settings(home=tmp_path / "quiet"), Settings(home=tmp_path / "watched")
    assert lifecycle(settings, "publish", str(source)) == 0
    published = _on_a_terminal(lifecycle_command(watched, "publish", str(source)))
    size = source.stat().st_size
    assert any(line.startswith(f"publish: read {size:,} of {size:,} bytes") for line in published), published
    quiet = subprocess.run(lifecycle_command(settings, "process", "--once", "--no-clock"), cwd=ROOT,
                           capture_output=True, text=True)
    assert quiet.returncode == 0 and "position" not in quiet.stderr, "quiet when not on a terminal"
    lines = _on_a_terminal(lifecycle_command(watched, "process", "--once", "--no-clock", "--batch-size", "500"))
    assert any(line.startswith("process --once: position ") and "records committed)" in line for line in lines), lines
    lines = _on_a_terminal(lifecycle_command(watched, "fit-value-model"))
    assert any(line.startswith("fit-value-model: fitting the models to the purchases") for line in lines), lines
    lines = _on_a_terminal(lifecycle_command(watched, "export", "--parquet", str(tmp_path / "parquet")))
    assert any(line.startswith("export: written ") and " tables" in line for line in lines), lines
    lines = _on_a_terminal(lifecycle_command(watched, "clock", "--at", "2025-12-01T00:00:00Z"))
    assert any(line.startswith("clock: position ") for line in lines), lines
    lines = _on_a_terminal(lifecycle_command(watched, "report", "--out", str(tmp_path / "report.html")))
    assert any(line.startswith("report: section 14 of 14") for line in lines), lines
    lines = _on_a_terminal(lifecycle_command(watched, "rotate-master-key", str(tmp_path / "new.key")))
    assert any(line.startswith("rotate-master-key: re-wrapped ") and " keys" in line for line in lines), lines
