"""The engine's settings: one frozen object, built at the edge from flags and environment.

Nothing below `consumers/` reads the environment; everything it needs is passed down.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from consumers.errors import ConfigurationError
from consumers.home import VIEWS, current

ENV_KAFKA = "LIFECYCLE_KAFKA"
ENV_HOME = "LIFECYCLE_HOME"
ENV_MASTER_KEY = "LIFECYCLE_MASTER_KEY"
ENV_ROLES = "LIFECYCLE_ROLES"
ENV_KEY_STORE = "LIFECYCLE_KEY_STORE"
DEFAULT_HOME = Path(".lifecycle")


@dataclass(frozen=True)
class Settings:
    """Where the engine keeps things, and which log it uses."""

    home: Path = DEFAULT_HOME
    kafka: str | None = None
    partitions: int = 4
    policy: Path | None = None
    state_cache: int = 100_000
    """Customers' states kept decoded in memory (the rest are read from the state store)."""
    projections_memory: str = "1GB"
    """The most memory DuckDB takes for the engine's projections (its `memory_limit`;
    past it, it spills to disk): its default, 80% of the machine, let one engine's
    projections crowd out its states and everything else on the machine."""
    master_key: Path | None = None
    """The file of the master key that wraps the customers' keys (consumers/privacy/customer_keys.py);
    None: `<home>/master.key`, made on first use."""

    roles: Path | None = None
    """The roles file (consumers/privacy/roles_file.py); None: the shipped one."""
    key_store: str | None = None
    """The PostgreSQL database of the customers' keys, shared by several publishing
    machines (consumers/privacy/key_store.py); None: `<home>/customer-keys.sqlite`."""

    @property
    def master_key_path(self) -> Path:
        return self.master_key or self.home / "master.key"

    @property
    def views_path(self) -> Path:
        """The projections of the generation in use (consumers/home.py)."""
        return (current(self.home) or self.home) / VIEWS

    def require_home(self) -> None:
        """For commands that only read: a missing home is an error, never created."""
        if not self.home.is_dir():
            msg = (
                f"no lifecycle home at {self.home}: publish and process events first (or run "
                f"`make demo`), or point --home or {ENV_HOME} at one"
            )
            raise ConfigurationError(msg)

    @classmethod
    def build(
        cls,
        *,
        home: str | None = None,
        kafka: str | None = None,
        policy: str | None = None,
        state_cache: int | None = None,
        projections_memory: str | None = None,
        master_key: str | None = None,
        roles: str | None = None,
        key_store: str | None = None,
        environ: Mapping[str, str] = os.environ,
    ) -> Settings:
        """Flags win over the environment; the environment over the defaults."""
        kafka = kafka or environ.get(ENV_KAFKA) or None
        if kafka is not None:
            _check_bootstrap(kafka)
        home = Path(home or environ.get(ENV_HOME) or DEFAULT_HOME)
        cache = cls.state_cache if state_cache is None else state_cache
        memory = cls.projections_memory if projections_memory is None else _memory_size(projections_memory)
        key = master_key or environ.get(ENV_MASTER_KEY) or None
        roles = roles or environ.get(ENV_ROLES) or None
        key_store = key_store or environ.get(ENV_KEY_STORE) or None
        if key_store is not None and not key_store.startswith(("postgresql://", "postgres://")):
            msg = (f"key store {key_store!r} is not a PostgreSQL address; give --key-store or {ENV_KEY_STORE} as "
                   "postgresql://user@host:5432/database, or leave it out for the home's own key file")
            raise ConfigurationError(msg)
        return cls(home=home, kafka=kafka, policy=Path(policy) if policy else None, state_cache=cache,
                   projections_memory=memory, master_key=Path(key) if key else None,
                   roles=Path(roles) if roles else None, key_store=key_store)


_MEMORY_SIZE = re.compile(r"\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)", re.IGNORECASE)


def _memory_size(value: str) -> str:
    if not _MEMORY_SIZE.fullmatch(value.strip()):
        msg = f"memory size {value!r} is not a number and a unit; give it as e.g. 512MB or 2GB"
        raise ConfigurationError(msg)
    return value.strip()


def _check_bootstrap(value: str) -> None:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        msg = (
            f"Kafka address {value!r} is not host:port; "
            f"set {ENV_KAFKA} or --kafka to e.g. 127.0.0.1:9092"
        )
        raise ConfigurationError(msg)
