"""Classify stage: validate raw items, decide their lateness at the source, score them in micro-batches,
publish scored items keyed by ticker/topic, and after them a source mark per news.raw partition to every
news.scored partition (monitor/core/streamtime.py says what downstream does with the marks).

The model is reached only through the `Classifier` protocol, so this module knows nothing about torch; the
decisions are monitor/core's, and the store keeps the per-partition snapshots that make them survive a crash.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from monitor import metrics
from monitor.classify.base import Classifier
from monitor.classify.routing import ModelRouter
from monitor.clock import Clock, from_micros, to_micros
from monitor.config import Settings
from monitor.core.lateness import SourceTracker, Verdict
from monitor.core.scoring import build_scored, with_language
from monitor.entities import Linker
from monitor.errors import RecordError
from monitor.kafka.stage import OutMessage, dead_letter_message
from monitor.language import warm_language_model
from monitor.records import RawItem, ScoredItem, SourceMark, decode_raw, encode
from monitor.store import Store
from monitor.store import sources as sstore

log = logging.getLogger(__name__)


class ClassifyProcessor:
    """news.raw records -> scored items and source marks (news.scored) or dead letters (news.deadletter)."""

    stage = "classify"

    def __init__(self, settings: Settings, classifier: Classifier | ModelRouter, clock: Clock, store: Store) -> None:
        self.settings, self.clock, self.store = settings, clock, store
        # One model, or one per language (monitor/classify/routing.py): items are routed by their language.
        self.router = classifier if isinstance(classifier, ModelRouter) else ModelRouter(classifier)
        self.topics = settings.kafka.topics
        self.linker = Linker.from_settings(settings)  # built once per process (cached): ~0.2 s
        warm_language_model()  # ~1.3 s once per process, at start rather than inside the first batch
        self.tracker = SourceTracker(int(settings.windows.grace.total_seconds() * 1_000_000))
        self.marks = MarkSchedule(settings.windows.mark_interval_s, settings.windows.idle_timeout_s)
        self._fanout: Callable[[], int] = lambda: settings.kafka.partitions
        self._sources: Callable[[], int] = lambda: settings.kafka.partitions

    def bind(self, partitions_for: Callable[[str], int]) -> None:
        self._fanout = lambda: partitions_for(self.topics.scored)
        self._sources = lambda: partitions_for(self.topics.raw)

    def process(self, records: Sequence[Any]) -> list[OutMessage]:
        now = self.clock.now()
        out: list[OutMessage] = []
        good: list[tuple[Any, RawItem, Verdict]] = []
        ordered = sorted(records, key=lambda r: (r.partition, r.offset))
        self._resume(ordered)
        for record in ordered:
            try:
                item = decode_raw(record.value, now, self.settings.limits)
            except RecordError as exc:
                self.tracker.observe(record.partition, record.offset, None)
                out.append(dead_letter_message(self.settings, record, self.stage, exc.reason, exc.detail, self.clock))
                continue
            good.append((record, item, self.tracker.observe(record.partition, record.offset,
                                                             to_micros(item.published_at), item.source)))
        if good:
            # Emitting in event-time order keeps news.scored roughly ordered (nicer for anyone tailing it);
            # lateness no longer depends on that order: it was decided above, per source partition.
            good.sort(key=lambda triple: triple[1].published_at)
            out.extend(self._score(good))
        last = {r.partition: r.offset for r in ordered}  # ordered by offset: the last one wins
        self._save(last, now)
        self.marks.touched(sorted(last), time.monotonic())
        return out

    def _resume(self, ordered: Sequence[Any]) -> None:
        """Load a partition's state from its snapshot when this batch does not continue what we hold
        (first batch, a rebalance gave us the partition, or it was rewound to the committed offset)."""
        firsts: dict[int, int] = {}
        for record in ordered:
            firsts.setdefault(record.partition, record.offset)
        stale = {p: o for p, o in firsts.items() if not self.tracker.knows(p, o)}
        if not stale:
            return
        with self.store.engine.connect() as conn:
            for partition, offset in stale.items():
                state, exact = sstore.load_snapshot(conn, self.topics.raw, partition, offset)
                if not exact:
                    log.warning("classify: no source snapshot at %s[%d]@%d; resuming lateness from the newest "
                                "earlier one", self.topics.raw, partition, offset - 1)
                self.tracker.restore(partition, offset, state.max_t_us, state.feeds)

    def _save(self, last: dict[int, int], now: datetime) -> None:
        """Snapshots as of the batch's last offsets, before the runner commits right after them: a successor
        resumes exactly where we commit. A store outage does not stop scoring: the snapshot of this commit
        point is skipped (a successor would resume from an earlier one, leniently) and the next batch saves."""
        states = {p: self.tracker.state_through(p, offset) for p, offset in last.items()}
        try:
            with self.store.engine.begin() as conn:
                sstore.save_snapshots(conn, self.topics.raw, states, now)
        except SQLAlchemyError as exc:
            metrics.TRANSIENT.labels(self.stage, "snapshot").inc()
            log.warning("classify: transient failure saving source snapshots (%s); scoring goes on",
                        str(exc).splitlines()[0][:200])

    def _score(self, good: list[tuple[Any, RawItem, Verdict]]) -> list[OutMessage]:
        items = [with_language(item) for _, item, _ in good]  # the language picks the model
        started = time.perf_counter()
        routed = self.router.predict([item.text for item in items], [item.lang for item in items])
        metrics.MODEL_SECONDS.labels(self.stage).observe(time.perf_counter() - started)
        scored_at = self.clock.now()
        out = []
        for (record, _, verdict), item, r in zip(good, items, routed, strict=True):
            scored = build_scored(item, r.prediction, r.version, scored_at, src_partition=record.partition,
                                  src_offset=record.offset, verdict=verdict, linker=self.linker)
            out.append(OutMessage(self.topics.scored, encode(scored), scored_key(scored)))
        return out

    def housekeeping(self, progress: dict[int, tuple[int, int | None]], final: bool = False) -> list[OutMessage]:
        """Source marks that are due: after new records (at most every `mark_interval_s` per partition) and
        once when a caught-up partition has been quiet for `idle_timeout_s`. `final` (the worker is stopping):
        every pending mark now, and caught-up partitions idle at once (nobody else will say so sooner).
        `progress`: per assigned news.raw partition, (next offset to read, end offset or None)."""
        lags = {p: None if end is None else max(end - pos, 0) for p, (pos, end) in progress.items()}
        due = self.marks.due(lags, time.monotonic(), final)
        if not due:
            return []
        fanout, now = self._fanout(), self.clock.now()
        out: list[OutMessage] = []
        for partition, idle in due:
            value = encode(self._mark(partition, idle, progress.get(partition), fanout, now))
            out.extend(OutMessage(self.topics.scored, value, f"mark:{partition}".encode(), partition=p)
                       for p in range(fanout))
        return out

    def _mark(self, partition: int, idle: bool, progress: tuple[int, int | None] | None, fanout: int,
              now: datetime) -> SourceMark:
        """What this worker knows of `partition`: its state if it read up to there; an idle mark of a partition
        it has not read since it started (a crash, a rebalance) says only where the partition ends."""
        state = self.tracker.states.get(partition)
        through = state.next_offset - 1 if state else -1
        max_t = state.max_t_us if state else None
        if idle and progress is not None and progress[0] - 1 > through:
            through, max_t = progress[0] - 1, None  # read by a predecessor: its marks carry the time
        lag = None if progress is None or progress[1] is None else max(progress[1] - progress[0], 0)
        return SourceMark(self.topics.raw, partition, through, from_micros(max_t) if max_t is not None else None,
                          idle, fanout, now, lag, self._sources())

    def housekeeping_sent(self, out: list[OutMessage]) -> None:
        """Count the marks the broker acknowledged, so `finmon status` can tell items from marks on news.scored
        (a crash between the ack and this count over-reports `scored` by that round of marks)."""
        try:
            with self.store.engine.begin() as conn:
                sstore.count_marks(conn, self.topics.scored, len(out))
        except Exception as exc:  # a count for the status line must never stop the stage
            log.warning("classify: could not count source marks: %s", exc)

    def close(self) -> None:
        self.store.dispose()


class MarkSchedule:
    """When each source partition's mark is due (wall-clock pacing only: marks never change decisions)."""

    def __init__(self, interval_s: float, idle_after_s: float) -> None:
        self.interval_s, self.idle_after_s = interval_s, idle_after_s
        self.last_record: dict[int, float] = {}
        self.last_mark: dict[int, float] = {}
        self.dirty: set[int] = set()
        self.idle: set[int] = set()

    def touched(self, partitions: Sequence[int], now: float) -> None:
        for p in partitions:
            self.last_record[p] = now
            self.dirty.add(p)
            self.idle.discard(p)

    def due(self, lags: dict[int, int | None], now: float, final: bool = False) -> list[tuple[int, bool]]:
        out = []
        for p in sorted(self.dirty):
            if final and lags.get(p) == 0:
                continue  # marked idle below, with the same state
            if final or now - self.last_mark.get(p, -1e18) >= self.interval_s:
                out.append((p, False))
                self.dirty.discard(p)
                self.last_mark[p] = now
        for p, lag in sorted(lags.items()):
            quiet = now - self.last_record.setdefault(p, now)
            if final and lag == 0 and p not in self.idle:
                out.append((p, True))
                self.idle.add(p)
                self.dirty.discard(p)
            elif p not in self.idle and p not in self.dirty and lag == 0 and quiet >= self.idle_after_s:
                out.append((p, True))
                self.idle.add(p)
                self.last_mark[p] = now
        return out


def scored_key(scored: ScoredItem) -> bytes:
    """Partition news.scored by ticker (or topic when no ticker), so per-key windows stay on one partition."""
    key = f"ticker:{scored.item.tickers[0]}" if scored.item.tickers else f"topic:{scored.topic}"
    return key.encode("utf-8")
