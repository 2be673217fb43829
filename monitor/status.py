"""`finmon status`: the counts that let anyone check conservation (published = stored + dead-lettered once
every lag is 0) and each consumer group's lag, computed from high-water marks and committed offsets."""

from __future__ import annotations

import logging
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from monitor.app import stage_topics
from monitor.clock import INSTANT, from_micros
from monitor.config import Settings
from monitor.core.streamtime import StoredMark, complete_time, processed_time
from monitor.errors import BrokerError, StoreError
from monitor.kafka.client import group_name, highwaters, make_consumer, partitions_of
from monitor.store import Store
from monitor.store.sources import marks_sent, stream_clock_marks

log = logging.getLogger(__name__)
RAW_OUTCOME_STAGES = ("classify", "sink")


def _quick(settings: Settings) -> Settings:
    """Status must answer fast: don't wait two minutes for a broker that is down."""
    kafka = settings.kafka.model_copy(update={"connect_retry_s": 3.0})
    return settings.model_copy(update={"kafka": kafka})


def kafka_counts(settings: Settings) -> dict[str, Any]:
    settings = _quick(settings)
    consumer = make_consumer(settings, None, client_id="finmon-status")
    try:
        topics = settings.kafka.topics.model_dump()
        tps = [tp for name in topics.values() for tp in partitions_of(consumer, name, timeout=3)]
        marks = highwaters(consumer, tps)
    finally:
        consumer.close(autocommit=False)
    per_topic = {name: sum(n for tp, n in marks.items() if tp.topic == name) for name in topics.values()}
    return {"marks": marks, "per_topic": per_topic, "lag": _lags(settings, marks)}


def _lags(settings: Settings, marks: dict[TopicPartition, int]) -> dict[str, int]:
    lags = {}
    for stage, topics in stage_topics(settings).items():
        group = group_name(settings, stage)
        consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap, group_id=group, enable_auto_commit=False)
        try:
            # The marks were read a moment earlier than the commits: a busy group can be past them; that is 0 lag.
            lags[group] = sum(max(mark - (consumer.committed(tp) or 0), 0) for tp, mark in marks.items()
                              if tp.topic in topics)
        finally:
            consumer.close(autocommit=False)
    return lags


def collect_status(settings: Settings) -> dict[str, Any]:
    """One JSON-able object: published, scored, stored, dead_lettered, lag, and details."""
    out: dict[str, Any] = {"published": None, "scored": None, "stored": None, "dead_lettered": None, "lag": {}}
    try:
        counts = kafka_counts(settings)
        topics = settings.kafka.topics
        out.update(
            published=counts["per_topic"][topics.raw],
            scored=counts["per_topic"][topics.scored],
            lag=counts["lag"],
            topics=counts["per_topic"],
            broker="ok",
        )
    except BrokerError as exc:
        out["broker"] = f"unreachable: {exc}"
    try:
        store = Store(settings.store_url)
        store.create_schema()
        # Conservation is about news.raw records: each is stored once or dead-lettered once by classify/sink.
        # Later stages dead-letter *copies* (e.g. aggregate's `late`): reported per stage, not in that sum.
        reasons = store.count_dead_letters(stages=RAW_OUTCOME_STAGES)
        out.update(stored=store.count_scored(), dead_lettered=sum(reasons.values()), dead_letters_by_reason=reasons,
                   dead_letters_by_stage=store.count_dead_letters_by_stage(), store="ok")
        with store.engine.connect() as conn:
            out["stream_time"] = stream_time(settings, stream_clock_marks(conn, settings.kafka.topics.scored))
            if out["scored"] is not None:  # news.scored also carries classify's source marks: count items only
                out["source_marks"] = marks_sent(conn, settings.kafka.topics.scored)
                out["scored"] = max(out["scored"] - out["source_marks"], 0)
        store.dispose()
    except (StoreError, Exception) as exc:
        out["store"] = f"error: {exc}"
    return out


def stream_time(settings: Settings, marks: list[StoredMark]) -> dict[str, Any]:
    """How far the windows are: `processed` (every source's news up to here is in them), `complete` (windows
    ending before it are final), `idle` (every source is idle); times ISO-8601 UTC, null before any mark."""
    processed, idle = processed_time(marks)
    complete = complete_time(marks, settings.windows.grace // INSTANT)
    return {"processed": _iso_us(processed), "complete": _iso_us(complete), "idle": idle,
            "sources": len({m.source for m in marks})}


def _iso_us(us: int | None) -> str | None:
    return None if us is None else from_micros(us).isoformat().replace("+00:00", "Z")
