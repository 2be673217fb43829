"""Scraper state that must survive restarts: dedupe keys already published and each feed's HTTP validators.

`ingest_seen` — one row per dedupe key (canonical URL, feed guid, content hash) of a published item; keys
    are stored as their SHA-256 so that long URLs fit an indexed column. A key is written only after the item
    was acknowledged by the broker, in one transaction with the item's outbox entry (monitor/store/outbox.py),
    so a crash can re-publish (the sink dedupes by id) but never lose, and a restarted broker that forgets the
    record does not lose it either. Keys older than the feeds file's `seen_retention_days` are pruned.
`ingest_feeds` — per feed: the ETag / Last-Modified of the last successful fetch, for conditional GETs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, Connection, DateTime, Engine, String, Table, Text, func, select
from sqlalchemy.dialects import postgresql, sqlite

from monitor.store.outbox import OutboxEntry, write_entries
from monitor.store.schema import metadata

_TS = DateTime(timezone=True)
_CHUNK = 500  # keys per IN (...) list: well under SQLite's variable limit

ingest_seen = Table(
    "ingest_seen",
    metadata,
    Column("key_hash", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("key_text", Text, nullable=False),
    Column("feed", String(256), nullable=False),
    Column("item_id", String(256), nullable=False),
    Column("seen_at", _TS, nullable=False),
)

ingest_feeds = Table(
    "ingest_feeds",
    metadata,
    Column("feed", String(256), primary_key=True),
    Column("url", Text, nullable=False),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("updated_at", _TS, nullable=False),
)


@dataclass(frozen=True, slots=True)
class SeenKey:
    """A dedupe key of a published item, e.g. kind 'url' and text 'https://example.com/a'."""

    kind: str
    text: str
    feed: str
    item_id: str

    @property
    def digest(self) -> str:
        return key_digest(self.kind, self.text)


@dataclass(frozen=True, slots=True)
class Validators:
    """HTTP cache validators of a feed's last successful fetch."""

    url: str = ""
    etag: str | None = None
    last_modified: str | None = None


def key_digest(kind: str, text: str) -> str:
    return hashlib.sha256(f"{kind}\x1f{text}".encode()).hexdigest()


def _insert(conn: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


class IngestState:
    """Typed access to the two scraper tables."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def seen(self, digests: Sequence[str]) -> set[str]:
        """The digests among `digests` that are already stored."""
        out: set[str] = set()
        unique = sorted(set(digests))
        with self.engine.connect() as conn:
            for i in range(0, len(unique), _CHUNK):
                query = select(ingest_seen.c.key_hash).where(ingest_seen.c.key_hash.in_(unique[i : i + _CHUNK]))
                out.update(row[0] for row in conn.execute(query))
        return out

    def mark_seen(self, keys: Sequence[SeenKey], now: datetime, sent: Sequence[OutboxEntry] = ()) -> None:
        """Remember published items' keys, and their outbox entries (`sent`) in the same transaction; a key
        stored already is left as it was (first publisher wins)."""
        rows = {
            key.digest: {
                "key_hash": key.digest, "kind": key.kind, "key_text": key.text[:4000],
                "feed": key.feed, "item_id": key.item_id, "seen_at": now,
            }
            for key in keys
        }  # fmt: skip
        if not rows and not sent:
            return
        with self.engine.begin() as conn:
            if rows:
                conn.execute(_insert(conn, ingest_seen).on_conflict_do_nothing(index_elements=["key_hash"]),
                             list(rows.values()))
            write_entries(conn, sent, now)

    def prune_seen(self, before: datetime) -> int:
        """Forget keys first seen before `before`; returns how many. Without this the table grows forever. An
        item that reappears after its key was pruned is published again and deduped downstream by its id."""
        with self.engine.begin() as conn:
            return int(conn.execute(ingest_seen.delete().where(ingest_seen.c.seen_at < before)).rowcount or 0)

    def count_seen(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(ingest_seen)).scalar_one())

    def validators(self, feed: str) -> Validators:
        """The validators saved for `feed`, or empty ones."""
        query = select(ingest_feeds).where(ingest_feeds.c.feed == feed)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return Validators()
        return Validators(row.url, row.etag, row.last_modified)

    def save_validators(self, feed: str, validators: Validators, now: datetime) -> None:
        row = {"feed": feed, "url": validators.url, "etag": validators.etag,
               "last_modified": validators.last_modified, "updated_at": now}
        with self.engine.begin() as conn:
            stmt = _insert(conn, ingest_feeds)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["feed"],
                set_={"url": stmt.excluded.url, "etag": stmt.excluded.etag,
                      "last_modified": stmt.excluded.last_modified, "updated_at": stmt.excluded.updated_at}), row)
