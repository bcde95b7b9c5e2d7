"""A real PostgreSQL server for tests of the shared key store: Debian's postgresql.

Installed by the test setup where missing (`apt-get install postgresql`, as root). Each
`PostgreSQLServer` is a fresh cluster in a temporary directory, listening on a free
loopback port only, with fsync off (the tests' data lives as long as they do). As root
it runs as the `postgres` user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from tests.broker import free_port

_USER = "lifecycle"


def _binaries() -> Path:
    """The folder of initdb and postgres, installed first if missing."""
    for attempt in range(2):
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if found:
            return Path(found[-1]).parent
        if attempt == 0:
            install = ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"]
            if subprocess.run(install, capture_output=True).returncode != 0:
                subprocess.run(["apt-get", "update"], capture_output=True, check=True)
                subprocess.run(install, capture_output=True, check=True)
    raise AssertionError("postgresql was installed but no /usr/lib/postgresql/*/bin/initdb is there")


class PostgreSQLServer:
    """Start a throwaway PostgreSQL on 127.0.0.1; `database()` gives a fresh database's address."""

    def __init__(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="lifecycle-pg-"))
        self._process: subprocess.Popen[bytes] | None = None
        self._port = 0
        self._made = 0

    def _as_owner(self, command: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command

    def __enter__(self) -> PostgreSQLServer:
        binaries = _binaries()
        data = self._dir / "data"
        if os.geteuid() == 0:
            shutil.chown(self._dir, "postgres")
        subprocess.run(self._as_owner([str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", _USER,
                                       "--no-sync", "-E", "UTF8"]), capture_output=True, check=True)
        self._port = free_port()
        log = (self._dir / "server.log").open("ab")
        self._process = subprocess.Popen(self._as_owner([
            str(binaries / "postgres"), "-D", str(data), "-p", str(self._port), "-k", str(self._dir),
            "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off"]),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._wait()
        return self

    def _wait(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self._process is not None and self._process.poll() is None, self._log()
            try:
                psycopg.connect(self.address("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                time.sleep(0.1)
        raise AssertionError(f"PostgreSQL did not answer within 30 s: {self._log()}")

    def _log(self) -> str:
        return (self._dir / "server.log").read_text(errors="replace")[-3000:]

    def address(self, database: str) -> str:
        return f"postgresql://{_USER}@127.0.0.1:{self._port}/{database}"

    def database(self) -> str:
        """The address of a new, empty database."""
        self._made += 1
        name = f"keys_{self._made}"
        with psycopg.connect(self.address("postgres"), autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name}")
        return self.address(name)

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        shutil.rmtree(self._dir, ignore_errors=True)
