"""Terminal-safe output: free text may hold control, C1 and bidi characters (an OSC 52
that writes the clipboard, ESC[2J that clears the screen, U+009B, U+202E); none reaches
a reader raw, whatever the command and format, and JSON stays the same JSON."""

from __future__ import annotations

import json

import pytest

from consumers.settings import Settings
from tests.cli import lifecycle

HOSTILE = "call me \x1b]52;c;ZXZpbA==\x07 \x1b]0;owned\x07 \x1b[2J \u009b2J \u202eevil \u2028next"
RAW = ("\x1b", "\x07", "\u009b", "\u202e", "\u2028")
CONTACT = {"type": "contact", "event_id": "3b2a1c0d-0000-4000-8000-000000000001", "customer_id": "t1",
           "occurred_at": "2025-01-02T09:00:00Z", "source": "call-centre", "channel": "phone",
           "direction": "inbound", "topic": HOSTILE}


@pytest.fixture
def home(tmp_path) -> Settings:
    settings = Settings(home=tmp_path / "home")
    (tmp_path / "hostile.jsonl").write_text(json.dumps(CONTACT, ensure_ascii=False) + "\n", encoding="utf-8")
    assert lifecycle(settings, "publish", str(tmp_path / "hostile.jsonl")) == 0
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    return settings


def _out(settings: Settings, capsys, *args: str) -> str:
    capsys.readouterr()
    assert lifecycle(settings, *args) == 0
    captured = capsys.readouterr()
    return captured.out + captured.err


@pytest.mark.parametrize("args", [
    ("explain", "t1", "--show-personal", "--role", "privacy"),
    ("explain", "t1", "--show-personal", "--role", "privacy", "--format", "json"),
    ("sql", "SELECT 'x' || chr(27) || '[2J' || chr(8238) AS v"),
    ("sql", "SELECT 'x' || chr(27) || '[2J' || chr(8238) AS v", "--format", "csv"),
    ("sql", "SELECT 'x' || chr(27) || '[2J' || chr(155) || chr(8238) AS v", "--format", "json"),
])
def test_no_control_bidi_or_c1_character_reaches_the_reader(home, capsys, args):
    out = _out(home, capsys, *args)
    assert not [c for c in RAW if c in out], repr(out)


def test_json_output_is_still_the_same_json(home, capsys):
    document = json.loads(_out(home, capsys, "explain", "t1", "--show-personal", "--role", "privacy", "--format", "json"))
    (transition,) = document["transitions"]
    assert transition["caused_by"][0]["payload"]["topic"] == HOSTILE
    rows = json.loads(_out(home, capsys, "sql", "SELECT chr(8238) || 'x' AS v", "--format", "json"))
    assert rows == [{"v": "\u202ex"}]


def test_text_shows_the_characters_escaped(home, capsys):
    out = _out(home, capsys, "explain", "t1", "--show-personal", "--role", "privacy")
    assert "\\x1b]52;c;ZXZpbA==\\x07" in out and "\\u202eevil" in out
