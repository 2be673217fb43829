"""Tables of the store. One MetaData for every table, so `create_all` builds the whole schema."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

# Tz-aware columns: PostgreSQL keeps the zone; on SQLite the store converts back to UTC on read.
_TS = DateTime(timezone=True)

scored_items = Table(
    "scored_items",
    metadata,
    Column("id", String(256), primary_key=True),
    Column("published_at", _TS, nullable=False),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False, default=""),
    Column("source", String(512), nullable=False, default=""),
    Column("url", Text, nullable=False, default=""),
    Column("tickers", JSON, nullable=False),
    Column("lang", String(16)),
    Column("fetched_at", _TS),
    Column("topic", String(128), nullable=False),
    Column("topic_probs", JSON, nullable=False),
    Column("sentiment", String(16), nullable=False),
    Column("p_negative", Float, nullable=False),
    Column("p_neutral", Float, nullable=False),
    Column("p_positive", Float, nullable=False),
    Column("sentiment_score", Float, nullable=False),
    Column("model_version", String(256), nullable=False),
    Column("scored_at", _TS, nullable=False),
    Column("src_partition", Integer, nullable=False),
    Column("src_offset", BigInteger, nullable=False),
    Column("stored_at", _TS, nullable=False),
    Index("ix_scored_items_published_at", "published_at"),
    Index("ix_scored_items_topic_published", "topic", "published_at"),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    # A record is dead-lettered at most once per stage: redeliveries hit the same key.
    Column("stage", String(64), primary_key=True),
    Column("src_topic", String(256), primary_key=True),
    Column("src_partition", Integer, primary_key=True),
    Column("src_offset", BigInteger, primary_key=True),
    Column("reason", String(64), nullable=False),
    Column("detail", Text, nullable=False, default=""),
    Column("payload", LargeBinary, nullable=False),
    Column("payload_key", LargeBinary),
    Column("failed_at", _TS, nullable=False),
    Column("stored_at", _TS, nullable=False),
    Index("ix_dead_letters_reason", "reason"),
)
