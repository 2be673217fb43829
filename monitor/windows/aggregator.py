"""Applying one micro-batch of scored items to the stored windows, in one transaction.

1. Take each item's lateness as its source decided it (monitor/core/lateness.py, carried by the scored
   record); an id already stored keeps its first decision.
2. Insert the batch's new items (`on conflict do nothing` by item id, RETURNING the ids really inserted).
3. Add only those items' exact integer sums to their windows (an upsert that adds), count new late items.
4. Re-derive the metrics and z-scores of the windows the batch touched and of the `baseline_windows`
   windows after them (whose baselines include them), reading only that index range of each key.

5. Apply the batch's source marks, then settle stories up to the stream's complete time (the story pass,
   monitor/windows/stories.py): story ids and novelty are decided there, in event-time order, never in the
   order the batches happened to arrive in.

Steps 2-5 and the batch's source marks (monitor/core/streamtime.py) commit together, before the stage
commits its input offsets: after a crash, redelivered items are found in step 2 and add nothing, so every
window is a pure function of the set of distinct items and equals what an uninterrupted run produces, and a
stored mark never claims items that are not in the windows yet.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, text

from monitor.clock import ensure_utc
from monitor.config import StorySettings, WindowSettings
from monitor.core.streamtime import processed_time
from monitor.records import ScoredItem, SettledStory, SourceMark, WindowRow
from monitor.store import Store
from monitor.store import sources as sstore
from monitor.store import windows as wstore
from monitor.stories.index import StoryIndex
from monitor.windows import stories as story_pass
from monitor.windows.derived import rederive
from monitor.windows.engine import Baseline, explode_keys, item_values, items_frame, window_sums
from monitor.windows.keys import KeyExtractor, company_dictionary
from monitor.windows.spec import WindowSpec, parse_specs
from monitor.windows.stories import NO_WINDOWS, StoryPass, add_story_sums, story_text

_LOCK_KEY = 0x66696E6D6F6E  # "finmon": the advisory lock of the aggregate stage


@dataclass(frozen=True, slots=True)
class Delivery:
    """A decoded scored item and where it was read from."""

    partition: int
    offset: int
    scored: ScoredItem


@dataclass
class BatchResult:
    """What a batch changed: window rows to publish, the deliveries that were late and the stories settled."""

    windows: list[WindowRow] = field(default_factory=list)
    late: list[Delivery] = field(default_factory=list)
    new_items: int = 0
    stories: list[SettledStory] = field(default_factory=list)


class WindowAggregator:
    """Maintains the `windows` table from batches of scored items (see the module docstring)."""

    def __init__(self, store: Store, cfg: WindowSettings, topic: str,
                 stories: StorySettings | None = None, settle_lag_us: int | None = None,
                 publish_stories: bool = False) -> None:
        """`settle_lag_us`: how far behind the processed time stories are settled (default: the grace);
        `publish_stories`: the caller publishes settled stories (their items are stored as not sent yet)."""
        self.store, self.topic, self.publish_stories = store, topic, publish_stories
        self.stories = StoryIndex(store, stories or StorySettings())
        self.specs: list[WindowSpec] = parse_specs(cfg.sizes)
        self.baseline = Baseline.from_settings(cfg)
        self.grace_us = int(cfg.grace.total_seconds() * 1_000_000)  # for messages: lateness is decided upstream
        self.settle_lag_us = self.grace_us if settle_lag_us is None else settle_lag_us
        self.keys = KeyExtractor(company_dictionary(cfg))

    def apply(self, deliveries: Sequence[Delivery], marks: Sequence[tuple[int, SourceMark]] = (),
              now: datetime | None = None) -> BatchResult:
        """Apply a batch's items, then the source marks that followed them on their partitions (`now`: the
        caller's clock, stamped on the stories settled)."""
        if not deliveries:
            result = BatchResult()
            if marks:
                with self.store.engine.begin() as conn:
                    _serialize(conn)
                    sstore.apply_marks(conn, self.topic, marks)
                    done = self._story_sums_to_stream_time(conn, now)
                    result.stories = done.settled
                    for spec in self.specs:
                        result.windows.extend(rederive(conn, spec, self.baseline, _windows(done.touched, spec)))
            return result
        values = {d.scored.item.id: item_values(d.scored) for d in _first(deliveries)}  # first copy of an id wins
        with self.store.engine.begin() as conn:
            _serialize(conn)
            decided = self._decide(conn, deliveries)
            sstore.apply_marks(conn, self.topic, marks)
            new_ids = self._insert(conn, deliveries, values, decided)
            accepted = [d for d in _first(deliveries) if not decided[d.scored.item.id]]
            result = BatchResult(late=[d for d in deliveries if decided[d.scored.item.id]], new_items=len(new_ids))
            self._count_late(conn, [d for d in _first(deliveries) if d.scored.item.id in new_ids and
                                    decided[d.scored.item.id]], values)
            rows = explode_keys(self._frame(accepted, values))  # one (key, item) row per key of each item
            fresh = None if rows["item_id"].isin(new_ids).all() else rows[rows["item_id"].isin(new_ids)]
            batch = {spec.label: self._add_item_sums(conn, spec, rows, fresh) for spec in self.specs}
            done = self._story_sums_to_stream_time(conn, now) if marks else StoryPass()
            result.stories = done.settled
            # One re-derivation per spec after both kinds of sums: the batch's windows and the story pass's
            # (each window published once, with its final values).
            for spec in self.specs:
                both = pd.concat([batch[spec.label], _windows(done.touched, spec)], ignore_index=True)
                result.windows.extend(rederive(conn, spec, self.baseline, both.drop_duplicates()))
        return result

    def settle_stories(self, conn: Connection, until_us: int) -> list[WindowRow]:
        """The story pass up to `until_us`, in the caller's transaction (monitor/windows/stories.py)."""
        return story_pass.settle_stories(conn, self.stories, self.specs, self.baseline, until_us)

    def unsent_stories(self, conn: Connection, now: datetime, limit: int) -> list[SettledStory]:
        """Settled stories whose message was never acknowledged, oldest first (stamped settled at `now`)."""
        return [SettledStory(r.item_id, r.story_id, int(r.novelty), ensure_utc(r.event_time), r.source or "",
                             story_pass.ticker_symbols(r.keys), now) for r in wstore.unsent_stories(conn, limit)]

    def _story_sums_to_stream_time(self, conn: Connection, now: datetime | None) -> StoryPass:
        """The story pass behind the complete time the stored marks give, without its re-derivation (nothing
        before that time is known)."""
        until = self._settle_until(conn)
        return StoryPass() if until is None else add_story_sums(conn, self.stories, self.specs, until, now)

    def _settle_until(self, conn: Connection) -> int | None:
        """Where the story pass settles to: behind the processed time the stored marks give (None: unknown)."""
        processed, all_idle = processed_time(sstore.stream_clock_marks(conn, self.topic))
        if processed is None:
            return None
        # all sources idle: everything delivered is in, up to and including the newest event time
        return processed + 1 if all_idle else processed - self.settle_lag_us

    @staticmethod
    def _decide(conn: Connection, deliveries: Sequence[Delivery]) -> dict[str, bool]:
        """item id -> late: the stored first decision, else the source's verdict on the first copy."""
        decided = wstore.known_items(conn, list(dict.fromkeys(d.scored.item.id for d in deliveries)))
        for d in deliveries:
            decided.setdefault(d.scored.item.id, d.scored.late)
        return decided

    def _insert(self, conn: Connection, deliveries: Sequence[Delivery], values: dict[str, dict[str, Any]],
                decided: dict[str, bool]) -> set[str]:
        rows = []
        for d in _first(deliveries):
            v = values[d.scored.item.id]
            rows.append({**{k: v[k] for k in ("item_id", "label", "score_u", "conf_u", "conf_score_u")},
                         "event_time": d.scored.item.published_at, "late": decided[d.scored.item.id],
                         "story_text": story_text(d.scored.item.text), "source": d.scored.item.source,
                         # a late item is in no window: never settled ('' keeps it out of the pass's index)
                         "story_id": "" if decided[d.scored.item.id] else None,
                         "story_sent": None if decided[d.scored.item.id] or not self.publish_stories else False,
                         "keys": list(self.keys.keys(d.scored)), "src_partition": d.partition,
                         "src_offset": d.offset})
        return wstore.insert_items(conn, rows)

    def _count_late(self, conn: Connection, late: list[Delivery], values: dict[str, dict[str, Any]]) -> None:
        counts: dict[str, tuple[int, int]] = {}
        for d in late:
            t_us = int(values[d.scored.item.id]["t_us"])
            for key in self.keys.keys(d.scored):
                n, latest = counts.get(key, (0, t_us))
                counts[key] = (n + 1, max(latest, t_us))
        wstore.add_late(conn, counts)

    def _frame(self, accepted: list[Delivery], values: dict[str, dict[str, Any]]) -> pd.DataFrame:
        return items_frame([values[d.scored.item.id] for d in accepted], [self.keys.keys(d.scored) for d in accepted])

    @staticmethod
    def _add_item_sums(conn: Connection, spec: WindowSpec, rows: pd.DataFrame,
                       fresh: pd.DataFrame | None) -> pd.DataFrame:
        """Add the fresh items' sums (`fresh` None: every row is fresh); return every window of the batch's
        rows (redeliveries too: they are republished)."""
        sums = window_sums(rows, spec)
        wstore.add_sums(conn, spec.label, spec.size_us, sums if fresh is None else window_sums(fresh, spec))
        return sums[["key", "start_us"]]


def _serialize(conn: Connection) -> None:
    """One aggregate transaction at a time per database, so that concurrent workers never recompute a shared
    window (e.g. `market`) from a stale read. SQLite serialises writers by itself (a stale snapshot fails and
    the batch is retried); PostgreSQL's READ COMMITTED needs this transaction-scoped advisory lock."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})


def _windows(touched: dict[str, pd.DataFrame], spec: WindowSpec) -> pd.DataFrame:
    """The windows of `spec` a story pass touched (none: an empty frame)."""
    return touched.get(spec.label, NO_WINDOWS)


def _first(deliveries: Sequence[Delivery]) -> list[Delivery]:
    """The first delivery of each item id, in batch order."""
    seen: dict[str, Delivery] = {}
    for d in deliveries:
        seen.setdefault(d.scored.item.id, d)
    return list(seen.values())


def late_by_key(late: Sequence[Delivery], extractor: KeyExtractor) -> dict[str, int]:
    """Late deliveries per key (for logs)."""
    counts: dict[str, int] = defaultdict(int)
    for d in late:
        for key in extractor.keys(d.scored):
            counts[key] += 1
    return dict(counts)
