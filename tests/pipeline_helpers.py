"""Helpers for the end-to-end tests: feeds with planted bad records, finmon child processes, waiting."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from kafka import KafkaConsumer, KafkaProducer

from monitor.config import Settings
from monitor.kafka.client import ensure_topics, highwaters, partitions_of
from tests.conftest import REPO, settings_env

HEADLINES = [
    "{c} beats quarterly profit estimates and raises guidance",
    "{c} shares slump after regulator opens probe",
    "{c} to present at investor conference next month",
    "Analysts downgrade {c} on weak demand outlook",
    "{c} announces record buyback and dividend increase",
    "{c} names new chief financial officer",
]
COMPANIES = ["Acme Corp", "Globex", "Initech", "Umbrella Holdings", "Hooli", "Vandelay Industries"]


@dataclass
class Feed:
    messages: list[tuple[bytes, bytes]] = field(default_factory=list)
    good_ids: set[str] = field(default_factory=set)
    bad: dict[int, str] = field(default_factory=dict)  # index in messages -> expected reason


def good_item(i: int, base: datetime) -> dict[str, object]:
    company = COMPANIES[i % len(COMPANIES)]
    return {
        "id": f"item-{i}",
        "published_at": (base + timedelta(seconds=30 * i)).isoformat(),
        "title": HEADLINES[i % len(HEADLINES)].format(c=company),
        "source": "test",
        "tickers": [f"T{i % 7}"],
    }


BAD_MAKERS: list[tuple[str, Callable[[int, datetime], bytes]]] = [
    ("malformed_json", lambda i, b: b'{"id": "broken-%d", "title": ' % i),
    ("missing_field", lambda i, b: json.dumps({"id": f"notext-{i}", "published_at": b.isoformat()}).encode()),
    ("not_utf8", lambda i, b: b'{"id": "bin-%d", "title": "\xff\xfe caf\xe9"}' % i),
    (
        "text_too_large",
        lambda i, b: json.dumps(
            {"id": f"huge-{i}", "published_at": b.isoformat(), "title": "x" * (1024 * 1024)}
        ).encode(),
    ),
    (
        "timestamp_out_of_range",
        lambda i, b: json.dumps(
            {"id": f"old-{i}", "title": "Old news", "published_at": "1900-01-01T00:00:00Z"}
        ).encode(),
    ),
    (
        "timestamp_out_of_range",
        lambda i, b: json.dumps(
            {"id": f"future-{i}", "title": "Future news", "published_at": "2300-01-01T00:00:00Z"}
        ).encode(),
    ),
]


def make_feed(n: int, bad_every: int = 20, start_index: int = 0) -> Feed:
    """n messages; every `bad_every`-th is bad (5% by default), cycling through the kinds of bad input."""
    feed, base = Feed(), datetime(2025, 1, 6, 14, tzinfo=UTC)
    for i in range(start_index, start_index + n):
        if bad_every and i % bad_every == bad_every - 1:
            reason, make = BAD_MAKERS[(i // bad_every) % len(BAD_MAKERS)]
            feed.bad[len(feed.messages)] = reason
            feed.messages.append((f"bad-{i}".encode(), make(i, base)))
        else:
            item = good_item(i, base)
            feed.good_ids.add(str(item["id"]))
            feed.messages.append((str(item["id"]).encode(), json.dumps(item).encode()))
    return feed


def publish_feed(settings: Settings, feed: Feed) -> None:
    ensure_topics(settings)
    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap, acks="all", enable_idempotence=True, max_request_size=8 * 1024 * 1024
    )
    for key, value in feed.messages:
        producer.send(settings.kafka.topics.raw, key=key, value=value)
    producer.flush()
    producer.close()


def start_worker(
    settings: Settings, stage: str, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """A `finmon worker` child process; its output goes to temporary files (pipes could fill and block it)."""
    cmd = [sys.executable, "-m", "pipelines.cli", "worker", stage, *extra]
    out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env or settings_env(settings), stdout=out, stderr=err, text=True)
    proc.output_files = (out, err)  # type: ignore[attr-defined]
    return proc


def finish(proc: subprocess.Popen[str], timeout: float = 180) -> tuple[str, str]:
    """Wait for a worker to exit by itself; return its stdout and stderr; fail if it did not exit with 0."""
    proc.wait(timeout=timeout)
    out, err = (_read(f) for f in proc.output_files)  # type: ignore[attr-defined]
    assert proc.returncode == 0, f"worker failed ({proc.returncode}):\n{err[-4000:]}"
    return out, err


def _read(handle: tempfile._TemporaryFileWrapper) -> str:  # type: ignore[type-arg]
    handle.seek(0)
    return handle.read()


def wait_for(
    predicate: Callable[[], bool],
    timeout: float = 120,
    every: float = 0.5,
    describe: Callable[[], object] | None = None,
) -> None:
    """Poll until predicate() holds; on timeout fail with describe()'s account of the state, if given."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    state = f": {describe()}" if describe is not None else ""
    raise AssertionError(f"condition not met within {timeout}s{state}")


def topic_messages(settings: Settings, topic: str) -> list[bytes]:
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=16 * 1024 * 1024
    )
    tps = partitions_of(consumer, topic)
    marks = highwaters(consumer, tps)
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    out: list[bytes] = []
    deadline = time.monotonic() + 30
    while any(consumer.position(tp) < marks[tp] for tp in tps) and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            out.extend(r.value for r in records)
    consumer.close()
    return out


def topic_count(settings: Settings, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False)
    try:
        return sum(highwaters(consumer, partitions_of(consumer, topic)).values())
    finally:
        consumer.close()


def committed(settings: Settings, group: str, topic: str) -> dict[int, int | None]:
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {tp.partition: consumer.committed(tp) for tp in partitions_of(consumer, topic)}
    finally:
        consumer.close()


def lags_of(settings: Settings, status: dict[str, object], stages: tuple[str, ...] = ("classify", "sink")) -> list[int]:
    """The lag of the consumer groups a test actually runs (others, e.g. aggregate, have no member)."""
    lag = status.get("lag") or {}
    assert isinstance(lag, dict)
    return [int(lag[f"{settings.kafka.group_prefix}-{stage}"]) for stage in stages if lag]


def drained(settings: Settings, status: dict[str, object], stages: tuple[str, ...] = ("classify", "sink")) -> bool:
    lags = lags_of(settings, status, stages)
    return bool(lags) and set(lags) == {0}
