"""The engine removes and replaces only what is its own: generations `derived-N`, real
directories directly inside the home. A pointer or a generation leading elsewhere is
refused with what to do, and nothing outside the home is touched."""

from __future__ import annotations

import json

import pytest

from consumers.settings import Settings
from tests.cli import lifecycle

LINE = {"type": "purchase", "event_id": "5c4b3a29-0000-4000-8000-000000000001", "customer_id": "c1",
        "occurred_at": "2025-01-02T09:00:00Z", "source": "pos", "order_id": "o1", "amount_minor": 1999,
        "currency": "EUR"}


@pytest.fixture
def derived(tmp_path) -> Settings:
    settings = Settings(home=tmp_path / "home")
    (tmp_path / "one.jsonl").write_text(json.dumps(LINE) + "\n")
    assert lifecycle(settings, "publish", str(tmp_path / "one.jsonl")) == 0
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    return settings


def _victim(tmp_path):  # type: ignore[no-untyped-def]
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    return victim


@pytest.mark.parametrize("pointer", ["../victim", "{victim}", "derived-1/../../victim", "states"])
@pytest.mark.parametrize("command", [("replay", "--workers", "1"), ("process", "--once", "--no-clock")])
def test_a_pointer_out_of_the_home_is_refused_and_nothing_is_removed(derived, tmp_path, capsys, pointer, command):
    victim = _victim(tmp_path)
    (derived.home / "current").write_text(pointer.format(victim=victim) + "\n")
    capsys.readouterr()
    assert lifecycle(derived, *command) == 2
    err = capsys.readouterr().err
    assert "which is not a generation of this home" in err and "lifecycle replay" in err
    assert (victim / "precious.txt").read_text() == "keep me"
    assert (derived.home / "derived-1" / "views.duckdb").exists()


def test_a_generation_that_is_a_link_elsewhere_is_never_removed(derived, tmp_path):
    victim = _victim(tmp_path)
    (derived.home / "derived-7").symlink_to(victim, target_is_directory=True)
    assert lifecycle(derived, "replay", "--workers", "1") == 0
    assert (victim / "precious.txt").read_text() == "keep me"
    assert (derived.home / "current").read_text().strip() == "derived-8"


def test_a_replay_after_the_pointer_is_put_back_goes_on(derived, tmp_path, capsys):
    (derived.home / "current").write_text("../victim\n")
    assert lifecycle(derived, "replay", "--workers", "1") == 2
    (derived.home / "current").write_text("derived-1\n")
    assert lifecycle(derived, "replay", "--workers", "1") == 0
    capsys.readouterr()
    assert lifecycle(derived, "sql", "SELECT count(*) AS n FROM customers", "--format", "json") == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 1}]
