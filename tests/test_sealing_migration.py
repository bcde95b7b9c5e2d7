"""A log written before personal data was sealed: the engine goes on reading it (masked
for every reader), and a one-time re-publish into a new home seals it, with the same
lifecycle events, ids and chain; nothing is lost."""

from __future__ import annotations

import subprocess

from consumers.logs.event_log import CUSTOMER_EVENTS
from consumers.logs import open_event_log
from consumers.publisher import publish_lines
from consumers.settings import Settings
from tests.cli import ROOT, lifecycle, lifecycle_command
from tests.test_erasure import SECRETS, WHO, _in_clear, _zelda


def test_an_old_clear_log_is_masked_and_a_re_publish_seals_it_with_the_same_lifecycle(tmp_path, capsys):
    old = Settings(home=tmp_path / "old")
    with _zelda(tmp_path).open("rb") as lines, open_event_log(old, CUSTOMER_EVENTS) as log:
        publish_lines(lines, log, lambda n, why: None)  # as publish did before it sealed
    assert lifecycle(old, "process", "--once", "--no-clock") == 0
    assert _in_clear((old.home / "customer-events.sqlite").read_bytes()), "the old log holds it in clear"
    capsys.readouterr()
    assert lifecycle(old, "tail", "customer-events") == 0
    assert lifecycle(old, "explain", WHO) == 0
    assert not _in_clear(capsys.readouterr().out.encode()), "masked for every reader"

    new = Settings(home=tmp_path / "new")
    tail = subprocess.Popen(lifecycle_command(old, "tail", "customer-events", "--show-personal", "--role", "privacy"),
                            stdout=subprocess.PIPE, cwd=ROOT)
    published = subprocess.run(lifecycle_command(new, "publish", "-"), stdin=tail.stdout, cwd=ROOT,
                               capture_output=True, text=True)
    assert tail.wait() == 0 and published.returncode == 0, published.stderr
    assert lifecycle(new, "process", "--once", "--no-clock") == 0

    assert not _in_clear((new.home / "customer-events.sqlite").read_bytes()), "sealed in the new log"
    capsys.readouterr()
    assert lifecycle(old, "tail", "customer-lifecycle") == 0
    before = capsys.readouterr().out
    assert lifecycle(new, "tail", "customer-lifecycle") == 0
    assert capsys.readouterr().out == before, "the same lifecycle events, ids and chain"
    assert lifecycle(new, "tail", "customer-events", "--show-personal", "--role", "privacy") == 0
    shown = capsys.readouterr().out
    assert all(value in shown for value in SECRETS.values()), shown[-3000:]
