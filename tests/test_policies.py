"""A policy is validated as strictly as an event: a random policy file either loads and
processes a seeded population to completion, with no record the engine fails on, or is
refused at load with a one-line error naming the key and what it allows (no traceback,
no hang). And when the engine does fail on record after record, the run stops with a
clear error instead of redoing the batch record by record."""

from __future__ import annotations

import json
import math
import random
import shutil

import pytest
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from consumers.processing.engine_session import EngineSession
from consumers.logs.event_log import CUSTOMER_EVENTS
from consumers.logs import open_event_log
from consumers.processing.processor import FAILURES_PER_BATCH, EngineFailing
from consumers.publisher import publish_lines
from consumers.settings import Settings
from lifecycle.engine import LifecycleEngine
from lifecycle.policy import Policy
from lifecycle.population import PopulationSpec, generate
from tests.cli import lifecycle

KEYS = {
    name: list(type(getattr(Policy(version="v"), name)).__struct_fields__)
    for name in Policy.__struct_fields__ if name != "version"
}
"""Each policy section and its keys."""
NUMBERS = st.one_of(
    st.sampled_from([0, 1, 2, -1, -5, -365, 7, 31, 365, 10**4, 10**7, 2**53, 2**63 - 1, -(2**63)]),
    st.integers(-1_000, 100_000),
    st.sampled_from([0.0, 0.5, 1.0, 1.5, 1e300, -1e300, math.inf, -math.inf, math.nan, 1e-12]),
    st.floats(-10, 1_000, allow_nan=False),
)
VALUES = st.one_of(NUMBERS, st.sampled_from(["EUR", "eur", "", "x" * 300, True]))
DEFAULT = Policy(version="v")
VERSIONS = st.sampled_from(["fuzz", "", " padded ", "v\u009b2J", "v\x1b]0;x\x07", "ok-1.2"])


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)


@st.composite
def policy_files(draw: st.DrawFn) -> str:
    """Half the time every value is near the shipped one (scaled, off by a little): a
    policy someone might write, which must then run; else anything."""
    near = draw(st.booleans())
    version = "fuzz" if near else draw(VERSIONS)
    lines = [f"version = {json.dumps(version, ensure_ascii=False)}"]
    for section in draw(st.lists(st.sampled_from(sorted(KEYS)), max_size=4, unique=True)):
        lines.append(f"[{section}]")
        for key in draw(st.lists(st.sampled_from(KEYS[section]), min_size=1, max_size=4, unique=True)):
            value = _near(draw, getattr(getattr(DEFAULT, section), key)) if near else draw(VALUES)
            if value is not None:
                lines.append(f"{key} = {_toml(value)}")
    return "\n".join(lines) + "\n"


def _near(draw: st.DrawFn, default: object) -> object:
    if isinstance(default, bool) or not isinstance(default, int | float):
        return None
    scaled = default * draw(st.sampled_from([0, 0.1, 0.5, 1, 2, 10, 100]))
    if isinstance(default, int):
        return int(scaled) + draw(st.integers(-2, 2))
    return scaled + draw(st.floats(0, 1))


@pytest.fixture(scope="module")
def published(tmp_path_factory):  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("published")
    with open_event_log(Settings(home=home), CUSTOMER_EVENTS) as log:
        publish_lines(generate(PopulationSpec(customers=40, seed=3, days=150)), log, lambda n, reason: None)
    return home / "customer-events.sqlite"


POLICIES = hypothesis_settings(max_examples=60, deadline=None, derandomize=True,
                               suppress_health_check=[HealthCheck.function_scoped_fixture],
                               phases=(Phase.explicit, Phase.reuse, Phase.generate))


@POLICIES
@given(policy_files())
def test_a_random_policy_loads_and_runs_or_is_refused_in_one_line(published, tmp_path_factory, capsys, text):
    home = tmp_path_factory.mktemp("home")
    shutil.copy(published, home / "customer-events.sqlite")
    policy = home / "policy.toml"
    policy.write_text(text, encoding="utf-8")
    settings = Settings(home=home)
    capsys.readouterr()
    status = lifecycle(settings, "process", "--once", "--no-clock", "--policy", str(policy))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if status == 2:
        (line,) = err.strip().splitlines()
        assert line.startswith("lifecycle process: ") and "policy" in line, line
        return
    assert status == 0, err
    assert lifecycle(settings, "sql", "SELECT count(*) AS n FROM dead_letters", "--format", "json") == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 0}], text


def test_policies_near_the_shipped_one_run_to_completion(published, tmp_path, capsys):
    """A dozen seeded variations of the shipped policy, every threshold moved by up to a
    factor of three and kept in order: all load, and all run the population with no
    record the engine fails on (the property test above could pass by refusing all)."""
    rng = random.Random(11)
    for n in range(12):
        lines = [f'version = "near-{n}"']
        for section, keys in KEYS.items():
            lines.append(f"[{section}]")
            for key in keys:
                default = getattr(getattr(DEFAULT, section), key)
                if type(default) in (int, float) and not key.endswith(("_days", "_points", "_nps", "_csat", "_gaps")):
                    lines.append(f"{key} = {_toml(type(default)(default * rng.uniform(1, 3)))}")
        home = tmp_path / f"home-{n}"
        home.mkdir()
        shutil.copy(published, home / "customer-events.sqlite")
        (home / "policy.toml").write_text("\n".join(lines) + "\n")
        settings = Settings(home=home)
        assert lifecycle(settings, "process", "--once", "--no-clock", "--policy", str(home / "policy.toml")) == 0, \
            capsys.readouterr().err
        assert lifecycle(settings, "sql", "SELECT count(*) AS n FROM dead_letters", "--format", "json") == 0
        assert json.loads(capsys.readouterr().out.splitlines()[-1]) == [{"n": 0}]


def test_a_policy_file_that_is_not_utf8_is_refused_in_one_line(tmp_path, capsys):
    policy = tmp_path / "latin1.toml"
    policy.write_bytes('version = "café"\n'.encode("latin-1"))
    assert lifecycle(Settings(home=tmp_path / "home"), "process", "--once", "--policy", str(policy)) == 2
    assert "not UTF-8 text (byte 14): save the policy file as UTF-8" in capsys.readouterr().err


class _FailingEngine(LifecycleEngine):
    """The real engine with a bug on every purchase: the path no valid input reaches."""

    def on_event(self, state, event, at=None):  # type: ignore[no-untyped-def]
        if type(event).__name__ == "Purchase":
            raise ZeroDivisionError("a bug")
        return super().on_event(state, event, at)


def test_a_storm_of_failures_stops_the_run_with_a_clear_error(tmp_path):
    settings = Settings(home=tmp_path / "home")
    with open_event_log(settings, CUSTOMER_EVENTS) as log:
        publish_lines(generate(PopulationSpec(customers=60, seed=5, days=90)), log, lambda n, reason: None)
    with EngineSession(settings) as session:
        processor = session.processor
        processor.engine = _FailingEngine(processor.engine.policy)
        with pytest.raises(EngineFailing) as raised:
            processor.run_once()
        assert processor.states.positions() == {}, "nothing of the failing batch is committed"
    message = str(raised.value)
    assert f"failed on {FAILURES_PER_BATCH} records of one batch" in message and "ZeroDivisionError: a bug" in message
