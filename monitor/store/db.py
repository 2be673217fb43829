"""The store: SQLite (embedded default, WAL) or PostgreSQL (multi-machine), through SQLAlchemy 2 Core.

Writes are idempotent so that at-least-once delivery never counts anything twice: scored items are keyed by
item id, dead letters by (stage, source topic, partition, offset).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError, SQLAlchemyError

from monitor.errors import StoreError
from monitor.records import DeadLetter, ScoredItem
from monitor.store import windows as windows_store
from monitor.store.migrate import add_missing_column
from monitor.store.schema import (
    aggregate_items,
    dead_letters,
    metadata,
    scored_items,
    source_marks,
    unsettled_index,
    windows,
)
from monitor.store.times import as_utc as as_utc  # re-exported: callers import it from here and from monitor.store

log = logging.getLogger(__name__)
_STORY_WINDOW_COLUMNS = ("n_stories", "n_negative_stories", "sum_novelty", "sum_nov_score_u", "story_sentiment",
                         "story_negative_share", "story_z", "story_sentiment_z")

# Errors worth waiting out (server down, locked file) rather than treating a batch as bad.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError)


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL and a busy timeout so several workers can share one file."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(
            f"store URL {url!r} is not a SQLAlchemy URL; use e.g. sqlite:///finmon.db or "
            "postgresql+psycopg://user@host/db"
        ) from exc
    if parsed.drivername == "postgresql":  # plain postgresql:// means psycopg2, which we don't ship
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    return create_engine(parsed, pool_pre_ping=True, future=True)


def _sqlite_engine(parsed: Any) -> Engine:
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args={"timeout": 30}, future=True)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=30000")  # first: switching to WAL below may wait for another writer
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    return engine


def _lost_create_race(exc: SQLAlchemyError) -> bool:
    text = str(exc).lower()
    return "already exists" in text or "duplicate key" in text or "database is locked" in text


class Store:
    """Typed access to the finmon tables."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name

    def create_schema(self) -> None:
        """Create missing tables (idempotent)."""
        from monitor.store import heartbeats, outbox, prices, track  # noqa: F401  (lazy: registers their tables)

        for attempt in range(5):
            try:
                metadata.create_all(self.engine)
                heartbeats.add_missing_columns(self.engine)
                add_missing_column(self.engine, scored_items, "links")
                add_missing_column(self.engine, source_marks, "feeds")
                # the story pass (monitor/windows/stories.py) and its news.stories messages
                for name in ("story_text", "source", "story_id", "novelty", "story_sent"):
                    add_missing_column(self.engine, aggregate_items, name)
                unsettled_index.create(self.engine, checkfirst=True)
                with self.engine.begin() as conn:
                    windows_store.retire_pre_story_items(conn)
                for name in _STORY_WINDOW_COLUMNS:
                    add_missing_column(self.engine, windows, name)
                return
            except SQLAlchemyError as exc:
                # Workers starting together race to create the same tables: the loser sees "already exists"
                # (SQLite) or a duplicate catalogue key (PostgreSQL); the next pass finds the tables and skips them.
                if _lost_create_race(exc) and attempt < 4:
                    time.sleep(0.2 * (attempt + 1))
                    continue
                raise self._schema_error(exc) from exc

    def _schema_error(self, exc: SQLAlchemyError) -> StoreError:
        return StoreError(
            f"cannot create the schema in {self.safe_url}: {exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0]}; check FINMON_STORE_URL and that the database is up"
        )

    @property
    def safe_url(self) -> str:
        """The URL without its password, for logs and errors."""
        return make_url(self.url).render_as_string(hide_password=True)

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def _insert(self, table: Any) -> Any:
        dialect = postgresql if self.dialect == "postgresql" else sqlite
        return dialect.insert(table)

    def upsert_scored(self, items: Sequence[ScoredItem], now: datetime) -> tuple[int, list[ScoredItem]]:
        """Insert new items; return (rows inserted, items whose id is already stored from *another* record).

        An item redelivered from the same news.raw offset is a no-op; the same id from a different offset is
        a duplicate publish, returned so the caller can dead-letter it (nothing is silently dropped).
        """
        if not items:
            return 0, []
        first: dict[str, ScoredItem] = {}
        for item in items:
            first.setdefault(item.item.id, item)
        rows = [_scored_row(item, now) for item in first.values()]
        with self.engine.begin() as conn:
            before = self._origins(conn, list(first))
            conn.execute(self._insert(scored_items).on_conflict_do_nothing(index_elements=["id"]), rows)
            after = self._origins(conn, list(first))
        inserted = len(after) - len(before)
        return inserted, [item for item in items if after.get(item.item.id) != _origin(item)]

    @staticmethod
    def _origins(conn: Any, ids: list[str]) -> dict[str, tuple[int, int]]:
        query = select(scored_items.c.id, scored_items.c.src_partition, scored_items.c.src_offset).where(
            scored_items.c.id.in_(ids)
        )
        return {row.id: (row.src_partition, row.src_offset) for row in conn.execute(query)}

    def add_dead_letters(self, letters: Iterable[DeadLetter], now: datetime) -> int:
        """Record dead letters; the same (stage, topic, partition, offset) twice is stored once."""
        rows = [_dead_row(letter, now) for letter in letters]
        if not rows:
            return 0
        keys = ["stage", "src_topic", "src_partition", "src_offset"]
        with self.engine.begin() as conn:
            stmt = self._insert(dead_letters).on_conflict_do_nothing(index_elements=keys)
            # RETURNING counts reliably on both dialects (executemany rowcount does not on psycopg).
            return len(conn.execute(stmt.returning(dead_letters.c.stage), rows).all())

    def count_scored(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(scored_items)).scalar_one())

    def count_dead_letters(self, stages: Iterable[str] | None = None) -> dict[str, int]:
        """Dead letters by reason, optionally only those of some stages."""
        query = select(dead_letters.c.reason, func.count()).group_by(dead_letters.c.reason)
        if stages is not None:
            query = query.where(dead_letters.c.stage.in_(list(stages)))
        with self.engine.connect() as conn:
            return {reason: int(n) for reason, n in conn.execute(query)}

    def count_dead_letters_by_stage(self) -> dict[str, int]:
        query = select(dead_letters.c.stage, func.count()).group_by(dead_letters.c.stage)
        with self.engine.connect() as conn:
            return {stage: int(n) for stage, n in conn.execute(query)}

    def scored_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            return [row[0] for row in conn.execute(select(scored_items.c.id))]

    def dead_letter_rows(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(select(dead_letters))]

    def dispose(self) -> None:
        self.engine.dispose()


def _origin(item: ScoredItem) -> tuple[int, int]:
    return (item.src_partition, item.src_offset)


def _scored_row(item: ScoredItem, now: datetime) -> dict[str, Any]:
    raw = item.item
    return {
        "id": raw.id,
        "published_at": raw.published_at,
        "title": raw.title,
        "body": raw.body,
        "source": raw.source,
        "url": raw.url,
        "tickers": list(raw.tickers),
        "links": item.links,
        "lang": raw.lang,
        "fetched_at": raw.fetched_at,
        "topic": item.topic,
        "topic_probs": item.topic_probs,
        "sentiment": item.sentiment,
        "p_negative": item.sentiment_probs["negative"],
        "p_neutral": item.sentiment_probs["neutral"],
        "p_positive": item.sentiment_probs["positive"],
        "sentiment_score": item.sentiment_score,
        "model_version": item.model_version,
        "scored_at": item.scored_at,
        "src_partition": item.src_partition,
        "src_offset": item.src_offset,
        "stored_at": now,
    }


def _dead_row(letter: DeadLetter, now: datetime) -> dict[str, Any]:
    return {
        "stage": letter.stage,
        "src_topic": letter.topic,
        "src_partition": letter.partition,
        "src_offset": letter.offset,
        "reason": letter.reason,
        "detail": letter.detail[:2000],
        "payload": letter.payload,
        "payload_key": letter.key,
        "failed_at": letter.at,
        "stored_at": now,
    }
