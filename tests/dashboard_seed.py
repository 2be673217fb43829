"""A realistic store for dashboard tests and benchmarks: the demo feed scored by the shipped model, windows
computed by the real aggregator, a few dead letters and a price series."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from monitor.alerts.lifecycle import AlertEvaluator
from monitor.alerts.rules import load_rules
from monitor.classify.engine import load_classifier
from monitor.clock import to_micros
from monitor.config import Settings, load_settings
from monitor.records import DeadLetter, RawItem, ScoredItem
from monitor.sources.files import FileSource
from monitor.store import Store
from monitor.store.heartbeats import beat
from monitor.store.prices import upsert_prices
from monitor.windows.aggregator import Delivery, WindowAggregator
from pipelines.replay import DEMO_FEED


def scored_demo_items() -> list[ScoredItem]:
    records = FileSource(DEMO_FEED).records()
    classifier = load_classifier(None)
    predictions = classifier.predict([r["title"] for r in records])
    items = []
    for offset, (rec, pred) in enumerate(zip(records, predictions, strict=True)):
        when = datetime.fromisoformat(rec["published_at"].replace("Z", "+00:00"))
        raw = RawItem(
            id=rec["id"],
            title=rec["title"],
            published_at=when,
            source=rec["source"],
            url=rec["url"],
            tickers=tuple(rec.get("tickers", ())),
        )
        items.append(
            ScoredItem(
                item=raw,
                topic=pred.topic,
                topic_probs=pred.topic_probs,
                sentiment=pred.sentiment,
                sentiment_probs=pred.sentiment_probs,
                model_version=classifier.version,
                scored_at=when + timedelta(seconds=2),
                src_partition=0,
                src_offset=offset,
            )
        )
    return items


def replay_alert_evaluation(store: Store, settings: Settings, items: list[ScoredItem]) -> None:
    """Run the shipped rules over the demo period every 5 minutes of event time, as the alert stage would."""
    evaluator = AlertEvaluator(store, load_rules(settings.alerts.rules_file))
    now, end = items[0].item.published_at, items[-1].item.published_at + timedelta(hours=6)
    while now <= end:
        evaluator.evaluate(now)
        now += timedelta(minutes=5)


def seed(store_url: str) -> list[ScoredItem]:
    settings = load_settings(None, store_url=store_url)
    store = Store(store_url)
    store.create_schema()
    items = scored_demo_items()
    store.upsert_scored(items, datetime(2025, 3, 6, tzinfo=UTC))
    aggregator = WindowAggregator(store, settings.windows, settings.kafka.topics.scored, settings.stories)
    aggregator.apply([Delivery(0, i, item) for i, item in enumerate(items)])
    with store.engine.begin() as conn:  # no source marks in a seed: settle every story, as an idle stream does
        aggregator.settle_stories(conn, max(to_micros(s.item.published_at) for s in items) + 1)
    store.add_dead_letters(
        [
            DeadLetter(
                payload=b"{broken",
                topic="news.raw",
                partition=0,
                offset=9000 + i,
                stage="classify",
                reason=reason,
                detail=f"example {reason}",
                at=datetime(2025, 3, 4, tzinfo=UTC),
            )
            for i, reason in enumerate(["malformed_json", "malformed_json", "timestamp_out_of_range"])
        ],
        datetime(2025, 3, 4, tzinfo=UTC),
    )
    replay_alert_evaluation(store, settings, items)
    for i, stage in enumerate(("classify", "sink", "aggregate", "alerting")):
        when = datetime(2025, 3, 6, tzinfo=UTC)
        beat(
            store.engine,
            {
                "worker": f"seed-host:{100 + i}",
                "stage": stage,
                "started_at": when,
                "updated_at": when,
                "stopped_at": None,
                "assigned": [f"news.raw[{i}]"],
                "records_in": 380,
                "messages_out": 380,
                "dead_letters": 0,
                "batches": 4,
                "records_per_s": 12.5 * (i + 1),
                "mean_batch": 95.0,
                "lag": {f"news.raw[{i}]": 4 * i},
            },
        )
    upsert_prices(store.engine, [("HALC", date(2025, 3, d), 100.0 - 3 * (d - 1)) for d in range(1, 8)])
    return items
