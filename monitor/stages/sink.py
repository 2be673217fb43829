"""Sink stage: scored items and dead letters into the store, idempotently.

Scored items are upserted by id; an id already stored from a *different* news.raw record is a duplicate
publish and becomes a `duplicate_id` dead letter keyed by that raw record, so that every published record
ends up exactly once as either a stored item or a dead letter, whatever gets redelivered.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from monitor.clock import Clock
from monitor.config import Settings
from monitor.errors import RecordError
from monitor.kafka.stage import OutMessage
from monitor.records import DeadLetter, ScoredItem, SourceMark, decode_deadletter, decode_scored_record, encode
from monitor.store import Store

log = logging.getLogger(__name__)


class SinkProcessor:
    """news.scored + news.deadletter -> store (durable before the offsets are committed)."""

    stage = "sink"

    def __init__(self, settings: Settings, store: Store, clock: Clock) -> None:
        self.settings, self.store, self.clock = settings, store, clock
        self.topics = settings.kafka.topics

    def process(self, records: Sequence[Any]) -> list[OutMessage]:
        scored: list[ScoredItem] = []
        letters: list[DeadLetter] = []
        own: list[DeadLetter] = []  # dead letters this stage creates: stored here and published
        for record in records:
            self._decode(record, scored, letters, own)
        now = self.clock.now()
        _, duplicates = self.store.upsert_scored(scored, now)
        own.extend(self._duplicate_letter(item) for item in duplicates)
        self.store.add_dead_letters(letters + own, now)
        return [OutMessage(self.topics.deadletter, encode(letter), letter.key) for letter in own]

    def _decode(self, record: Any, scored: list[ScoredItem], letters: list[DeadLetter], own: list[DeadLetter]) -> None:
        try:
            if record.topic == self.topics.deadletter:
                letters.append(decode_deadletter(record.value or b""))
            else:
                decoded = decode_scored_record(record.value or b"")
                if not isinstance(decoded, SourceMark):  # marks are for the aggregate stage's stream time
                    scored.append(decoded)
        except RecordError as exc:
            log.warning("sink: bad record %s[%s]@%s: %s", record.topic, record.partition, record.offset, exc)
            own.append(
                DeadLetter(
                    payload=record.value or b"",
                    key=record.key,
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    stage=self.stage,
                    reason=exc.reason,
                    detail=exc.detail,
                    at=self.clock.now(),
                )
            )

    def _duplicate_letter(self, item: ScoredItem) -> DeadLetter:
        log.warning(
            "sink: id %r already stored from another record; dead-lettering news.raw[%s]@%s",
            item.item.id,
            item.src_partition,
            item.src_offset,
        )
        return DeadLetter(
            payload=encode(item),
            key=item.item.id.encode("utf-8"),
            topic=self.topics.raw,
            partition=item.src_partition,
            offset=item.src_offset,
            stage=self.stage,
            reason="duplicate_id",
            detail=f"id {item.item.id!r} was already stored from another news.raw record",
            at=self.clock.now(),
        )

    def close(self) -> None:
        self.store.dispose()
