"""`StoryIndex`: story assignment with its state in the store, for several classify workers at once.

Tables (monitor/store/schema.py):

`stories`          one row per story: first_seen, last_seen (event times of its earliest and latest items),
                   n_items, n_sources (distinct `source` values), headline (first line of its first item's
                   text, 300 characters at most), first_item_id.
`story_items`      one row per item ever assigned: its story, event time, novelty, source. Never pruned: it is
                   what makes a redelivery return the first assignment.
`story_sources`    (story_id, source) pairs, for n_sources.
`story_bands`      LSH buckets: (hash, band, story_id) -> the exemplar item that put the story in that
                   bucket, and last_seen, the event time of the story's latest item in it (moved on in steps
                   of at least `prune_every_hours`, so that copies of a busy story do not rewrite its
                   buckets every time). Pruned.
`story_exemplars`  the exemplars' MinHash signatures and cashtags. Pruned with the buckets that use them.
`story_progress`   one row: the newest event time assigned (watermark) and the watermark of the last prune.

One `assign` call is one transaction:

1. Write the `story_progress` row (an upsert that changes nothing), then read the watermark. This is the
   transaction's first statement and takes that row's write lock, so concurrent `assign` calls, from any
   worker, run one after the other: on PostgreSQL the upsert waits for the row lock of the transaction
   ahead, and as READ COMMITTED gives every
   later statement a fresh snapshot, they see all it wrote; on SQLite a transaction whose first statement is
   a write takes the database's write lock (waiting up to the busy timeout), before it has read anything.
   Why a lock rather than deterministic ids and insert-on-conflict: a story is a set of LSH buckets, and two
   workers starting copies of one story concurrently would each claim some of them, then have to merge
   stories that other items may already have joined. Serialised, every decision sees every earlier one; the
   lock is held only for a few indexed reads and writes per batch (signatures are computed before it), far
   below the model's time per batch (measured in benchmarks/bench_stories.py).
2. Items already in `story_items` get their stored assignment back (redelivery; nothing is counted twice).
3. Load the buckets of the new items' band hashes, their exemplars, and the event times of the candidate
   stories near the batch; decide each new item in input order with `StoryBook` (monitor/stories/book.py),
   so copies within one batch join each other.
4. Write the items, the stories' counters, sources, the book's final state of the buckets the batch
   touched, the new exemplars, and the new watermark.
5. Once per `prune_every_hours` of watermark progress, delete buckets not seen for `prune_hours` of event
   time behind the watermark, and exemplars no bucket uses any more. Decisions already ignore such buckets
   (StoryBook), so this is garbage collection: it never changes an assignment.

This returns exactly what `MemoryStories` (monitor/stories/memory.py) returns for the same items in the
same order, in any batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, any_, bindparam, cast, delete, exists, func, literal_column, select, update
from sqlalchemy.dialects import postgresql

from monitor.clock import ensure_utc, from_micros, to_micros
from monitor.config import StorySettings
from monitor.store import Store
from monitor.store.dialect import insert_stmt
from monitor.store.schema import stories as stories_table
from monitor.store.schema import story_bands, story_exemplars, story_items, story_progress, story_sources
from monitor.stories.book import (
    Decision,
    Exemplar,
    Fingerprint,
    StoryAssignment,
    StoryBook,
    StoryInput,
    fingerprint_items,
    first_copies,
    headline_of,
)
from monitor.stories.memory import PrunePlan, make_book, make_hasher
from monitor.stories.minhash import from_bytes, to_bytes

_CHUNK = 900  # values per IN (...) list: well under SQLite's variable limit
_PROGRESS_ID = 1


class StoryIndex:
    """Assigns each item a story id and a novelty, keeping the state in `store` (see the module docstring)."""

    def __init__(self, store: Store, cfg: StorySettings) -> None:
        self.store, self.cfg = store, cfg
        self.hasher, self.plan = make_hasher(cfg), PrunePlan.from_settings(cfg)

    def assign(self, items: Sequence[StoryInput], now: datetime | None = None) -> list[StoryAssignment]:
        """Assignments of `items`, in order. An item id assigned before (by any worker, before any restart)
        gets its stored assignment back; a repeated id within the batch gets its first copy's."""
        if not items:
            return []
        firsts = [replace(item, published_at=ensure_utc(item.published_at)) for item in first_copies(items)]
        fps = fingerprint_items(self.hasher, firsts)  # before the lock: pure CPU
        with self.store.engine.begin() as conn:
            done = self._assign(conn, firsts, fps, now or datetime.now(UTC))
        return [done[item.item_id] for item in items]

    def assign_in(self, conn: Connection, items: Sequence[StoryInput],
                  now: datetime | None = None) -> list[StoryAssignment]:
        """`assign` inside the caller's transaction (the story pass at the watermark, which writes the
        windows in the same one). Fingerprints are computed under the caller's locks here."""
        if not items:
            return []
        firsts = [replace(item, published_at=ensure_utc(item.published_at)) for item in first_copies(items)]
        done = self._assign(conn, firsts, fingerprint_items(self.hasher, firsts), now or datetime.now(UTC))
        return [done[item.item_id] for item in items]

    def _assign(self, conn: Connection, items: list[StoryInput], fps: list[Fingerprint],
                now: datetime) -> dict[str, StoryAssignment]:
        watermark, pruned = _lock(conn)
        done = _known(conn, [item.item_id for item in items])
        todo = [(item, fp, to_micros(item.published_at)) for item, fp in zip(items, fps, strict=True)
                if item.item_id not in done]
        if not todo:
            return done
        book = self._load(conn, todo, watermark)
        decisions = [book.assign(item.item_id, fp, t_us) for item, fp, t_us in todo]
        _write(conn, book, [(item, fp, d) for (item, fp, _), d in zip(todo, decisions, strict=True)], now)
        done.update({d.assignment.item_id: d.assignment for d in decisions})
        latest = max(t_us for _, _, t_us in todo)
        watermark = latest if watermark is None else max(watermark, latest)  # what the book ended with
        conn.execute(update(story_progress).where(story_progress.c.id == _PROGRESS_ID)
                     .values(watermark=from_micros(watermark)))
        cutoff = self.plan.cutoff(watermark, pruned)
        if cutoff is not None:
            _prune(conn, from_micros(cutoff), from_micros(watermark))
        return done

    def _load(self, conn: Connection, todo: list[tuple[StoryInput, Fingerprint, int]],
              watermark: int | None) -> StoryBook:
        """The book for this batch: buckets of its band hashes, their exemplars, candidate stories' times."""
        book = make_book(self.cfg, watermark)
        wanted = {(band, value) for _, fp, _ in todo for band, value in enumerate(fp.bands)}
        for row in _rows(conn, select(story_bands), story_bands.c.hash, {value for _, value in wanted}):
            if (row.band, row.hash) in wanted:
                book.buckets.setdefault((row.band, row.hash), {})[row.story_id] = row.exemplar_id
                book.last_seen[(row.band, row.hash, row.story_id)] = to_micros(_utc(row.last_seen))
        exemplar_ids = {ex for members in book.buckets.values() for ex in members.values()}
        for row in _rows(conn, select(story_exemplars), story_exemplars.c.item_id, exemplar_ids):
            book.exemplars[row.item_id] = Exemplar(row.item_id, row.story_id, from_bytes(row.signature),
                                                   frozenset(row.tickers.split()), to_micros(_utc(row.published_at)))
        story_ids = {story for members in book.buckets.values() for story in members}
        times = [t_us for _, _, t_us in todo]
        lo, hi = from_micros(min(times) - book.window_us), from_micros(max(times) + book.window_us)
        query = select(story_items.c.story_id, story_items.c.published_at).where(
            story_items.c.published_at >= lo, story_items.c.published_at <= hi)
        for row in _rows(conn, query, story_items.c.story_id, story_ids):
            book.times.setdefault(row.story_id, []).append(to_micros(_utc(row.published_at)))
        for values in book.times.values():
            values.sort()
        return book


def _lock(conn: Connection) -> tuple[int | None, int | None]:
    """Write the progress row (the transaction's first statement: it serialises assignments, see the module
    docstring) and return its watermark and last prune, in us."""
    stmt = insert_stmt(conn, story_progress).values(id=_PROGRESS_ID, watermark=None, pruned_at=None)
    conn.execute(stmt.on_conflict_do_update(index_elements=["id"], set_={"id": stmt.excluded.id}))
    row = conn.execute(select(story_progress).where(story_progress.c.id == _PROGRESS_ID)).one()
    return _micros(row.watermark), _micros(row.pruned_at)


def _micros(when: datetime | None) -> int | None:
    return None if when is None else to_micros(_utc(when))


def _utc(when: datetime) -> datetime:
    """A stored (non-null) datetime, in UTC (SQLite hands back naive ones)."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _greatest(conn: Connection, a: Any, b: Any) -> Any:
    return func.max(a, b) if conn.dialect.name == "sqlite" else func.greatest(a, b)


def _least(conn: Connection, a: Any, b: Any) -> Any:
    return func.min(a, b) if conn.dialect.name == "sqlite" else func.least(a, b)


def _rows(conn: Connection, query: Any, column: Any, values: Iterable[Any]) -> list[Any]:
    """`query` restricted to `column IN values`: one array parameter on PostgreSQL (`= ANY`), chunks of
    IN lists on SQLite."""
    values = sorted(values)
    if not values:
        return []
    if conn.dialect.name == "postgresql":
        array = bindparam("values", values, type_=postgresql.ARRAY(column.type))
        return list(conn.execute(query.where(column == any_(array))).all())
    out: list[Any] = []
    for i in range(0, len(values), _CHUNK):
        out.extend(conn.execute(query.where(column.in_(values[i : i + _CHUNK]))).all())
    return out


def _insert_rows(conn: Connection, table: Any, rows: list[dict[str, Any]],
                 on_conflict: Callable[[Any], Any] = lambda stmt: stmt) -> None:
    """INSERT many rows (all with the same keys), `on_conflict` applied to the statement. On PostgreSQL
    as one statement over `unnest` of one array per column, which is ~10x faster than psycopg's
    row-by-row executemany; on SQLite as an executemany."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(on_conflict(insert_stmt(conn, table)), rows)
        return
    names = list(rows[0])
    arrays = [cast(bindparam(f"a_{name}", [row[name] for row in rows], type_=postgresql.ARRAY(table.c[name].type)),
                   postgresql.ARRAY(table.c[name].type)) for name in names]
    source: Any = select(literal_column("*")).select_from(func.unnest(*arrays))
    conn.execute(on_conflict(postgresql.insert(table).from_select(names, source)))


def _known(conn: Connection, ids: list[str]) -> dict[str, StoryAssignment]:
    query = select(story_items.c.item_id, story_items.c.story_id, story_items.c.novelty)
    return {row.item_id: StoryAssignment(row.item_id, row.story_id, int(row.novelty))
            for row in _rows(conn, query, story_items.c.item_id, ids)}


def _write(conn: Connection, book: StoryBook, decided: list[tuple[StoryInput, Fingerprint, Decision]],
           now: datetime) -> None:
    _insert_rows(conn, story_items, [
        {"item_id": item.item_id, "story_id": d.assignment.story_id, "published_at": item.published_at,
         "novelty": d.assignment.novelty, "source": item.source, "assigned_at": now} for item, _, d in decided])
    _write_stories(conn, decided)
    _write_buckets(conn, book, decided)
    exemplars = [{"item_id": item.item_id, "story_id": d.assignment.story_id, "published_at": item.published_at,
                  "signature": to_bytes(fp.signature), "tickers": " ".join(sorted(fp.tickers))}
                 for item, fp, d in decided if d.new_buckets]
    _insert_rows(conn, story_exemplars, exemplars)


def _write_stories(conn: Connection, decided: list[tuple[StoryInput, Fingerprint, Decision]]) -> None:
    """Add the batch's items to their stories' counters (creating new stories), then recount sources."""
    rows: dict[str, dict[str, Any]] = {}
    for item, _, d in decided:
        story = d.assignment.story_id
        row = rows.setdefault(story, {"story_id": story, "first_seen": item.published_at,
                                      "last_seen": item.published_at, "n_items": 0, "n_sources": 0,
                                      "headline": headline_of(item.text), "first_item_id": item.item_id})
        row["first_seen"] = min(row["first_seen"], item.published_at)
        row["last_seen"] = max(row["last_seen"], item.published_at)
        row["n_items"] += 1
    ordered = [rows[k] for k in sorted(rows)]  # one lock order
    stmt = insert_stmt(conn, stories_table)
    c = stories_table.c
    conn.execute(stmt.on_conflict_do_update(index_elements=["story_id"], set_={
        "n_items": c.n_items + stmt.excluded.n_items,
        "first_seen": _least(conn, c.first_seen, stmt.excluded.first_seen),
        "last_seen": _greatest(conn, c.last_seen, stmt.excluded.last_seen)}), ordered)
    pairs = sorted({(d.assignment.story_id, item.source) for item, _, d in decided})
    conn.execute(insert_stmt(conn, story_sources).on_conflict_do_nothing(),
                 [{"story_id": s, "source": src} for s, src in pairs])
    count = (select(func.count()).select_from(story_sources)
             .where(story_sources.c.story_id == c.story_id).scalar_subquery())
    for i in range(0, len(ordered), _CHUNK):
        ids = [row["story_id"] for row in ordered[i : i + _CHUNK]]
        conn.execute(update(stories_table).where(c.story_id.in_(ids)).values(n_sources=count))


def _write_buckets(conn: Connection, book: StoryBook,
                   decided: list[tuple[StoryInput, Fingerprint, Decision]]) -> None:
    """Store the book's final state of every bucket entry the batch created, replaced or refreshed (we hold
    the lock, so the book's view is the stored one plus this batch)."""
    keys = sorted({(value, band, d.assignment.story_id) for _, _, d in decided
                   for band, value in d.new_buckets + d.refreshed})
    rows = [{"hash": value, "band": band, "story_id": story, "exemplar_id": book.buckets[(band, value)][story],
             "last_seen": from_micros(book.last_seen[(band, value, story)])} for value, band, story in keys]
    _insert_rows(conn, story_bands, rows, lambda stmt: stmt.on_conflict_do_update(
        index_elements=["hash", "band", "story_id"],
        set_={"exemplar_id": stmt.excluded.exemplar_id, "last_seen": stmt.excluded.last_seen}))


def _prune(conn: Connection, cutoff: datetime, watermark: datetime) -> None:
    """Drop buckets last seen before `cutoff` and the exemplars no bucket uses any more."""
    conn.execute(delete(story_bands).where(story_bands.c.last_seen < cutoff))
    # Anti-joins that stay linear without an index on exemplar_id: PostgreSQL hashes NOT EXISTS, SQLite
    # builds a temporary index for NOT IN (it would rescan story_bands per exemplar for NOT EXISTS).
    if conn.dialect.name == "postgresql":
        unused = ~exists().where(story_bands.c.exemplar_id == story_exemplars.c.item_id)
    else:
        unused = story_exemplars.c.item_id.not_in(select(story_bands.c.exemplar_id))
    conn.execute(delete(story_exemplars).where(and_(story_exemplars.c.published_at < cutoff, unused)))
    conn.execute(update(story_progress).where(story_progress.c.id == _PROGRESS_ID).values(pruned_at=watermark))
