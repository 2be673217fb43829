"""The store-backed StoryIndex on SQLite and PostgreSQL: the same decisions as MemoryStories, restarts and
redeliveries keep story ids and counts, concurrent workers end with one story per story, pruning."""

from __future__ import annotations

import itertools
import random
import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from monitor.config import StorySettings
from monitor.store import Store
from monitor.store.schema import stories, story_bands, story_exemplars, story_items
from monitor.stories import MemoryStories, StoryInput
from monitor.stories.index import StoryIndex
from monitor.stories.queries import list_stories, story_of
from tests.test_stories import NORTHWIND_OTHERS, OUTAGE

T0 = datetime(2025, 3, 3, 12, tzinfo=UTC)
NOW = datetime(2026, 1, 1, tzinfo=UTC)
CFG = StorySettings()


def item(item_id: str, text: str, minutes: float = 0.0, source: str = "wire") -> StoryInput:
    return StoryInput(item_id, text, source, T0 + timedelta(minutes=minutes))


def open_index(url: str, cfg: StorySettings = CFG) -> StoryIndex:
    store = Store(url)
    store.create_schema()
    return StoryIndex(store, cfg)


def story_rows(index: StoryIndex) -> dict[str, tuple[int, int]]:
    with index.store.engine.connect() as conn:
        return {r.story_id: (int(r.n_items), int(r.n_sources)) for r in conn.execute(select(stories))}


def count(index: StoryIndex, table: object) -> int:
    with index.store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def feed(days: int = 4, seed: int = 5) -> list[StoryInput]:
    """Several stories over a few days: bursts of copies (from several sources), lone items, revivals."""
    rng = random.Random(seed)
    texts = [t for _, t in OUTAGE] + NORTHWIND_OTHERS
    sources = ["Market Wire", "Daily Ledger", "twitter", "Capital Times"]
    out = []
    for i in range(160):
        base = rng.choice(texts)
        text = rng.choice([base, f"RT @desk{i % 7}: {base} https://t.co/{i}", f"{base} - {rng.choice(sources)}"])
        tickers = rng.choice([(), (), ("NWND",), ("NWND", "QMED"), ("QMED",)])  # some vetoes, through the store
        out.append(StoryInput(f"f{i}", text, rng.choice(sources), T0 + timedelta(minutes=rng.uniform(0, days * 1440)),
                              tickers))
    out.sort(key=lambda x: (x.published_at, x.item_id))
    for i in range(0, len(out) - 3, 9):  # some out-of-order delivery
        out[i], out[i + 3] = out[i + 3], out[i]
    return out


def test_index_matches_memory_stories(store_url: str) -> None:
    """Fed the same batches, the store-backed index decides exactly like the in-memory reference, pruning
    included (a short prune horizon makes it happen several times in this feed), and like one big batch."""
    cfg = StorySettings(window_hours=6, prune_hours=12, prune_every_hours=2)
    index, memory = open_index(store_url, cfg), MemoryStories(cfg)
    items, start = feed(), 0
    for size in itertools.cycle([13, 1, 40, 7]):
        assert index.assign(items[start : start + size], NOW) == memory.assign(items[start : start + size])
        start += size
        if start >= len(items):
            break
    assert list(memory.assigned.values()) == MemoryStories(cfg).assign(items)  # batching changed nothing
    assert len({a.story_id for a in memory.assigned.values()}) > len(NORTHWIND_OTHERS) + 1  # stories were closed
    assert count(index, story_exemplars) == len(memory.book.exemplars)
    assert count(index, story_bands) == sum(len(m) for m in memory.book.buckets.values())


def test_copies_join_across_batches_sources_and_restarts(store_url: str) -> None:
    index = open_index(store_url)
    first = index.assign([item("o0", OUTAGE[0][1], 0, OUTAGE[0][0]), item("o1", OUTAGE[1][1], 1, OUTAGE[1][0])], NOW)
    story = first[0].story_id
    assert [a.story_id for a in first] == [story, story]
    index.store.dispose()

    restarted = open_index(store_url)  # a new process: everything comes from the store
    later = restarted.assign([item(f"o{i}", text, i, src) for i, (src, text) in enumerate(OUTAGE)], NOW)
    assert later[:2] == first  # redelivered: the stored assignment, not a new one
    assert {a.story_id for a in later} == {story}
    assert [a.novelty for a in later] == [100, 75, 56, 42, 32, 24]
    assert story_rows(restarted) == {story: (6, 4)}  # 6 items, 4 distinct sources: nothing counted twice

    again = restarted.assign([item("o3", OUTAGE[3][1], 3), item("o3", "a repeat of the id in one batch", 3)], NOW)
    assert again == [later[3], later[3]]
    assert story_rows(restarted) == {story: (6, 4)}
    assert count(restarted, story_items) == 6


def test_distinct_stories_on_one_ticker_and_list_stories(store_url: str) -> None:
    index = open_index(store_url)
    texts = [OUTAGE[0][1], *NORTHWIND_OTHERS]
    got = index.assign([item(f"n{i}", t, 10 * i, source=f"src{i % 2}") for i, t in enumerate(texts)], NOW)
    assert len({a.story_id for a in got}) == len(texts)
    index.assign([item("copy", f"RT @x: {texts[2]}", 200, source="twitter")], NOW)

    listed = list_stories(index.store)
    assert [s["headline"] for s in listed] == texts[::-1]  # newest first
    top = next(s for s in listed if s["headline"] == texts[2])
    assert (top["n_items"], top["n_sources"], top["first_seen"]) == (2, 2, T0 + timedelta(minutes=20))
    assert top["sentiment"] is None  # no scored items in this store
    assert set(listed[0]) == {"story_id", "first_seen", "last_seen", "n_items", "n_sources", "headline", "sentiment"}
    only = list_stories(index.store, item_ids=["copy", "unknown-id"])
    assert [s["story_id"] for s in only] == [got[2].story_id]
    assert list_stories(index.store, item_ids=["unknown-id"]) == []
    assert len(list_stories(index.store, limit=3)) == 3
    assert story_of(index.store, ["copy", "nope"]) == {"copy": (got[2].story_id, 75)}


def test_concurrent_workers_end_with_one_story(store_url: str) -> None:
    """Two workers (own Store, own engine, own thread) get copies of the same new story at the same moment,
    each in a batch with other news; every round must end with one story holding all copies."""
    workers = [open_index(store_url), open_index(store_url)]
    rounds = 6
    barrier = threading.Barrier(2)
    results: dict[int, list[list[str]]] = {0: [], 1: []}
    errors: list[BaseException] = []

    def work(w: int) -> None:
        try:
            for r in range(rounds):
                text = f"{NORTHWIND_OTHERS[r]} (round {r})"
                batch = [item(f"w{w}-r{r}-filler{k}", f"Filler market note {w} {r} {k} about nothing in particular",
                              60 * r + k) for k in range(3)]
                batch += [item(f"w{w}-r{r}-copy{k}", text if k == 0 else f"RT @w{w}: {text}", 60 * r + 5 + k,
                               source=f"worker{w}") for k in range(2)]
                barrier.wait(timeout=30)
                got = workers[w].assign(batch, NOW)
                results[w].append([a.story_id for a in got[3:]])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(w,)) for w in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    for r in range(rounds):
        ids = set(results[0][r]) | set(results[1][r])
        assert len(ids) == 1, f"round {r}: {ids}"
        assert story_rows(workers[0])[ids.pop()] == (4, 2)


def test_pruning_bounds_state_and_old_stories_start_anew(store_url: str) -> None:
    cfg = StorySettings(window_hours=24, prune_hours=48, prune_every_hours=1)
    index = open_index(store_url, cfg)
    old = index.assign([item("old", OUTAGE[0][1], 0)], NOW)[0]
    assert count(index, story_bands) == cfg.bands
    # Event time moves 3 days on (other news): the old story's buckets and exemplar go.
    index.assign([item("new", NORTHWIND_OTHERS[0], 3 * 24 * 60)], NOW)
    assert count(index, story_bands) == cfg.bands
    assert count(index, story_exemplars) == 1
    back = index.assign([item("back", OUTAGE[0][1], 3 * 24 * 60 + 1)], NOW)[0]
    assert back.story_id != old.story_id and back.novelty == 100
    assert index.assign([item("old", OUTAGE[0][1], 0)], NOW)[0] == old  # assignments themselves are kept
