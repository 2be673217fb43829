"""Aggregate stage: news.scored -> event-time windows per key, upserted into the store and published to
`sentiment.windows`; items their source delivered too late (monitor/core/lateness.py, decided by classify)
go to the dead-letter topic (`late`); source marks are stored with the windows (monitor/core/streamtime.py).

The window arithmetic lives in monitor/windows; this module only decodes, applies and publishes.

Each item the story pass settles is published to `news.stories` (`stories.publish`), keyed by its story id:
a `SettledStory` (monitor/records.py) with the item id, story id and novelty, to join to its news.scored
record. A redelivered batch whose stories are already settled publishes nothing again; a batch retried after
a failed commit publishes its stories once it commits (messages are sent after the store's transaction).

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
from monitor.records import SettledStory, SourceMark, decode_scored_record, encode
from monitor.store import Store
from monitor.store import windows as wstore
from monitor.windows.aggregator import BatchResult, Delivery, WindowAggregator, late_by_key
from monitor.windows.spec import format_duration

log = logging.getLogger(__name__)
RESEND_BATCH = 10_000  # unacknowledged stories re-sent per batch after a restart


def settle_lag_us(settings: Settings) -> int:
    """How far behind processed time stories settle: `stories.settle_lag`, else the grace for stream-time
    alerting (exact) and 0 for wall-clock alerting (story rules must see live news while it is news)."""
    lag = settings.stories.settle_lag
    if lag is None:
        lag = settings.windows.grace if settings.alerts.time_mode == "stream" else timedelta(0)
    return int(lag.total_seconds() * 1_000_000)


class AggregateProcessor:
    """news.scored records -> window rows (sentiment.windows), settled stories (news.stories) and late/bad
    records (news.deadletter)."""

    stage = "aggregate"

    def __init__(self, settings: Settings, store: Store, clock: Clock) -> None:
        self.settings, self.store, self.clock = settings, store, clock
        self.aggregator = WindowAggregator(store, settings.windows, settings.kafka.topics.scored, settings.stories,
                                           settle_lag_us(settings), publish_stories=settings.stories.publish)
        self._unacked: list[str] = []  # item ids of the news.stories messages returned and not yet acknowledged
        self._resent = not settings.stories.publish  # stories settled but never acknowledged: sent on the 1st batch

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
        unsent = self._unsent()
        result = self.aggregator.apply(deliveries, marks, self.clock.now())
        self._resent = self._resent or len(unsent) < RESEND_BATCH  # (a failed batch reads them again)
        out.extend(self._late_letters(result, by_position))
        topic = self.settings.kafka.topics.windows
        out.extend(OutMessage(topic, encode(row), row.key.encode("utf-8")) for row in result.windows)
        out.extend(self._story_messages(unsent + result.stories))
        return out

    def _story_messages(self, stories: Sequence[SettledStory]) -> list[OutMessage]:
        if not self.settings.stories.publish:
            return []
        self._unacked.extend(s.id for s in stories)
        topic = self.settings.kafka.topics.stories
        return [OutMessage(topic, encode(s), s.story_id.encode("utf-8")) for s in stories]

    def _unsent(self) -> list[SettledStory]:
        """Until none is left (from the first batch on): stories a previous run settled but stopped before the
        broker acknowledged their messages; sent again (at least once: a copy may reach the topic twice).
        Read before the batch settles its own, which are not acknowledged yet either."""
        if self._resent:
            return []
        with self.store.engine.begin() as conn:
            stories = self.aggregator.unsent_stories(conn, self.clock.now(), RESEND_BATCH)
        if stories:
            log.info("aggregate: re-sending %d stories settled before a restart", len(stories))
        return stories

    def sent(self, out: list[OutMessage]) -> None:
        """Record that the stories' messages were acknowledged, so a restart does not send them again; a
        failure here only means they are sent again after a restart."""
        if not self._unacked:
            return
        try:
            with self.store.engine.begin() as conn:
                wstore.mark_stories_sent(conn, self._unacked)
            self._unacked = []
        except Exception as exc:
            log.warning("aggregate: could not record %d acknowledged stories: %s", len(self._unacked), exc)

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
