"""The publishers' outbox: entries kept until stored or dead-lettered (SQLite and PostgreSQL), records still in a
healthy broker left alone, and what a restarted broker lost published again, byte for byte, by a resumed
replay and by `finmon ingest` (a fresh one, and one that kept running). No workers here: the pipeline's
outcomes are written into the store directly; tests/test_outbox_restart.py runs the real stages."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer

from monitor.config import Settings
from monitor.kafka.broker import EmbeddedBroker, free_port
from monitor.kafka.client import highwaters, partitions_of
from monitor.records import DeadLetter, RawItem, ScoredItem
from monitor.sources.logcheck import still_in_log
from monitor.sources.outbox import content_id
from monitor.sources.publish import publish
from monitor.store import Store
from monitor.store.outbox import Outbox, OutboxEntry, payload_hash
from tests.conftest import make_settings
from tests.test_ingest import FeedServer, config_for, feed_server, ingestor  # noqa: F401  (feed_server: fixture)

T0 = datetime(2025, 1, 6, 14, tzinfo=UTC)
TOPIC = "t.raw"


def entry(item_id: str, offset: int, payload: bytes | None = None) -> OutboxEntry:
    return OutboxEntry(TOPIC, item_id, payload or f'{{"id":"{item_id}"}}'.encode(), 0, offset, T0)


def scored(item_id: str, partition: int = 0, offset: int = 0) -> ScoredItem:
    raw = RawItem(id=item_id, title=f"Acme update {item_id}", published_at=T0, tickers=("ACME",))
    probs = {"negative": 0.1, "neutral": 0.8, "positive": 0.1}
    return ScoredItem(raw, "Earnings", {"Earnings": 1.0}, "neutral", probs, "test", T0, partition, offset)


def dead_letter(key: bytes | None, payload: bytes = b"{", topic: str = TOPIC, offset: int = 0) -> DeadLetter:
    return DeadLetter(payload, topic, 0, offset, "classify", "malformed_json", "bad", T0, key)


def test_entries_stay_until_stored_or_dead_lettered_then_are_pruned(store_url: str) -> None:
    store = Store(store_url)
    store.create_schema()
    outbox = Outbox(store.engine)
    outbox.record([entry(f"e{i}", i) for i in range(6)], T0)
    store.upsert_scored([scored("e0")], T0)
    store.add_dead_letters([
        dead_letter(b"e1", b'{"id":"e1"}', offset=1),
        dead_letter(b"e2", b'{"id":"e2"}', topic="other.raw", offset=2),  # another topic's
        dead_letter(b"e3", b'{"id":"e3","old":1}', offset=3),  # an earlier version of e3, since corrected
        dead_letter(b"x" * 100_000, offset=4), dead_letter(None, offset=5),
    ], T0)  # fmt: skip
    assert [e.item_id for e in outbox.pending(TOPIC)] == ["e2", "e3", "e4", "e5"]
    assert outbox.done(TOPIC, {"e0": "?", "e1": payload_hash(b'{"id":"e1"}'), "e2": "?", "new": "?"}) == {"e0", "e1"}

    outbox.record([entry("e3", 30, b"copy")], T0 + timedelta(hours=2))  # published again: points at the new copy
    moved = {e.item_id: e for e in outbox.entries(TOPIC)}["e3"]
    assert (moved.offset, moved.queued_at) == (30, T0)  # ...and was queued when first published
    assert outbox.payloads(TOPIC, ["e3", "e4"]) == {"e3": b"copy", "e4": b'{"id":"e4"}'}

    stale = {e.item_id: e for e in outbox.pending(TOPIC)}
    assert [e.item_id for e in outbox.claim([stale["e3"], stale["e4"]])] == ["e3", "e4"]
    assert outbox.claim([stale["e4"]]) == []  # taken already: a second recoverer does not send it again

    assert outbox.prune(TOPIC, expire_before=T0 - timedelta(days=1)) == (2, 0)
    assert outbox.count(TOPIC) == 4
    assert outbox.prune(TOPIC, expire_before=T0 + timedelta(seconds=1)) == (0, 4)
    assert outbox.count() == 0
    store.dispose()


def feed_records(n: int) -> list[dict[str, Any]]:
    return [{"id": f"item-{i}", "title": f"Acme headline {i}", "published_at": (T0 + timedelta(minutes=i)).isoformat(),
             "tickers": ["ACME"]} for i in range(n)]  # fmt: skip


LINE = b'{"id": "broken", "title": '  # not JSON: published as it is, keyed by its bytes


def raw_records(settings: Settings) -> list[tuple[bytes, bytes]]:
    """(key, value) of every record in news.raw."""
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False)
    tps = partitions_of(consumer, settings.kafka.topics.raw)
    marks = highwaters(consumer, tps)
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    out: list[tuple[bytes, bytes]] = []
    while any(consumer.position(tp) < marks[tp] for tp in tps):
        for records in consumer.poll(timeout_ms=500).values():
            out.extend((r.key, r.value) for r in records)
    consumer.close()
    return out


def test_a_resumed_replay_skips_what_is_in_flight_in_a_healthy_broker(broker: EmbeddedBroker, store_url: str) -> None:
    settings = make_settings(broker.bootstrap, store_url, partitions=2)
    records = feed_records(5)
    first = publish(settings, records, progress=False, unparsed=[LINE])
    assert (first.published, first.republished, first.skipped) == (6, 0, 0)
    sent = raw_records(settings)
    assert sorted(key for key, _ in sent) == sorted([f"item-{i}".encode() for i in range(5)] +
                                                    [content_id(LINE).encode()])
    resumed = publish(settings, records, progress=False, unparsed=[LINE])  # nothing scored yet: all in flight
    assert (resumed.published, resumed.republished, resumed.skipped) == (0, 0, 6)
    again = publish(settings, records, progress=False, unparsed=[LINE], resume=False)
    assert again.published == 6 and len(raw_records(settings)) == 12


def test_a_restarted_broker_gets_back_what_it_lost_byte_for_byte(store_url: str, tmp_path: Path) -> None:
    port = free_port()
    first = EmbeddedBroker(port, log_path=tmp_path / "broker.log").start()
    settings = make_settings(first.bootstrap, store_url, partitions=2, outbox={"settle_s": 0.2})
    records = feed_records(8)
    try:
        publish(settings, records, progress=False, unparsed=[LINE])
        sent = dict(raw_records(settings))
        store = Store(store_url)
        store.upsert_scored([scored("item-0"), scored("item-1", offset=1), scored("item-2", offset=2)], T0)
        store.add_dead_letters([dead_letter(content_id(LINE).encode(), LINE, topic=settings.kafka.topics.raw)], T0)
    finally:
        first.kill()
    with EmbeddedBroker(port, log_path=tmp_path / "broker.log"):
        resumed = publish(settings, records, progress=False, unparsed=[LINE])
        assert (resumed.republished, resumed.published, resumed.skipped) == (5, 0, 9)
        lost = {f"item-{i}".encode() for i in range(3, 8)}  # not stored, not dead-lettered
        assert dict(raw_records(settings)) == {key: value for key, value in sent.items() if key in lost}
        outbox = Outbox(store.engine)
        pending = outbox.pending(settings.kafka.topics.raw)
        assert still_in_log(settings, settings.kafka.topics.raw, pending, 10) == {e.item_id for e in pending}
        assert publish(settings, records, progress=False, unparsed=[LINE]).republished == 0
    store.dispose()


def test_ingest_republishes_after_a_broker_restart_at_start_and_while_running(
    sqlite_url: str, tmp_path: Path, feed_server: FeedServer  # noqa: F811
) -> None:
    port = free_port()
    broker = EmbeddedBroker(port, log_path=tmp_path / "broker.log").start()
    settings = make_settings(broker.bootstrap, sqlite_url, outbox={"settle_s": 0})
    config = config_for(tmp_path, feed_server, [{"name": "wire", "path": "/nocache.xml"}])
    running = ingestor(settings, config)
    try:
        assert [r.new for r in running.run_once()] == [3]
        outbox = Outbox(running.store.engine)
        assert outbox.count() == 3 and running.state.count_seen() >= 3  # written together
        ids = sorted(key for key, _ in raw_records(settings))
        broker.kill()
        broker = EmbeddedBroker(port, log_path=tmp_path / "broker.log").start()
        with ingestor(settings, config) as restarted:  # `finmon ingest` started again
            [result] = restarted.run_once()
        assert (result.new, result.duplicates) == (0, 3)  # seen, yet not lost: the outbox sent them again
        assert sorted(key for key, _ in raw_records(settings)) == ids

        broker.kill()
        broker = EmbeddedBroker(port, log_path=tmp_path / "broker.log").start()
        # The ingest that kept running: its producer is stale after the restart; a failed check drops it, and
        # one of the next checks re-publishes.
        checks = [running.recover_outbox() for _ in range(3)]
        assert sum(c.republished for c in checks if c is not None) == 3
        assert sorted(key for key, _ in raw_records(settings)) == ids
    finally:
        running.close()
        broker.stop()


def test_replay_command_says_what_it_resumed(broker: EmbeddedBroker, sqlite_url: str, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from pipelines.replay import command

    settings = make_settings(broker.bootstrap, sqlite_url)
    path = tmp_path / "feed.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in feed_records(4)))
    first = CliRunner().invoke(command, [str(path)], obj=settings)
    assert first.exit_code == 0, first.output
    assert "published 4 items" in first.stderr
    Store(sqlite_url).upsert_scored([scored("item-0")], T0)
    second = CliRunner().invoke(command, [str(path)], obj=settings)
    assert "published 0 items" in second.stderr and "skipped 4" in second.stderr
    assert len(raw_records(settings)) == 4
