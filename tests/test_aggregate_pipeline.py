"""The aggregate (and alerting) stages as real `finmon worker` processes on a real broker.

- SIGKILL mid-stream + restart gives exactly the windows of an uninterrupted run (and the same late counts),
  on a feed with out-of-order records, redundant duplicates and records later than the grace.
- A burst of negative headlines about one ticker fires the default rules for that ticker only, resolves
  after the burst, and does not re-notify inside the repeat interval (webhook received over HTTP).
- Both runs publish every accepted item's settled story to `news.stories`, as their stores hold it.
- The alerting worker publishes transitions to the `alerts` topic; a feed goes raw -> classify -> aggregate.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
from kafka import KafkaProducer

from monitor.clock import ManualClock, to_micros
from monitor.config import Settings
from monitor.core.lateness import decide_all
from monitor.kafka.broker import EmbeddedBroker
from monitor.kafka.client import ensure_topics
from monitor.records import ScoredItem, SourceMark, decode_deadletter, decode_settled_story, encode
from monitor.stages.classify import scored_key
from monitor.store import Store
from monitor.store import alerts as astore
from monitor.store import windows as wstore
from monitor.store.schema import aggregate_items
from tests.alert_feed import BASE, BURST_END, BURST_START, HOT, burst_feed, item
from tests.conftest import REPO, make_settings, settings_env
from tests.pipeline_helpers import finish, publish_feed, start_worker, topic_messages, wait_for
from tests.test_alerts import Receiver, run, service_for

pytestmark = pytest.mark.slow


def messy_feed() -> list[ScoredItem]:
    """The burst feed, locally shuffled (out of order within the grace), 40 items two hours late."""
    items = burst_feed()
    rng = random.Random(5)
    for i in range(0, len(items) - 6, 6):
        chunk = items[i : i + 6]
        rng.shuffle(chunk)
        items[i : i + 6] = chunk
    late = [item(f"late-{j}", "QA", BASE + timedelta(minutes=j), "negative") for j in range(40)]
    return items[:500] + late + items[500:]


def as_classified(settings: Settings, items: list[ScoredItem]) -> list[ScoredItem]:
    """The items as one classify worker reading them from one news.raw partition publishes them: with the
    lateness their source order gives (monitor/core/lateness.py)."""
    grace_us = settings.windows.grace // timedelta(microseconds=1)
    verdicts = decide_all([(0, to_micros(s.item.published_at)) for s in items], grace_us)
    return [replace(s, late=v.late, src_partition=0, src_offset=i) for i, (s, v) in enumerate(zip(items, verdicts,
                                                                                                   strict=True))]


def publish_scored(settings: Settings, items: list[ScoredItem], repeats: int = 0) -> None:
    """Scored items, then the idle source mark a caught-up classify worker sends to every partition."""
    ensure_topics(settings)
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap, acks="all", enable_idempotence=True)
    items = as_classified(settings, items)
    for scored in [*items, *items[:repeats]]:  # a publisher retrying: the same records again
        producer.send(settings.kafka.topics.scored, key=scored_key(scored), value=encode(scored))
    last = max(s.item.published_at for s in items)
    parts = settings.kafka.partitions
    mark = SourceMark(settings.kafka.topics.raw, 0, len(items) - 1, last, True, parts, last)
    for partition in range(parts):
        producer.send(settings.kafka.topics.scored, key=b"mark:0", value=encode(mark), partition=partition)
    producer.flush()
    producer.close()


def other_run(settings: Settings, store_url: str) -> Settings:
    """Same topics, another consumer group and store: an independent run over the same stream."""
    kafka = settings.kafka.model_copy(update={"group_prefix": settings.kafka.group_prefix + "b"})
    return settings.model_copy(update={"store_url": store_url, "kafka": kafka})


def env_with(settings: Settings, **extra: str) -> dict[str, str]:
    return {**settings_env(settings), **extra}


def stored_windows(url: str) -> pd.DataFrame:
    with Store(url).engine.connect() as conn:
        frame = wstore.all_windows(conn)
    return frame.drop(columns=["window_start", "window_end"]).reset_index(drop=True)


def count_items(store: Store) -> int:
    with store.engine.connect() as conn:
        return len(conn.execute(aggregate_items.select()).all())


@pytest.fixture
def webhook() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.received = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def test_sigkill_and_restart_equal_an_uninterrupted_run_and_alerts_fire_for_the_burst(
    broker: EmbeddedBroker, tmp_path: Path, webhook: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    crashed = make_settings(broker.bootstrap, f"sqlite:///{tmp_path / 'crashed.db'}", partitions=3)
    steady = other_run(crashed, f"sqlite:///{tmp_path / 'steady.db'}")
    feed = messy_feed()
    publish_scored(crashed, feed, repeats=60)
    store = Store(crashed.store_url)
    store.create_schema()

    small_batches = env_with(crashed, FINMON_WINDOWS__MAX_BATCH="25")
    first = start_worker(crashed, "aggregate", env=small_batches)
    wait_for(lambda: count_items(store) >= 150, timeout=120, every=0.05)
    first.kill()  # SIGKILL: no chance to commit or clean up
    first.wait()
    assert count_items(store) < len(feed)  # really mid-stream
    finish(start_worker(crashed, "aggregate", "--stop-after-idle", "4", env=small_batches))
    finish(start_worker(steady, "aggregate", "--stop-after-idle", "4"))

    pd.testing.assert_frame_equal(stored_windows(crashed.store_url), stored_windows(steady.store_url))
    with Store(crashed.store_url).engine.connect() as a, Store(steady.store_url).engine.connect() as b:
        assert wstore.late_counts(a) == wstore.late_counts(b) == {"market": 40, "topic:markets": 40, "ticker:QA": 40}
    letters = [decode_deadletter(v) for v in topic_messages(crashed, crashed.kafka.topics.deadletter)]
    late = {(d.partition, d.offset) for d in letters if d.reason == "late" and d.stage == "aggregate"}
    assert len(late) == 40  # each late record dead-lettered (twice: once per run, same positions)
    latest = {}
    for raw in topic_messages(crashed, crashed.kafka.topics.windows):  # per key in order: the last one wins
        row = json.loads(raw)
        latest[(row["key"], row["size"], row["window_start"])] = row["count"]
    windows = stored_windows(steady.store_url)
    assert len(latest) == len(windows)
    # every accepted item's story reached news.stories (at least once), as both stores settled it: the
    # runs share the topic, and a copy sent again after the SIGKILL is identical
    with Store(crashed.store_url).engine.connect() as a, Store(steady.store_url).engine.connect() as b:
        settled = [{r.item_id: (r.story_id, r.novelty) for r in c.execute(aggregate_items.select()) if r.story_id}
                   for c in (a, b)]
    assert settled[0] == settled[1] and len(settled[0]) == len({s.item.id for s in feed}) - 40
    sent = [decode_settled_story(v) for v in topic_messages(crashed, crashed.kafka.topics.stories)]
    assert {(s.id, s.story_id, s.novelty) for s in sent} == {(i, *v) for i, v in settled[0].items()}

    # the default rules over the windows the workers computed: HOT fires, quiet tickers stay quiet
    monkeypatch.setenv("T_HOOK_URL", f"http://127.0.0.1:{webhook.server_port}/hook")
    rules = (
        Path(REPO / "monitor/data/rules.yaml")
        .read_text(encoding="utf-8")
        .replace("  log: {type: log}", "  log: {type: log}\n  hook: {type: webhook, url_env: T_HOOK_URL}")
        .replace("  channels: [log]", "  channels: [log, hook]")
    )
    clock = ManualClock(BASE)
    service = service_for(steady.store_url, Store(steady.store_url), clock, rules)
    run(service, clock, BURST_START - timedelta(minutes=20), BURST_END + timedelta(minutes=40))
    bodies = [body for _, body in webhook.received]  # type: ignore[attr-defined]
    ticker_notes = Counter(
        (b["rule"], b["kind"]) for b in bodies for a in b["alerts"] if a["key"].startswith("ticker:")
    )
    assert {a["key"] for b in bodies for a in b["alerts"] if a["key"].startswith("ticker:")} == {f"ticker:{HOT}"}
    rules_fired = {"negative-share-surge", "sentiment-drop", "volume-spike"}
    expected = {(r, k): 1 for r in rules_fired for k in ("firing", "resolved")}  # no repeats
    expected[("negative-story-burst", "firing")] = 1  # 15 distinct negative stories; its 1h window is still open
    assert ticker_notes == expected


def test_alerting_worker_publishes_transitions(broker: EmbeddedBroker, tmp_path: Path) -> None:
    settings = make_settings(broker.bootstrap, f"sqlite:///{tmp_path / 'a.db'}", partitions=2)
    cut = BURST_START + timedelta(minutes=7)  # the stream (and stream time) ends inside the burst
    publish_scored(settings, [s for s in burst_feed() if s.item.published_at < cut])
    finish(start_worker(settings, "aggregate", "--stop-after-idle", "3"))
    env = env_with(settings, FINMON_ALERTS__TIME_MODE="stream", FINMON_ALERTS__EVALUATE_EVERY_S="0.5")
    finish(start_worker(settings, "alerting", "--stop-after-idle", "4", env=env))
    events = [json.loads(v) for v in topic_messages(settings, settings.kafka.topics.alerts)]
    hot = {(e["rule"], e["state"]) for e in events if e["key"] == f"ticker:{HOT}"}
    assert ("volume-spike", "firing") in hot and ("negative-share-surge", "pending") in hot
    assert not [e for e in events if e["key"] in ("ticker:QA", "ticker:QB")]
    with Store(settings.store_url).engine.connect() as conn:
        assert len(astore.events(conn)) == len(events)  # every stored transition was published
    listed = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "alerts", "list", "--json"],
        cwd=REPO,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    states = {(a["rule"], a["key"]): a["state"] for a in json.loads(listed.stdout)}
    assert states[("volume-spike", f"ticker:{HOT}")] == "firing"


def test_raw_news_through_classify_into_windows(broker: EmbeddedBroker, tmp_path: Path) -> None:
    from tests.pipeline_helpers import Feed

    settings = make_settings(broker.bootstrap, f"sqlite:///{tmp_path / 'c.db'}", partitions=2)
    feed = Feed()
    titles = [
        "Apple beats profit estimates and raises guidance",
        "$TSLA shares slump after recall probe",
        "Microsoft names new chief financial officer",
        "Nvidia and $AMD rally on chip demand",
    ]
    for i in range(40):
        when = BASE + timedelta(minutes=3 * i)
        body = {"id": f"c{i}", "title": titles[i % 4], "published_at": when.isoformat(), "source": "t"}
        feed.messages.append((f"c{i}".encode(), json.dumps(body).encode()))
    publish_feed(settings, feed)
    finish(start_worker(settings, "classify", "--stop-after-idle", "4"), timeout=300)
    # lateness is decided per news.raw partition: a max-speed replay of an ordered feed has no late items
    finish(start_worker(settings, "aggregate", "--stop-after-idle", "4"))
    out = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "windows", "--key", "market", "--size", "1h", "--json"],
        cwd=REPO,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    market = json.loads(out.stdout)
    assert sum(w["count"] for w in market) == 40 and len(market) == 2
    assert all(
        -1 <= w["sentiment_index"] <= 1
        and abs(w["negative_share"] + w["neutral_share"] + w["positive_share"] - 1) < 1e-9
        for w in market
    )
    with Store(settings.store_url).engine.connect() as conn:
        keys = set(wstore.all_windows(conn, ["1d"])["key"])
    assert {"ticker:AAPL", "ticker:TSLA", "ticker:MSFT", "ticker:NVDA", "ticker:AMD"} <= keys
    assert any(k.startswith("topic:") for k in keys)
