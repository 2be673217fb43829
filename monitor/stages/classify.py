"""Classify stage: validate raw items, score them in micro-batches, publish scored items keyed by ticker/topic.

The model is reached only through the `Classifier` protocol, so this module knows nothing about torch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from monitor import metrics
from monitor.classify.base import Classifier
from monitor.clock import Clock
from monitor.config import Settings
from monitor.errors import RecordError
from monitor.kafka.stage import OutMessage, dead_letter_message
from monitor.records import RawItem, ScoredItem, decode_raw, encode, extract_cashtags

log = logging.getLogger(__name__)


class ClassifyProcessor:
    """news.raw records -> scored items (news.scored) or dead letters (news.deadletter)."""

    stage = "classify"

    def __init__(self, settings: Settings, classifier: Classifier, clock: Clock) -> None:
        self.settings, self.classifier, self.clock = settings, classifier, clock

    def process(self, records: Sequence[Any]) -> list[OutMessage]:
        now = self.clock.now()
        out: list[OutMessage] = []
        good: list[tuple[Any, RawItem]] = []
        for record in records:
            try:
                good.append((record, decode_raw(record.value, now, self.settings.limits)))
            except RecordError as exc:
                out.append(dead_letter_message(self.settings, record, self.stage, exc.reason, exc.detail, self.clock))
        if good:
            # A batch mixes raw partitions, each spanning its own stretch of time; emitting in event-time order
            # keeps news.scored close to ordered, so downstream watermarks rarely see a record as late.
            good.sort(key=lambda pair: pair[1].published_at)
            out.extend(self._score(good))
        return out

    def _score(self, good: list[tuple[Any, RawItem]]) -> list[OutMessage]:
        started = time.perf_counter()
        predictions = self.classifier.predict([item.text for _, item in good])
        metrics.MODEL_SECONDS.labels(self.stage).observe(time.perf_counter() - started)
        scored_at = self.clock.now()
        topic = self.settings.kafka.topics.scored
        out = []
        for (record, item), pred in zip(good, predictions, strict=True):
            tickers = tuple(dict.fromkeys(item.tickers + extract_cashtags(item.text)))
            scored = ScoredItem(
                item=replace(item, tickers=tickers),
                topic=pred.topic,
                topic_probs=pred.topic_probs,
                sentiment=pred.sentiment,
                sentiment_probs=pred.sentiment_probs,
                model_version=self.classifier.version,
                scored_at=scored_at,
                src_partition=record.partition,
                src_offset=record.offset,
            )
            out.append(OutMessage(topic, encode(scored), scored_key(scored)))
        return out

    def close(self) -> None:
        """Nothing to release: the classifier lives as long as the process."""


def scored_key(scored: ScoredItem) -> bytes:
    """Partition news.scored by ticker (or topic when no ticker), so per-key windows stay on one partition."""
    key = f"ticker:{scored.item.tickers[0]}" if scored.item.tickers else f"topic:{scored.topic}"
    return key.encode("utf-8")
