"""Damaged stores are told apart from honest ones, named, and mended by a replay from the
log; a damaged log of record is named with the way to restore it, and nothing it holds
is touched. Every store is the real one (RocksDB, DuckDB, SQLite files), damaged on disk
the way a bad disk or a stray `dd` would."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import duckdb
import pytest

from consumers import home
from consumers.settings import Settings
from lifecycle.population import PopulationSpec, generate
from tests.cli import lifecycle
from tests.test_replay import _publish

SPEC = PopulationSpec(customers=120, seed=5, days=200)


def _garble(path: Path, at: int, length: int = 4096) -> None:
    """Overwrite `length` bytes at `at` with seeded noise."""
    noise = random.Random(at).randbytes(length)
    with path.open("r+b") as file:
        file.seek(at)
        file.write(noise)


def _half(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def _sst(generation: Path) -> Path:
    return next((generation / home.STATES).glob("*.sst"))


def _data_block(views: Path) -> int:
    """The offset of a block holding rows of `customer_rows`, which every scan reads."""
    with duckdb.connect(str(views), read_only=True) as db:
        size = db.execute("SELECT block_size FROM pragma_database_size()").fetchone()[0]
        block = db.execute("SELECT max(block_id) FROM pragma_storage_info('customer_rows') WHERE block_id >= 0"
                           ).fetchone()[0]
    return 3 * 4096 + block * size + 512


OPENING = {
    # What a crash or a bad copy leaves: every command that opens the store meets it.
    "states truncated": ("the state store", lambda g: _half(_sst(g))),
    "states without CURRENT": ("the state store", lambda g: (g / home.STATES / "CURRENT").unlink()),
    "projections truncated": ("the projections database", lambda g: _half(g / home.VIEWS)),
    "lifecycle log truncated": ("the lifecycle log", lambda g: _half(g / home.LIFECYCLE_LOG)),
}
READING = {
    # Damage inside a file: found by whoever reads that part, and by `verify`, which reads all.
    "states garbled": ("the state store", lambda g: _garble(_sst(g), _sst(g).stat().st_size // 2)),
    "projections garbled": ("the projections database", lambda g: _garble(g / home.VIEWS, _data_block(g / home.VIEWS))),
    "lifecycle log garbled": ("the lifecycle log",
                              lambda g: _garble(g / home.LIFECYCLE_LOG, (g / home.LIFECYCLE_LOG).stat().st_size // 2)),
}


@pytest.fixture
def derived(tmp_path: Path) -> tuple[Settings, Path]:
    settings = Settings(home=tmp_path / "home")
    _publish(settings, generate(SPEC))
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    generation = home.current(settings.home)
    assert generation is not None
    return settings, generation


def _run(capsys, settings: Settings, *args: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    capsys.readouterr()
    status = lifecycle(settings, *args)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _mended_by_replay(capsys, settings: Settings, log_digest: str) -> None:  # type: ignore[no-untyped-def]
    status, _, err = _run(capsys, settings, "replay", "--workers", "1")
    assert status == 0, err
    status, _, err = _run(capsys, settings, "verify", "--workers", "1")
    assert status == 0 and "all match" in err, err
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    assert _digest(settings.home / "customer-events.sqlite") == log_digest


def _verify_names(capsys, settings: Settings, damaged: str) -> str:  # type: ignore[no-untyped-def]
    """Run `verify`: it must name the damaged store and compare nothing; its stderr."""
    status, out, err = _run(capsys, settings, "verify", "--workers", "1")
    assert status == 1 and "all match" not in err, err
    assert out.startswith(f"damaged: {damaged}") and "is damaged" in out and "nothing compared" in err
    return err


def _damaged(derived, damage) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """Do `damage` to the generation: the store it damaged, and the log of record's digest before."""
    (settings, generation), (store, do) = derived, damage
    log_digest = _digest(settings.home / "customer-events.sqlite")
    do(generation)
    return store, log_digest


@pytest.mark.parametrize("damage", sorted(OPENING))
def test_a_damaged_store_is_refused_by_process_named_by_verify_and_mended_by_replay(derived, capsys, damage):
    settings, generation = derived
    store, log_digest = _damaged(derived, OPENING[damage])

    status, _, err = _run(capsys, settings, "process", "--once", "--no-clock")
    assert status == 2
    assert f"{store} at {generation}" in err and "is damaged" in err and "lifecycle replay" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1

    _verify_names(capsys, settings, f"{store} at {generation}")

    _mended_by_replay(capsys, settings, log_digest)
    assert not generation.exists(), "the damaged generation is removed once the new one is in use"


@pytest.mark.parametrize("damage", sorted(READING))
def test_damage_inside_a_store_is_found_by_verify(derived, capsys, damage):
    settings, generation = derived
    store, log_digest = _damaged(derived, READING[damage])

    _verify_names(capsys, settings, f"{store} at {generation}")

    _mended_by_replay(capsys, settings, log_digest)


def test_a_replay_over_damaged_projections_says_what_history_it_could_not_keep(derived, capsys):
    settings, generation = derived
    status, _, err = _run(capsys, settings, "replay", "--workers", "1")
    assert status == 0 and "could not be read" not in err, "intact projections carry their history over"
    generation = home.current(settings.home)
    assert generation is not None
    _half(generation / home.VIEWS)

    status, _, err = _run(capsys, settings, "replay", "--workers", "1")
    assert status == 0
    assert "engine-commit history" in err and "could not be read" in err and "truncated" in err
    status, _, err = _run(capsys, settings, "verify", "--workers", "1")
    assert status == 0 and "all match" in err


def test_a_damaged_log_of_record_is_named_with_how_to_restore_it_and_nothing_is_removed(derived, capsys):
    settings, generation = derived
    log = settings.home / "customer-events.sqlite"
    _garble(log, log.stat().st_size // 2, 8192)
    damaged = _digest(log)

    err = _verify_names(capsys, settings, f"the log of record at {log}")
    assert "backup" in err and ".recover" in err

    status, _, err = _run(capsys, settings, "replay", "--workers", "1")
    assert status == 2 and "Traceback" not in err
    assert f"the log of record at {log} is damaged" in err and "backup" in err
    assert home.current(settings.home) == generation and generation.exists(), "the generation in use stays"
    assert [p.name for p in settings.home.glob(f"{home.PREFIX}*")] == [generation.name], "no half-built generation"
    assert _digest(log) == damaged, "the log of record is never written to mend it"


def test_an_intact_home_passes_every_check(derived):
    from consumers.store_faults import check

    settings, _ = derived
    assert check(settings, thorough=True) == ()



def test_an_error_of_the_engine_or_a_query_is_not_told_as_damage(derived, capsys):
    settings, _ = derived
    status, _, err = _run(capsys, settings, "sql", "SELECT * FROM no_such_table")
    assert status == 2 and "no_such_table does not exist" in err and "damaged" not in err
