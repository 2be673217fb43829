"""Reading stories back (the `finmon stories` command and the dashboard use these)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from monitor.store import Store
from monitor.store.schema import aggregate_items, scored_items, stories, story_items
from monitor.store.times import as_utc

_CHUNK = 900


def list_stories(store: Store, item_ids: Sequence[str] | None = None, since: datetime | None = None,
                 limit: int | None = 100) -> list[dict[str, Any]]:
    """Stories newest first (by first_seen, then story id), as dicts with story_id, first_seen, last_seen,
    n_items, n_sources, headline and sentiment (mean sentiment_score of the story's items in scored_items;
    None when none of them is stored there).

    `item_ids`: only stories holding at least one of these items (how a key filter is applied: the caller
    picks the items of a ticker or topic); the counts are still the whole story's. `since`: only stories
    first seen at or after it.
    """
    query = select(stories)
    if since is not None:
        query = query.where(stories.c.first_seen >= since)
    if item_ids is not None:
        wanted = _stories_of(store, item_ids)
        if not wanted:
            return []
        query = query.where(stories.c.story_id.in_(sorted(wanted)))
    query = query.order_by(stories.c.first_seen.desc(), stories.c.story_id)
    if limit is not None:
        query = query.limit(limit)
    with store.engine.connect() as conn:
        rows = [dict(row._mapping) for row in conn.execute(query)]
        sentiment = _sentiment(conn, [row["story_id"] for row in rows])
    return [{"story_id": r["story_id"], "first_seen": as_utc(r["first_seen"]), "last_seen": as_utc(r["last_seen"]),
             "n_items": int(r["n_items"]), "n_sources": int(r["n_sources"]), "headline": r["headline"],
             "sentiment": sentiment.get(r["story_id"])} for r in rows]


def key_stories(store: Store, key: str, since: datetime | None = None, limit: int | None = 50
                ) -> list[dict[str, Any]]:
    """`list_stories` for one window key (`market`, `topic:<name>`, `ticker:<SYMBOL>`): the settled stories
    holding at least one item the aggregate stage counted for that key."""
    if key == "market":  # every accepted item counts for the market
        return list_stories(store, None, since, limit)
    query = select(aggregate_items.c.item_id, aggregate_items.c["keys"]).where(
        aggregate_items.c.story_id.is_not(None), aggregate_items.c.story_id != "")
    if since is not None:
        query = query.where(aggregate_items.c.event_time >= since)
    with store.engine.connect() as conn:
        ids = [item_id for item_id, keys in conn.execute(query) if key in (keys or ())]
    return list_stories(store, ids, since, limit) if ids else []


def story_of(store: Store, item_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
    """item id -> (story id, novelty) for the given ids that have been assigned."""
    out: dict[str, tuple[str, int]] = {}
    with store.engine.connect() as conn:
        for i in range(0, len(item_ids), _CHUNK):
            query = select(story_items.c.item_id, story_items.c.story_id, story_items.c.novelty).where(
                story_items.c.item_id.in_(list(item_ids[i : i + _CHUNK])))
            out.update({row.item_id: (row.story_id, int(row.novelty)) for row in conn.execute(query)})
    return out


def _stories_of(store: Store, item_ids: Sequence[str]) -> set[str]:
    return {story for story, _ in story_of(store, list(dict.fromkeys(item_ids))).values()}


def _sentiment(conn: Any, story_ids: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for i in range(0, len(story_ids), _CHUNK):
        query = (select(story_items.c.story_id, func.avg(scored_items.c.sentiment_score))
                 .join(scored_items, scored_items.c.id == story_items.c.item_id)
                 .where(story_items.c.story_id.in_(story_ids[i : i + _CHUNK]))
                 .group_by(story_items.c.story_id))
        out.update({story: float(mean) for story, mean in conn.execute(query) if mean is not None})
    return out
