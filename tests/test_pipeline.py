"""End to end through a real broker process: raw -> classify -> scored -> sink -> store, with bad input,
crashes and a consumer group sharing work. Workers are real `finmon worker` processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.config import Settings
from monitor.kafka.broker import EmbeddedBroker, free_port
from monitor.kafka.client import make_producer
from monitor.records import RawItem, ScoredItem, decode_deadletter, encode
from monitor.status import collect_status
from monitor.store import Store
from tests.conftest import REPO, make_settings, settings_env
from tests.pipeline_helpers import (
    committed,
    drained,
    finish,
    make_feed,
    publish_feed,
    start_worker,
    topic_messages,
    wait_for,
)

pytestmark = pytest.mark.slow


def run_stages(settings: Settings) -> None:
    """Classify, then sink, each until idle (the sink must not go idle while the model is still loading)."""
    for stage in ("classify", "sink"):
        finish(start_worker(settings, stage, "--stop-after-idle", "4"))


def test_bad_input_is_dead_lettered_and_everything_is_conserved(broker: EmbeddedBroker, store_url: str) -> None:
    settings = make_settings(broker.bootstrap, store_url)
    feed = make_feed(200)
    publish_feed(settings, feed)
    run_stages(settings)

    store = Store(store_url)
    assert set(store.scored_ids()) == feed.good_ids  # every good record stored, exactly once (primary key)
    reasons = store.count_dead_letters()
    assert reasons == dict(Counter(feed.bad.values()))
    letters = [decode_deadletter(v) for v in topic_messages(settings, settings.kafka.topics.deadletter)]
    assert sorted(letter.reason for letter in letters) == sorted(feed.bad.values())
    assert all(letter.detail and letter.stage == "classify" for letter in letters)
    assert {letter.payload for letter in letters} == {feed.messages[i][1] for i in feed.bad}  # bytes kept whole

    status = collect_status(settings)
    assert status["published"] == len(feed.messages) == status["stored"] + status["dead_lettered"]
    assert status["scored"] == len(feed.good_ids)
    assert drained(settings, status)


def test_sigkill_mid_stream_loses_nothing_and_stores_nothing_twice(broker: EmbeddedBroker, sqlite_url: str) -> None:
    settings = make_settings(broker.bootstrap, sqlite_url)
    feed = make_feed(1500, bad_every=50)
    publish_feed(settings, feed)
    store = Store(sqlite_url)
    store.create_schema()
    classify, sink = start_worker(settings, "classify"), start_worker(settings, "sink")
    wait_for(lambda: store.count_scored() >= 200, timeout=180)
    for proc in (classify, sink):
        proc.kill()  # SIGKILL: no chance to commit or clean up
        proc.wait()
    assert store.count_scored() < len(feed.good_ids)  # really mid-stream

    run_stages(settings)
    assert sorted(store.scored_ids()) == sorted(feed.good_ids)
    assert sum(store.count_dead_letters().values()) == len(feed.bad)
    status = collect_status(settings)
    assert status["published"] == status["stored"] + status["dead_lettered"]


def test_duplicate_ids_are_dead_lettered_not_double_counted(broker: EmbeddedBroker, sqlite_url: str) -> None:
    settings = make_settings(broker.bootstrap, sqlite_url, partitions=2)
    feed = make_feed(40, bad_every=0)
    feed.messages += feed.messages[:5]  # the same five items published again
    publish_feed(settings, feed)
    run_stages(settings)
    status = collect_status(settings)
    assert status["stored"] == 40
    assert status["dead_letters_by_reason"] == {"duplicate_id": 5}
    assert status["published"] == status["stored"] + status["dead_lettered"] == 45


def classified(settings: Settings) -> int:
    """news.raw records the classify group has committed (news.scored also holds source marks)."""
    offsets = committed(settings, f"{settings.kafka.group_prefix}-classify", settings.kafka.topics.raw)
    return sum(o or 0 for o in offsets.values())


def test_two_classify_workers_share_partitions_and_take_over(broker: EmbeddedBroker, sqlite_url: str) -> None:
    settings = make_settings(broker.bootstrap, sqlite_url, partitions=4)
    first = make_feed(400, bad_every=0)
    publish_feed(settings, first)
    a, b = start_worker(settings, "classify"), start_worker(settings, "classify")
    wait_for(lambda: classified(settings) >= 400, timeout=180)
    a.send_signal(signal.SIGTERM)  # clean stop: finishes its batch, commits, stops (evicted after the session timeout)
    out_a, _ = finish(a)
    second = make_feed(300, bad_every=0, start_index=400)
    publish_feed(settings, second)
    wait_for(lambda: classified(settings) >= 700, timeout=180)
    b.send_signal(signal.SIGTERM)
    out_b, _ = finish(b)
    stats_a, stats_b = json.loads(out_a.splitlines()[-1]), json.loads(out_b.splitlines()[-1])
    assert stats_a["records_in"] > 0 and stats_b["records_in"] > 0  # the group split the first feed
    assert stats_b["records_in"] >= 300  # ...and the survivor took every partition for the second
    sink = start_worker(settings, "sink", "--stop-after-idle", "5")
    finish(sink)
    assert set(Store(sqlite_url).scored_ids()) == first.good_ids | second.good_ids


def test_finmon_up_runs_the_stack_and_prints_status_last(tmp_path: Path) -> None:
    feed_path = tmp_path / "feed.jsonl"
    feed = make_feed(60, bad_every=15)
    feed_path.write_bytes(b"\n".join(v for _, v in feed.messages))  # broken lines included
    env = settings_env(make_settings(f"127.0.0.1:{free_port()}", f"sqlite:///{tmp_path / 'up.db'}"))
    cmd = [
        sys.executable,
        "-m",
        "pipelines.cli",
        "up",
        "--feed",
        str(feed_path),
        "--no-dashboard",
        "--stop-after-idle",
        "4",
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    status = json.loads(proc.stdout.strip().splitlines()[-1])
    assert status["published"] > 0
    assert status["published"] == status["stored"] + status["dead_lettered"]
    assert all(isinstance(status[k], int) for k in ("published", "scored", "stored", "dead_lettered"))
    assert set(status["lag"].values()) == {0}
    # on CPU, one single-threaded classify worker per core (up to the partitions): each of them worked
    from monitor.store.heartbeats import heartbeats
    from pipelines.stack import classify_workers

    workers, threads = classify_workers(make_settings("x:1", "sqlite://"))
    assert f"classify: {workers} worker(s), {threads or 'default'} torch thread(s) each" in proc.stderr
    beats = [b for b in heartbeats(Store(f"sqlite:///{tmp_path / 'up.db'}").engine) if b["stage"] == "classify"]
    assert len({b["worker"] for b in beats}) == workers and all(b["records_in"] > 0 for b in beats)


def test_auto_classify_workers_follow_the_cores_and_partitions(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.stack import classify_workers

    settings = make_settings("x:1", "sqlite://", partitions=4)
    for cores, want in ((1, (1, 1)), (2, (2, 1)), (3, (3, 1)), (16, (4, 4))):
        monkeypatch.setattr("os.cpu_count", lambda cores=cores: cores)
        assert classify_workers(settings.model_copy(update={"classify": settings.classify.model_copy(
            update={"device": "cpu"})})) == want
    chosen = settings.classify.model_copy(update={"workers": 3, "device": "cpu"})
    assert classify_workers(settings.model_copy(update={"classify": chosen})) == (3, 5)  # 16 cores / 3
    gpu = settings.classify.model_copy(update={"device": "cuda"})
    assert classify_workers(settings.model_copy(update={"classify": gpu})) == (1, None)


def test_worker_waits_for_an_unreachable_broker_then_works(tmp_path: Path) -> None:
    port = free_port()
    url = f"sqlite:///{tmp_path / 'late.db'}"
    settings = make_settings(f"127.0.0.1:{port}", url, partitions=1)
    sink = start_worker(settings, "sink", "--stop-after-idle", "4")  # no broker yet
    time.sleep(4)
    assert sink.poll() is None  # still retrying, not crashed
    with EmbeddedBroker(port):
        producer = make_producer(settings)
        items = [scored_item(f"late-{i}") for i in range(20)]
        for item in items:
            producer.send(settings.kafka.topics.scored, key=item.item.id.encode(), value=encode(item))
        producer.flush()
        producer.close()
        _, err = finish(sink)
    assert "unreachable" in err
    assert sorted(Store(url).scored_ids()) == sorted(item.item.id for item in items)


def scored_item(item_id: str) -> ScoredItem:
    now = datetime(2025, 1, 6, 15, tzinfo=UTC)
    raw = RawItem(id=item_id, title=f"Acme update {item_id}", published_at=now, tickers=("ACME",))
    return ScoredItem(
        item=raw,
        topic="Earnings",
        topic_probs={"Earnings": 1.0},
        sentiment="neutral",
        sentiment_probs={"negative": 0.1, "neutral": 0.8, "positive": 0.1},
        model_version="test",
        scored_at=now,
        src_partition=0,
        src_offset=int(item_id.rsplit("-", 1)[1]),
    )
