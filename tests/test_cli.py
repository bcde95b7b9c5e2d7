"""The command line's edges: the lifecycle contract, policy files, output formats, ids,
and its hygiene: pipes, terminals, flags, missing homes, version and help."""

from __future__ import annotations

import json
import subprocess
import uuid
from importlib.metadata import version
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.cli import main
from consumers.logs.event_log import CUSTOMER_EVENTS
from consumers.logs import open_event_log
from consumers.processing.engine_session import EngineSession
from consumers.publisher import publish_lines
from consumers.settings import Settings
from lifecycle.engine import LIFECYCLE_NAMESPACE, lifecycle_event_id, uuid_text
from lifecycle.population import PopulationSpec, generate
from schemas import customer_lifecycle_schema
from tests.cli import ROOT, lifecycle, lifecycle_command

MIXED = Path(__file__).parent / "fixtures" / "mixed_valid_invalid.jsonl"


@given(st.text(max_size=200))
def test_lifecycle_event_ids_are_standard_uuid5(name):
    fast, standard = lifecycle_event_id(name), uuid.uuid5(LIFECYCLE_NAMESPACE, name)
    assert fast == standard and str(fast) == str(standard) and hash(fast) == hash(standard)
    assert fast.version == 5 and fast.variant == uuid.RFC_4122


@given(st.uuids())
def test_the_engine_writes_a_uuid_as_the_standard_library_does(value):
    assert uuid_text(value) == str(value)


def test_schema_command_prints_the_lifecycle_contract(tmp_path, capsys):
    assert lifecycle(Settings(home=tmp_path), "schema", "customer-lifecycle") == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(customer_lifecycle_schema()))
    assert "stage_changed" in json.dumps(printed)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('version = "x"\n[stage]\nloyal_min_purchases = "four"\n', "Expected `int`, got `str` - at `$.stage.loyal_min_purchases`"),
        ("[stage]\nloyal_min_purchases = 3\n", "missing required field `version`"),
        ('version = "x"\n[stage\n', "not valid TOML"),
        ('version = "x"\n[activity]\ndrowsy_days = 400\n', "drowsy_days <= half_asleep_days"),
    ],
)
def test_a_bad_policy_file_is_refused_with_where_and_what(tmp_path, capsys, content, message):
    policy = tmp_path / "policy.toml"
    policy.write_text(content)
    assert lifecycle(Settings(home=tmp_path / "home"), "process", "--once", "--no-clock", "--policy", str(policy)) == 2
    error = capsys.readouterr().err
    assert str(policy) in error and message in error


def test_a_missing_policy_file_is_refused(tmp_path, capsys):
    assert lifecycle(Settings(home=tmp_path), "process", "--once", "--no-clock", "--policy", str(tmp_path / "nope.toml")) == 2
    assert "cannot read the policy file" in capsys.readouterr().err


def test_the_policy_version_is_recorded_with_every_decision(settings, tmp_path, capsys):
    policy = tmp_path / "policy.toml"
    policy.write_text('version = "strict-1"\n[stage]\nloyal_min_purchases = 2\n')
    assert lifecycle(settings, "publish", str(MIXED)) == 1
    assert lifecycle(settings, "process", "--once", "--no-clock", "--policy", str(policy)) == 0
    capsys.readouterr()
    assert lifecycle(settings, "sql", "SELECT DISTINCT policy_version FROM lifecycle_transitions", "--format", "json") == 0
    assert json.loads(capsys.readouterr().out) == [{"policy_version": "strict-1"}]


def test_a_policy_version_cannot_come_back_with_other_thresholds(settings, tmp_path, capsys):
    policy = tmp_path / "policy.toml"
    policy.write_text('version = "strict-1"\n[stage]\nloyal_min_purchases = 2\n')
    lifecycle(settings, "publish", str(MIXED))
    assert lifecycle(settings, "process", "--once", "--no-clock", "--policy", str(policy)) == 0
    policy.write_text('version = "strict-1"\n[stage]\nloyal_min_purchases = 3\n')
    capsys.readouterr()
    assert lifecycle(settings, "process", "--once", "--no-clock", "--policy", str(policy)) == 2
    assert "policy version 'strict-1' was used before with other thresholds" in capsys.readouterr().err
    policy.write_text('version = "strict-2"\n[stage]\nloyal_min_purchases = 3\n')
    assert lifecycle(settings, "process", "--once", "--no-clock", "--policy", str(policy)) == 0
    capsys.readouterr()
    assert lifecycle(settings, "sql", "SELECT version, policy->>'$.stage.loyal_min_purchases' AS n FROM policies"
                     " ORDER BY 1", "--format", "json") == 0
    assert json.loads(capsys.readouterr().out) == [{"version": "strict-1", "n": "2"}, {"version": "strict-2", "n": "3"}]


def test_lists_of_uuids_print_as_json(settings, capsys):
    lifecycle(settings, "publish", str(MIXED))
    lifecycle(settings, "process", "--once", "--no-clock")
    capsys.readouterr()
    assert lifecycle(settings, "sql", "SELECT event_id, caused_by FROM lifecycle_transitions LIMIT 1", "--format", "json") == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert uuid.UUID(row["event_id"]) and [uuid.UUID(c) for c in row["caused_by"]]


def test_a_missing_input_file_is_refused(tmp_path, capsys):
    assert lifecycle(Settings(home=tmp_path), "publish", str(tmp_path / "nope.jsonl")) == 2
    assert f"cannot read {tmp_path / 'nope.jsonl'}: No such file or directory" in capsys.readouterr().err


def test_tail_into_a_reader_that_stops_early_ends_quietly(tmp_path):
    """`lifecycle tail | head`: the reader going away is not an error."""
    settings = Settings(home=tmp_path / "home")
    with open_event_log(settings, CUSTOMER_EVENTS) as log:
        publish_lines(generate(PopulationSpec(customers=300, seed=3, days=60)), log, lambda n, r: None)
    process = subprocess.Popen(lifecycle_command(settings, "tail", CUSTOMER_EVENTS),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    assert process.stdout is not None and process.stderr is not None
    assert json.loads(process.stdout.readline())["type"]
    process.stdout.close()
    assert process.wait(timeout=60) == 0
    assert process.stderr.read() == b""


def test_tables_show_control_characters_escaped(tmp_path, capsys):
    settings = Settings(home=tmp_path)
    lifecycle(settings, "publish", str(MIXED))
    lifecycle(settings, "process", "--once", "--no-clock")
    capsys.readouterr()
    assert lifecycle(settings, "sql", "SELECT 'a' || chr(10) || 'b' || chr(27) || '[31m' || chr(8238) AS v") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[2] == "a\\nb\\x1b[31m\\u202e"
    assert "\x1b" not in out


@pytest.mark.parametrize(
    "args",
    [
        ("process", "--batch-size", "0"),
        ("process", "--poll-interval", "0"),
        ("process", "--clock-every", "-1"),
        ("demo", "--customers", "0"),
        ("process", "--batch-size", "many"),
        ("process", "--checkpoint-batches", "0"),
        ("process", "--checkpoint-seconds", "-1"),
    ],
)
def test_nonsense_numbers_are_refused(tmp_path, capsys, args):
    with pytest.raises(SystemExit) as stopped:
        lifecycle(Settings(home=tmp_path / "home"), *args)
    assert stopped.value.code == 2
    assert f"argument {args[1]}" in capsys.readouterr().err
    assert not (tmp_path / "home").exists()


def test_the_projections_take_the_memory_they_are_given(tmp_path, capsys):
    settings = Settings(home=tmp_path / "home")
    lifecycle(settings, "publish", str(MIXED))
    assert lifecycle(settings, "process", "--once", "--no-clock", "--projections-memory", "lots") == 2
    assert "memory size 'lots' is not a number and a unit; give it as e.g. 512MB or 2GB" in capsys.readouterr().err
    assert lifecycle(settings, "process", "--once", "--no-clock", "--projections-memory", "300MB") == 0
    with EngineSession(Settings.build(home=str(settings.home), projections_memory="300MB")) as session:
        with session.store.recorder.transaction() as connection:
            (limit,) = connection.execute("SELECT current_setting('memory_limit')").fetchone()
    assert limit == "286.1 MiB", "300 MB, as DuckDB tells it"


def test_tail_on_a_home_that_does_not_exist_creates_nothing(tmp_path, capsys):
    missing = tmp_path / "no-such-home"
    assert lifecycle(Settings(home=missing), "tail") == 2
    assert "no lifecycle home at" in capsys.readouterr().err
    assert not missing.exists()


def test_tail_of_a_log_nothing_was_published_to_is_a_clear_error(settings, capsys):
    settings.home.mkdir(parents=True)
    assert lifecycle(settings, "tail", CUSTOMER_EVENTS) == 2
    assert "nothing was published to it" in capsys.readouterr().err
    assert list(settings.home.iterdir()) == []


def test_version_and_defaults_in_help(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"lifecycle {version('customer-lifecycle')}"
    with pytest.raises(SystemExit):
        main(["process", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for shown in ("(default: 20000)", "(default: 3600.0)", "(default: 60.0)", "(default: 1.0)"):
        assert shown in help_text


def test_the_common_options_work_before_the_command_and_after_it_wins(tmp_path, capsys):
    home, other = tmp_path / "home", tmp_path / "other"
    assert main(["--home", str(home), "publish", str(MIXED)]) == 1
    assert (home / "customer-events.sqlite").exists()
    assert main(["--home", str(home), "process", "--once", "--no-clock"]) == 0
    capsys.readouterr()
    assert main(["--home", str(home), "sql", "SELECT count(*) AS n FROM customers", "--format", "json"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert main(["--home", str(other), "sql", "SELECT count(*) AS n FROM customers", "--format", "json",
                 "--home", str(home)]) == 0
    assert json.loads(capsys.readouterr().out) == before and before[0]["n"] > 0
    assert not other.exists(), "the option after the command is the one used"


def test_every_option_of_every_command_says_what_it_is_for():
    import argparse

    from consumers.cli import _parser

    parser = _parser()
    [commands] = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    silent = [f"{name} {action.option_strings or action.dest}" for name, command in commands.choices.items()
              for action in command._actions if not action.help and action.dest != "help"]
    assert not silent, silent
    for name, command in commands.choices.items():
        text = command.format_help()
        assert "(default: " in text or not any(a.default not in (None, False, argparse.SUPPRESS)
                                               for a in command._actions if a.help), name
