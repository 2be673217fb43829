"""Aggregate stage: news.scored -> event-time windows per key, upserted into the store and published to
`sentiment.windows`; items their source delivered too late (monitor/core/lateness.py, decided by classify)
go to the dead-letter topic (`late`); source marks are stored with the windows (monitor/core/streamtime.py).

The window arithmetic lives in monitor/windows; this module only decodes, applies and publishes.

A `sentiment.windows` message is keyed by the window key and holds one `WindowRow` (monitor/records.py) as
JSON (times ISO-8601 UTC with `Z`, z-scores null until defined). A window is republished whenever a batch
touches it or changes its z-scores; per key the latest message is the current value (the store row).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from monitor.clock import Clock
from monitor.config import Settings
from monitor.errors import RecordError
from monitor.kafka.stage import OutMessage, dead_letter_message
from monitor.records import SourceMark, decode_scored_record, encode
from monitor.store import Store
from monitor.windows.aggregator import BatchResult, Delivery, WindowAggregator, late_by_key
from monitor.windows.spec import format_duration

log = logging.getLogger(__name__)


def settle_lag_us(settings: Settings) -> int:
    """How far behind processed time stories settle: `stories.settle_lag`, else the grace for stream-time
    alerting (exact) and 0 for wall-clock alerting (story rules must see live news while it is news)."""
    lag = settings.stories.settle_lag
    if lag is None:
        lag = settings.windows.grace if settings.alerts.time_mode == "stream" else timedelta(0)
    return int(lag.total_seconds() * 1_000_000)


class AggregateProcessor:
    """news.scored records -> window rows (sentiment.windows) and late/bad records (news.deadletter)."""

    stage = "aggregate"

    def __init__(self, settings: Settings, store: Store, clock: Clock) -> None:
        self.settings, self.store, self.clock = settings, store, clock
        self.aggregator = WindowAggregator(store, settings.windows, settings.kafka.topics.scored, settings.stories,
                                           settle_lag_us(settings))

    def process(self, records: Sequence[Any]) -> list[OutMessage]:
        out: list[OutMessage] = []
        deliveries: list[Delivery] = []
        marks: list[tuple[int, SourceMark]] = []
        by_position: dict[tuple[int, int], Any] = {}
        for record in sorted(records, key=lambda r: (r.partition, r.offset)):
            try:
                decoded = decode_scored_record(record.value or b"")
            except RecordError as exc:
                out.append(dead_letter_message(self.settings, record, self.stage, exc.reason, exc.detail, self.clock))
                continue
            if isinstance(decoded, SourceMark):
                marks.append((record.partition, decoded))
            else:
                deliveries.append(Delivery(record.partition, record.offset, decoded))
                by_position[(record.partition, record.offset)] = record
        result = self.aggregator.apply(deliveries, marks)
        out.extend(self._late_letters(result, by_position))
        topic = self.settings.kafka.topics.windows
        out.extend(OutMessage(topic, encode(row), row.key.encode("utf-8")) for row in result.windows)
        return out

    def _late_letters(self, result: BatchResult, by_position: dict[tuple[int, int], Any]) -> list[OutMessage]:
        if result.late:
            log.info("aggregate: %d late records by key: %s", len(result.late),
                     late_by_key(result.late, self.aggregator.keys))
        return [dead_letter_message(self.settings, by_position[(d.partition, d.offset)], self.stage, "late",
                                    self._late_detail(d), self.clock) for d in result.late]

    def _late_detail(self, d: Delivery) -> str:
        scored, grace = d.scored, format_duration(self.aggregator.grace_us)
        newer = scored.source_time.isoformat() if scored.source_time else "?"
        feed = f"feed {scored.item.source!r}" if scored.item.source else "its feed (no source given)"
        return (f"published_at {scored.item.published_at.isoformat()} is more than the grace ({grace}) before "
                f"{newer}, the newest event time {feed} had delivered on "
                f"{self.settings.kafka.topics.raw}[{scored.src_partition}] before it (offset {scored.src_offset}); "
                "the feed delivers out of order: raise FINMON_WINDOWS__GRACE to accept items this late")

    def close(self) -> None:
        self.store.dispose()
