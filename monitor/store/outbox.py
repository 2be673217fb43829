"""The publishers' outbox: every record `finmon ingest` and `finmon replay` had acknowledged by the broker, kept
until the pipeline's outcome for it is in the store, so that what a restarted memory-only broker lost can be
published again (monitor/sources/outbox.py decides when).

`publish_outbox` - one row per (topic, item): the item id (the record's Kafka key, as UTF-8), the value bytes
    as sent (re-published byte for byte) and their SHA-256, where the broker acknowledged the latest copy
    (`src_partition`, `src_offset`; -1 while a re-publish is under way), `published_at` (that ack) and
    `queued_at` (the first one), and how often the record was re-published.

An entry is *done* once the item is stored (`scored_items` has its id) or this very record was dead-lettered
(a dead letter of the same topic with its key and its value bytes; a corrected record under the same id is
not). Done entries are pruned, and so are entries still not done after the retention (the broker would have
dropped the record by then anyway).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from monitor.store.schema import dead_letters, metadata, scored_items
from monitor.store.times import as_utc

_TS = DateTime(timezone=True)
_CHUNK = 500  # ids per IN (...) list: well under SQLite's variable limit
MAX_KEY_BYTES = 4096  # dead-letter keys longer than this were not published by finmon: never read them

publish_outbox = Table(
    "publish_outbox",
    metadata,
    Column("topic", String(256), primary_key=True),
    Column("key_hash", String(64), primary_key=True),  # SHA-256 of the item id: ids of any length fit the key
    Column("item_id", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("payload_hash", String(64), nullable=False),
    Column("src_partition", Integer, nullable=False),
    Column("src_offset", BigInteger, nullable=False),
    Column("published_at", _TS, nullable=False),
    Column("queued_at", _TS, nullable=False),
    Column("republished", Integer, nullable=False, default=0),
    Index("ix_publish_outbox_queued_at", "queued_at"),
)


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A record the broker acknowledged: what to keep so that it can be published again."""

    topic: str
    item_id: str
    payload: bytes
    partition: int
    offset: int
    published_at: datetime


@dataclass(frozen=True, slots=True)
class Pending:
    """An outbox entry without its payload (kept in the store until it is re-published)."""

    topic: str
    item_id: str
    payload_hash: str
    partition: int
    offset: int
    published_at: datetime
    queued_at: datetime

    @property
    def key_hash(self) -> str:
        return key_hash(self.item_id)

    @property
    def key(self) -> bytes:
        return self.item_id.encode("utf-8")


def key_hash(item_id: str) -> str:
    return hashlib.sha256(item_id.encode("utf-8")).hexdigest()


def payload_hash(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def _insert(conn: Connection) -> postgresql.Insert | sqlite.Insert:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(publish_outbox)


def write_entries(conn: Connection, entries: Sequence[OutboxEntry], now: datetime) -> None:
    """Upsert entries in the caller's transaction (ingest writes them together with its dedupe keys). A second
    publish of the same item points the entry at the newer copy; `queued_at` keeps the first."""
    rows = {
        (e.topic, key_hash(e.item_id)): {
            "topic": e.topic, "key_hash": key_hash(e.item_id), "item_id": e.item_id, "payload": e.payload,
            "payload_hash": payload_hash(e.payload), "src_partition": e.partition, "src_offset": e.offset,
            "published_at": e.published_at, "queued_at": now, "republished": 0,
        }
        for e in entries
    }  # fmt: skip
    if not rows:
        return
    stmt = _insert(conn)
    moved = ("payload", "payload_hash", "src_partition", "src_offset", "published_at")
    conn.execute(
        stmt.on_conflict_do_update(index_elements=["topic", "key_hash"], set_={c: stmt.excluded[c] for c in moved}),
        list(rows.values()),
    )


def _pending(row: Any) -> Pending:
    published, queued = as_utc(row.published_at), as_utc(row.queued_at)
    assert published is not None and queued is not None  # noqa: S101  (NOT NULL columns)
    return Pending(row.topic, row.item_id, row.payload_hash, row.src_partition, row.src_offset, published, queued)


class Outbox:
    """Typed access to `publish_outbox`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, entries: Sequence[OutboxEntry], now: datetime) -> None:
        with self.engine.begin() as conn:
            write_entries(conn, entries, now)

    def entries(self, topic: str) -> list[Pending]:
        """Every entry of `topic`, done or not, oldest first (in the order the broker took them)."""
        cols = [c for c in publish_outbox.c if c.name != "payload"]
        query = select(*cols).where(publish_outbox.c.topic == topic).order_by(
            publish_outbox.c.queued_at, publish_outbox.c.src_partition, publish_outbox.c.src_offset
        )
        with self.engine.connect() as conn:
            return [_pending(row) for row in conn.execute(query)]

    def pending(self, topic: str) -> list[Pending]:
        """Entries of `topic` whose item is neither stored nor dead-lettered yet, oldest first."""
        entries = self.entries(topic)
        done = self.done(topic, {e.item_id: e.payload_hash for e in entries})
        return [e for e in entries if e.item_id not in done]

    def done(self, topic: str, records: Mapping[str, str]) -> set[str]:
        """The ids among `records` (item id -> payload hash) the pipeline has finished with: the id is stored, or
        that record was dead-lettered from `topic`."""
        wanted = sorted(records)
        stored: set[str] = set()
        with self.engine.connect() as conn:
            for i in range(0, len(wanted), _CHUNK):
                query = select(scored_items.c.id).where(scored_items.c.id.in_(wanted[i : i + _CHUNK]))
                stored.update(row[0] for row in conn.execute(query))
            keys = _dead_letter_keys(conn, topic) if wanted else set()
            suspects = [i for i in wanted if i not in stored and i.encode("utf-8") in keys]
            letters = _dead_letter_records(conn, topic, suspects)
        return stored | {i for i in suspects if (i, records[i]) in letters}

    def payloads(self, topic: str, item_ids: Sequence[str]) -> dict[str, bytes]:
        """item id -> the value bytes as first sent."""
        hashes = [key_hash(i) for i in item_ids]
        out: dict[str, bytes] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(hashes), _CHUNK):
                query = select(publish_outbox.c.item_id, publish_outbox.c.payload).where(
                    publish_outbox.c.topic == topic, publish_outbox.c.key_hash.in_(hashes[i : i + _CHUNK])
                )
                out.update((row.item_id, bytes(row.payload)) for row in conn.execute(query))
        return out

    def claim(self, entries: Sequence[Pending]) -> list[Pending]:
        """Take entries for a re-publish: each one only if it still points where it did when read, so two
        publishers recovering the same topic at once never both re-publish an item. A claimed entry points
        nowhere (-1) until the new copy is recorded; if that never happens the next recovery takes it again."""
        claimed: list[Pending] = []
        with self.engine.begin() as conn:
            for entry in entries:
                moved = conn.execute(
                    publish_outbox.update()
                    .where(
                        publish_outbox.c.topic == entry.topic,
                        publish_outbox.c.key_hash == entry.key_hash,
                        publish_outbox.c.src_partition == entry.partition,
                        publish_outbox.c.src_offset == entry.offset,
                    )
                    .values(src_partition=-1, src_offset=-1, republished=publish_outbox.c.republished + 1)
                )
                if moved.rowcount:
                    claimed.append(entry)
        return claimed

    def prune(self, topic: str, expire_before: datetime) -> tuple[int, int]:
        """Delete the done entries of `topic` and those queued before `expire_before`; returns (done, expired)."""
        with self.engine.begin() as conn:
            old = publish_outbox.delete().where(publish_outbox.c.topic == topic,
                                                publish_outbox.c.queued_at < expire_before)
            expired = int(conn.execute(old).rowcount or 0)
        done = sorted(key_hash(i) for i in self.done(topic, {e.item_id: e.payload_hash for e in self.entries(topic)}))
        deleted = 0
        with self.engine.begin() as conn:
            for i in range(0, len(done), _CHUNK):
                stmt = publish_outbox.delete().where(
                    publish_outbox.c.topic == topic, publish_outbox.c.key_hash.in_(done[i : i + _CHUNK])
                )
                deleted += int(conn.execute(stmt).rowcount or 0)
        return deleted, expired

    def item_ids(self, topic: str) -> set[str]:
        with self.engine.connect() as conn:
            query = select(publish_outbox.c.item_id).where(publish_outbox.c.topic == topic)
            return {row[0] for row in conn.execute(query)}

    def count(self, topic: str | None = None) -> int:
        query = select(func.count()).select_from(publish_outbox)
        if topic is not None:
            query = query.where(publish_outbox.c.topic == topic)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())


def _dead_letter_keys(conn: Connection, topic: str) -> set[bytes]:
    """Keys of the records dead-lettered from `topic`. One pass over the dead letters: they are few, and no
    index on their keys exists (a key index would let one huge key from a bad producer fail the sink)."""
    query = (
        select(dead_letters.c.payload_key)
        .where(dead_letters.c.src_topic == topic, dead_letters.c.payload_key.is_not(None),
               func.length(dead_letters.c.payload_key) <= MAX_KEY_BYTES)
        .distinct()
    )  # fmt: skip
    return {bytes(row[0]) for row in conn.execute(query)}


def _dead_letter_records(conn: Connection, topic: str, item_ids: list[str]) -> set[tuple[str, str]]:
    """(item id, payload hash) of the dead letters of `topic` keyed by one of `item_ids`."""
    out: set[tuple[str, str]] = set()
    keys = [i.encode("utf-8") for i in item_ids]
    for i in range(0, len(keys), _CHUNK):
        query = select(dead_letters.c.payload_key, dead_letters.c.payload).where(
            dead_letters.c.src_topic == topic, dead_letters.c.payload_key.in_(keys[i : i + _CHUNK])
        )
        out.update((bytes(row[0]).decode("utf-8"), payload_hash(bytes(row[1]))) for row in conn.execute(query))
    return out
