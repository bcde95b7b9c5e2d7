"""`lifecycle tail` for subscribers: one customer's records, some types, and following
the log as it grows, on both logs."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading

from lifecycle.population import PopulationSpec, generate
from tests.cli import ROOT, lifecycle, lifecycle_command


def _tail(settings, capsys, *args: str) -> list[dict]:  # type: ignore[no-untyped-def]
    capsys.readouterr()
    assert lifecycle(settings, "tail", *args) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def _published(settings, tmp_path, customers: int = 30, seed: int = 3) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / f"population-{seed}.jsonl"
    source.write_bytes(b"\n".join(generate(PopulationSpec(customers=customers, seed=seed, days=90))) + b"\n")
    assert lifecycle(settings, "publish", str(source)) == 0


def test_tail_keeps_one_customers_records_or_some_types(settings, tmp_path, capsys):
    _published(settings, tmp_path)
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    everything = _tail(settings, capsys)
    who = everything[0]["customer_id"]
    assert _tail(settings, capsys, "--customer", who) == [e for e in everything if e["customer_id"] == who]
    kinds = {"stage_changed", "activity_changed"}
    assert _tail(settings, capsys, "--type", "stage_changed", "--type", "activity_changed") == [
        e for e in everything if e["type"] in kinds]
    purchases = _tail(settings, capsys, "customer-events", "--type", "purchase", "--customer", who)
    assert purchases and all(e["type"] == "purchase" and e["customer_id"] == who for e in purchases)
    assert _tail(settings, capsys, "--customer", "nobody") == []


def test_tail_follows_the_log_until_ctrl_c(settings, tmp_path, capsys):
    _published(settings, tmp_path, customers=5, seed=1)
    before = len(_tail(settings, capsys, "customer-events"))
    follower = subprocess.Popen(lifecycle_command(settings, "tail", "customer-events", "--follow"), cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in follower.stdout], daemon=True).start()  # type: ignore[union-attr]
    try:
        shown = [lines.get(timeout=60) for _ in range(before)]
        _published(settings, tmp_path, customers=5, seed=2)
        after = len(_tail(settings, capsys, "customer-events"))
        assert after > before
        shown += [lines.get(timeout=60) for _ in range(after - before)]
        ids = sorted(json.loads(line)["event_id"] for line in shown)  # each partition in order, interleaved as read
        assert ids == sorted(e["event_id"] for e in _tail(settings, capsys, "customer-events"))
        follower.send_signal(signal.SIGINT)
        assert follower.wait(timeout=30) == 0, "Ctrl-C is how a follow ends"
    finally:
        if follower.poll() is None:
            follower.kill()


def test_tail_goes_on_from_where_it_said_it_stopped(settings, tmp_path, capsys):
    _published(settings, tmp_path, customers=5, seed=1)
    capsys.readouterr()
    assert lifecycle(settings, "tail", "customer-events", "--from", "0") == 0
    read = capsys.readouterr()
    first = [json.loads(line)["event_id"] for line in read.out.splitlines()]
    hint = read.err.strip().rsplit(" with ", 1)[1].split()
    assert hint[0] == "--from" and len(hint) % 2 == 0, read.err

    _published(settings, tmp_path, customers=5, seed=2)
    rest = [e["event_id"] for e in _tail(settings, capsys, "customer-events", *hint)]
    everything = [e["event_id"] for e in _tail(settings, capsys, "customer-events")]
    assert rest and sorted(first + rest) == sorted(everything)
    assert not set(first) & set(rest)

    capsys.readouterr()
    assert lifecycle(settings, "tail", "customer-events", "--from", "nowhere=3") == 2
    assert "no partition 'nowhere'" in capsys.readouterr().err
