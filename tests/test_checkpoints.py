"""The processor's checkpoints (consumers/processing/checkpoint.py): lifecycle events are
committed batch by batch, the projections and states at checkpoints, and where
checkpoints fall changes nothing that is derived."""

from __future__ import annotations

from dataclasses import replace

import pytest

from consumers.logs import open_event_log
from consumers.logs.event_log import CUSTOMER_EVENTS
from consumers.processing.checkpoint import CheckpointPolicy
from consumers.processing.engine_session import EngineSession
from consumers.publisher import publish_lines
from consumers.settings import Settings
from lifecycle.population import PopulationSpec, generate
from lifecycle.state import DAY, as_datetime

SPEC = PopulationSpec(customers=400, seed=23, days=200)
BATCH = 300
NEVER_DUE = CheckpointPolicy(batches=10_000, seconds=3_600.0)


def _published(settings: Settings) -> Settings:
    with open_event_log(settings, CUSTOMER_EVENTS) as log:
        report = publish_lines(generate(SPEC), log, lambda n, reason: None)
    assert report.invalid == 0 and report.appended > 10 * BATCH
    return settings


def _positions(session: EngineSession) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """Where the lifecycle log, the projections and the state store stand, by partition."""
    lifecycle_log = {name: session.lifecycle_log.recorded_position(name) or 0 for name in session.log.partitions()}
    return lifecycle_log, session.store.positions(), session.states.positions()


def _derived(session: EngineSession) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """The customers, the transitions and the value movements, in a fixed order."""
    with session.store.recorder.transaction() as connection:
        return tuple(connection.execute(sql).fetchall() for sql in (  # type: ignore[return-value]
            "SELECT * FROM customers ORDER BY customer_id",
            "SELECT * FROM lifecycle_transitions ORDER BY event_id",
            "SELECT * FROM value_movements ORDER BY event_id",
        ))


def _in_one_go(settings: Settings, tmp_path, clock_at=None) -> tuple[list[tuple], list[tuple], list[tuple]]:  # type: ignore[no-untyped-def]
    """What one engine derives from the same log in one batch and one checkpoint (then,
    given `clock_at`, a clock to then), in a home of its own."""
    reference = replace(settings, home=tmp_path / "reference")
    if settings.kafka is None:
        _published(reference)
    with EngineSession(reference, 100_000) as session:
        assert session.run_once().checkpoints == 1
        if clock_at is not None:
            session.tick(clock_at)
            session.run_once()
        return _derived(session)


def test_lifecycle_events_go_out_each_batch_and_projections_and_states_at_the_checkpoint(settings):
    _published(settings)
    with EngineSession(settings, BATCH, NEVER_DUE) as session:
        report = session.run_once(checkpoint=False)
        assert report.batches > 3 and report.checkpoints == 0
        lifecycle_log, views, states = _positions(session)
        assert sum(lifecycle_log.values()) > 0 and views == {} and states == {}

        assert session.processor.checkpoint()
        lifecycle_log, views, states = _positions(session)
        assert views == states == {name: at for name, at in lifecycle_log.items() if at}
        assert not session.processor.checkpoint(), "nothing left to write"


@pytest.mark.parametrize("checkpoints", [CheckpointPolicy(3, 3_600.0), CheckpointPolicy(1, 3_600.0)],
                         ids=["every-3-batches", "every-batch"])
def test_where_checkpoints_fall_changes_nothing_derived(settings, tmp_path, checkpoints):
    _published(settings)
    with EngineSession(settings, BATCH, checkpoints) as session:
        report = session.run_once(checkpoint=False)
        assert report.checkpoints == report.batches // checkpoints.batches
        lifecycle_log, views, states = _positions(session)
        assert all(states.get(name, 0) <= views.get(name, 0) <= at for name, at in lifecycle_log.items())
        session.processor.checkpoint()
        derived = _derived(session)

    assert _in_one_go(settings, tmp_path) == derived


def test_more_changed_customers_than_the_state_cache_holds_bring_a_checkpoint(tmp_path):
    settings = _published(Settings(home=tmp_path / "home", state_cache=50))
    with EngineSession(settings, BATCH, NEVER_DUE) as session:
        report = session.run_once(checkpoint=False)
        assert 0 < report.checkpoints <= report.batches
        assert session.states.positions(), "the states were written without a checkpoint being due"


def test_a_clock_after_a_long_silence_is_checkpointed_step_by_step(settings, tmp_path):
    """A year's silence, then a clock: its steps make every customer due, more than the
    state cache holds, and the batch is cut between steps with a checkpoint; what is
    derived is the same as in one go."""
    _published(settings)
    small = replace(settings, state_cache=50)
    with EngineSession(small, 100_000, NEVER_DUE) as session:
        session.run_once()
        later = as_datetime(session.log_time() + 365 * DAY)
        assert session.tick(later) >= 365, "a year is stepped a day at a time"
        report = session.run_once(checkpoint=False)
        assert report.checkpoints > len(session.log.partitions()), "cut between the clock's steps"
        session.processor.checkpoint()
        derived = _derived(session)

    assert _in_one_go(settings, tmp_path, later) == derived


def test_states_read_ahead_come_in_one_multi_get_and_keep_what_the_cache_holds_newer(tmp_path):
    """`prefetch` reads the states the next records will need in one multi-get; a state the cache
    holds (changed since it was written) is not replaced by the older stored one."""
    from eventsourcing.persistence import Tracking

    from lifecycle.state import CustomerState, encode_state
    from projections.stores.state_store import RocksDBStateStore, StateBatch

    store = RocksDBStateStore(tmp_path / "states", cache_size=0)
    written = [CustomerState(customer_id=f"c{n}", events=n) for n in range(3)]
    store.write(StateBatch(Tracking("customer-events:0", 9), "customer-events:0", written))
    store.close()

    store = RocksDBStateStore(tmp_path / "states", cache_size=10)
    try:
        changed = store.get("c0")
        assert changed is not None
        changed.events = 99
        store.prefetch(["c0", "c1", "c2", "c1", "nobody"])
        assert store.get("c0") is changed and changed.events == 99
        assert [encode_state(store.get(c)) for c in ("c1", "c2")] == [encode_state(s) for s in written[1:]]  # type: ignore[arg-type]
        assert store.get("nobody") is None
    finally:
        store.close()
