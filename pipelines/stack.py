"""`finmon up`: the whole embedded stack on one machine: broker, stage workers, dashboard and a feed.

Workers run as child processes (the same `finmon worker ...` a production deployment runs), so stopping,
killing and restarting one behaves here as it does in production.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.app import STAGES
from monitor.config import Settings
from monitor.kafka.broker import EmbeddedBroker, free_port, port_open
from monitor.kafka.client import ensure_topics
from monitor.status import collect_status
from monitor.store import Store

MAX_AUTO_WORKERS = 4  # classify workers `finmon up` starts on its own on a CPU machine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpOptions:
    feed: str | None
    speed: float | None
    dashboard: bool
    dashboard_port: int
    stop_after_idle: float | None
    broker_port: int | None


def worker_command(stage: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", "worker", stage]


def classify_workers(settings: Settings) -> tuple[int, int | None]:
    """How many classify workers `finmon up` starts, and torch threads for each (None: torch's default).

    On CPU, one single-threaded worker per core beats one worker with a thread per core: a model's threads
    meet at a barrier after every operation, and whenever another stage (aggregate, sink, the broker) takes a
    core, the model's other thread waits idle there. Separate processes leave the scheduler whole cores to
    fill (`finmon bench pipeline --backlog` on 2 cores: 0.84 of the classifier-alone rate instead of 0.63-0.73).
    A GPU worker batches for the device: one is enough."""
    cfg, cores = settings.classify, os.cpu_count() or 1
    if cfg.workers is not None:
        return cfg.workers, cfg.threads or (max(1, cores // cfg.workers) if cfg.workers > 1 else None)
    if cfg.device.startswith("cuda") or (cfg.device == "auto" and _has_cuda()):
        return 1, cfg.threads
    workers = max(1, min(cores, settings.kafka.partitions, MAX_AUTO_WORKERS))
    return workers, cfg.threads or max(1, cores // workers)


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


class Stack:
    """Starts and stops everything `finmon up` runs."""

    def __init__(self, settings: Settings, options: UpOptions) -> None:
        self.options = options
        self.broker = EmbeddedBroker(self._broker_port(settings), log_path=Path(settings.data_dir) / "broker.log")
        self.settings = settings.model_copy(update={"bootstrap": self.broker.bootstrap})
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self._stop = threading.Event()

    @staticmethod
    def _broker_port(settings: Settings) -> int:
        wanted = int(settings.bootstrap.split(",")[0].rsplit(":", 1)[1])
        if port_open("127.0.0.1", wanted):
            port = free_port()
            log.warning("port %d is taken; the embedded broker uses %d", wanted, port)
            return port
        return wanted

    def env(self) -> dict[str, str]:
        env = dict(os.environ, FINMON_BOOTSTRAP=self.settings.bootstrap, FINMON_STORE_URL=self.settings.store_url)
        env["PYTHONUNBUFFERED"] = "1"
        if self.options.feed is not None:
            # Replaying history: alert `for`/repeat timers follow the stream's event time, not the wall clock,
            # unless the user chose otherwise.
            env.setdefault("FINMON_ALERTS__TIME_MODE", "stream")
            # stream time moves with the source marks, which change no window: look at it often
            env.setdefault("FINMON_ALERTS__EVALUATE_EVERY_S", "2")
        return env

    def start(self) -> None:
        self.start_broker()
        self.start_workers()

    def start_broker(self) -> None:
        """The broker, the topics and the store schema (a backlog can be published before any worker runs)."""
        Path(self.settings.data_dir).mkdir(parents=True, exist_ok=True)
        self.broker.start()
        ensure_topics(self.settings)
        Store(self.settings.store_url).create_schema()

    def start_workers(self) -> None:
        workers, threads = classify_workers(self.settings)
        env = self.env()
        if threads is not None:
            env.setdefault("FINMON_CLASSIFY__THREADS", str(threads))
        log.info("classify: %d worker(s), %s torch thread(s) each", workers, threads or "default")
        for stage in STAGES:
            copies = workers if stage == "classify" else 1
            for name in [stage, *(f"{stage}-{n}" for n in range(2, copies + 1))]:
                self.children[name] = subprocess.Popen(worker_command(stage), env=env)  # noqa: S603
        if self.options.dashboard:
            self.children["dashboard"] = subprocess.Popen(self._dashboard_cmd(), env=self.env())  # noqa: S603
            log.info("dashboard: http://127.0.0.1:%d", self.options.dashboard_port)

    def _dashboard_cmd(self) -> list[str]:
        from dashboards.serve import streamlit_command

        return streamlit_command(self.options.dashboard_port)

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Until every stage worker has partitions assigned (their heartbeats say so). A paced replay started
        earlier would pile up a backlog behind the model load, and a backlog read partition by partition
        arrives out of event-time order downstream."""
        from monitor.store.heartbeats import ready_stages

        engine, since = Store(self.settings.store_url).engine, datetime.now(UTC) - timedelta(seconds=5)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._stop.is_set():
            missing = set(STAGES) - ready_stages(engine, since)
            if not missing:
                log.info("all stages ready")
                return
            self._stop.wait(0.5)
        log.warning("stages %s not ready after %.0fs; replaying anyway", sorted(missing), timeout)

    def feed(self) -> None:
        if self.options.feed is None:
            return
        self.wait_ready()
        from monitor.sources.files import FileSource
        from pipelines.replay import publish, resolve_feed

        source = FileSource(resolve_feed(self.options.feed))
        result = publish(self.settings, source.records(), self.options.speed, unparsed=source.unparsed)
        log.info("feed %s: published %d items in %.1fs", self.options.feed, result.published, result.seconds)

    def wait(self) -> None:
        """Until signalled, or until idle for stop_after_idle seconds when that is set."""
        idle_for, last, since = self.options.stop_after_idle, None, time.monotonic()
        while not self._stop.wait(1.0 if idle_for is None else 2.0):
            self._check_children()
            if idle_for is None:
                continue
            status = collect_status(self.settings)
            snapshot = (status.get("published"), status.get("stored"), status.get("dead_lettered"))
            busy = snapshot != last or any(status.get("lag", {}).values()) or status.get("lag") == {}
            if busy:
                last, since = snapshot, time.monotonic()
            elif time.monotonic() - since >= idle_for:
                return

    def _check_children(self) -> None:
        for name, proc in self.children.items():
            if proc.poll() is not None and not self._stop.is_set():
                log.error("%s exited with code %s; see the log lines above", name, proc.returncode)

    def request_stop(self, *_: Any) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """True once a signal asked the stack to stop (then it stops at once, without draining)."""
        return self._stop.is_set()

    def stop(self, drain: bool = False) -> None:
        """SIGTERM every child. `drain` (the stream went idle): upstream first, letting what a stopping stage
        still sends (classify's last source marks) reach the stages after it, so stream time ends where the
        feed ends; otherwise (Ctrl-C, SIGTERM) all at once."""
        if drain:
            for stage in STAGES:
                for name in self._workers_of(stage):
                    self._stop_child(name)
                self._wait_drained(timeout=30)
        for proc in self.children.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name in self.children:
            self._stop_child(name)

    def _workers_of(self, stage: str) -> list[str]:
        """The children running `stage` (`classify`, `classify-2`, ...)."""
        return [name for name in self.children if name == stage or name.startswith(f"{stage}-")]

    def _stop_child(self, name: str) -> None:
        proc = self.children.get(name)
        if proc is None or proc.returncode is not None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in 30s; killing it", name)
            proc.kill()
            proc.wait()

    def _wait_drained(self, timeout: float) -> None:
        """Until every consumer group still running has read everything (bounded: never blocks a stop)."""
        deadline = time.monotonic() + timeout
        running = {f"{self.settings.kafka.group_prefix}-{stage}" for stage in STAGES
                   if any(self.children[name].poll() is None for name in self._workers_of(stage))}
        while running and time.monotonic() < deadline:
            lag = collect_status(self.settings).get("lag") or {}
            if all(not lag.get(group) for group in running):
                return
            time.sleep(0.5)

    def shutdown_broker(self) -> None:
        self.broker.stop()


def run_up(settings: Settings, options: UpOptions) -> dict[str, Any]:
    """Run the stack; return the final status (printed by the CLI as the last stdout line)."""
    stack = Stack(settings, options)
    signal.signal(signal.SIGTERM, stack.request_stop)
    signal.signal(signal.SIGINT, stack.request_stop)
    try:
        stack.start()
        stack.feed()
        stack.wait()
        stack.stop(drain=not stack.stopping)
        return collect_status(stack.settings)
    finally:
        stack.stop()
        stack.shutdown_broker()


def status_line(status: dict[str, Any]) -> str:
    return json.dumps(status, default=str, sort_keys=True)
