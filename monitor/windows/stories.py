"""The story pass: story ids and novelty decided at the watermark, so windows do not depend on replay speed.

Story decisions depend on the order items are assigned in (monitor/stories), and live classify workers
deliver items interleaved in an order that changes with speed, batching and the number of workers. So the
aggregate stage stores each accepted item with its text and source, story unsettled, and settles stories
only behind stream time (`complete_time`, monitor/core/streamtime.py), where no item that is not late can
still arrive: each pass takes the accepted, unsettled items with event time before `until`, assigns them
with `StoryIndex` in (event time, item id) order, writes their story id and novelty, adds their story
contributions (monitor/windows/engine.py `story_sums`) to the windows of their keys and re-derives those
windows, and the story z-scores of the windows after them. Every run of the same news, at any speed and
after any outage, settles the same items in the same order: the same stories, the same windows. The pass
runs in the caller's transaction (the aggregator's, with the source marks that moved stream time; the
backtest's before each evaluation), so an alert evaluated at a complete tick sees final story counts.

Limits, by design: once every source is idle, everything delivered is settled (`processed + 1`); a source
that wakes up again may then deliver an item older than what was settled (within its grace), which is
settled in the next pass after newer items, as stream-mode alerts would already have passed it too.
How far behind processed time the live pass settles is `stories.settle_lag` (monitor/stages/aggregate.py
`settle_lag_us`): the grace for stream-time alerting (exact), 0 for wall-clock alerting, where a 5-minute
story rule must see the news while it is news (an item that arrives later than newer settled ones, within
its grace, is then settled after them).
Late items and items stored before the story columns existed are never settled (`story_id` '').
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection

from monitor.clock import ensure_utc
from monitor.records import SettledStory, WindowRow
from monitor.store import windows as wstore
from monitor.stories import StoryInput
from monitor.stories.index import StoryIndex
from monitor.timestamps import to_us
from monitor.windows.derived import rederive
from monitor.windows.engine import STORY_SUM_COLUMNS, Baseline, explode_keys, story_sums
from monitor.windows.spec import WindowSpec

NO_WINDOWS = pd.DataFrame({"key": pd.Series(dtype=object), "start_us": pd.Series(dtype="int64")})
STORY_TEXT_CHARS = 4000  # of title + body: enough for MinHash to tell stories apart, bounded per row


@dataclass
class StoryPass:
    """What one story pass did: spec label -> the (key, start_us) windows whose story sums it changed, and
    the items it settled, in the order it settled them."""

    touched: dict[str, pd.DataFrame] = field(default_factory=dict)
    settled: list[SettledStory] = field(default_factory=list)


def settle_stories(conn: Connection, index: StoryIndex, specs: Sequence[WindowSpec], baseline: Baseline,
                   until_us: int, now: datetime | None = None) -> list[WindowRow]:
    """Settle every unsettled accepted item before `until_us`; return the window rows that changed."""
    touched = add_story_sums(conn, index, specs, until_us, now).touched
    out: list[WindowRow] = []
    for spec in specs:
        # the story z-scores of the windows after them move too (their baselines include these)
        out.extend(rederive(conn, spec, baseline, touched.get(spec.label, NO_WINDOWS)))
    return out


def add_story_sums(conn: Connection, index: StoryIndex, specs: Sequence[WindowSpec], until_us: int,
                   now: datetime | None = None) -> StoryPass:
    """Settle the items and add their story sums, without re-deriving (for a caller that re-derives the
    touched windows once together with its own: the aggregator's batch)."""
    rows = wstore.unsettled_items(conn, until_us)
    if not rows:
        return StoryPass()
    now = now or datetime.now(UTC)
    inputs = [StoryInput(r.item_id, r.story_text or "", r.source or "", ensure_utc(r.event_time),
                         ticker_symbols(r.keys)) for r in rows]
    assigned = index.assign_in(conn, inputs, now)
    wstore.settle_items(conn, [(a.item_id, a.story_id, a.novelty) for a in assigned])
    frame = pd.DataFrame({"item_id": [r.item_id for r in rows],
                          "t_us": [to_us(ensure_utc(r.event_time)) for r in rows],
                          "label": [r.label for r in rows], "score_u": [int(r.score_u) for r in rows],
                          "novelty": [a.novelty for a in assigned], "keys": [list(r.keys) for r in rows]})
    exploded = explode_keys(frame)
    done = StoryPass(settled=[SettledStory(a.item_id, a.story_id, a.novelty, i.published_at, i.source, i.tickers,
                                           now) for i, a in zip(inputs, assigned, strict=True)])
    for spec in specs:
        sums = story_sums(exploded, spec)
        wstore.add_sums(conn, spec.label, spec.size_us, sums, STORY_SUM_COLUMNS)
        done.touched[spec.label] = sums[["key", "start_us"]]
    return done


def story_text(title_and_body: str) -> str:
    return title_and_body[:STORY_TEXT_CHARS]


def ticker_symbols(keys: Any) -> tuple[str, ...]:
    """The ticker symbols among an item's window keys (`ticker:AAPL` -> `AAPL`): what the story match
    compares, so copies about different companies never join."""
    return tuple(k.split(":", 1)[1] for k in keys or () if isinstance(k, str) and k.startswith("ticker:"))
