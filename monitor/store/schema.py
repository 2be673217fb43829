"""Tables of the store. One MetaData for every table, so `create_all` builds the whole schema."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
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
    Column("links", JSON),  # symbol -> relevance 0-100 (monitor/entities); null: scored before linking
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
    Index("ix_scored_items_stored_at", "stored_at"),
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

# --- Windows (monitor/windows, the aggregate stage). Column meanings: monitor/store/windows.py. ---

aggregate_items = Table(
    "aggregate_items",
    metadata,
    # One row per distinct item id the aggregate stage accepted or found late: its first decision is final.
    Column("item_id", String(256), primary_key=True),
    Column("event_time", _TS, nullable=False),
    Column("late", Boolean, nullable=False),
    Column("keys", JSON, nullable=False),
    Column("label", String(16), nullable=False),
    Column("score_u", BigInteger, nullable=False),
    Column("conf_u", BigInteger, nullable=False),
    Column("conf_score_u", BigInteger, nullable=False),
    Column("src_partition", Integer, nullable=False),
    Column("src_offset", BigInteger, nullable=False),
    # What the story pass at the watermark reads and decides (monitor/windows/stories.py); null story_id:
    # not settled yet. Added to older stores by Store.create_schema.
    Column("story_text", Text),
    Column("source", String(512)),
    Column("story_id", String(32)),
    Column("novelty", Integer),
    # Its story's message on news.stories (monitor/stages/aggregate.py): false until the broker acknowledged
    # it, then true; null: not to be published (publishing off, a late item, or stored before the topic).
    Column("story_sent", Boolean),
    Index("ix_aggregate_items_event_time", "event_time"),
)
# The story pass's work list (items not settled yet), small: settled rows leave it. Created on older stores by
# Store.create_schema (create_all adds indexes only with their table).
unsettled_index = Index("ix_aggregate_items_unsettled", aggregate_items.c.event_time,
                        sqlite_where=aggregate_items.c.story_id.is_(None),
                        postgresql_where=aggregate_items.c.story_id.is_(None))

# --- Stream time (monitor/core). Column meanings: monitor/store/sources.py. ---

source_marks = Table(
    "source_marks",
    metadata,
    # Classify workers: a source partition's max event time through an offset, saved before the offsets
    # are committed, so a worker that resumes the partition at its committed offset resumes its lateness.
    Column("src_topic", String(256), primary_key=True),
    Column("src_partition", Integer, primary_key=True),
    Column("through_offset", BigInteger, primary_key=True),
    Column("max_t_us", BigInteger),
    Column("feeds", JSON),  # feed (item source) -> its max event time there (lateness is per feed); null: older
    Column("saved_at", _TS, nullable=False),
)

stream_marks = Table(
    "stream_marks",
    metadata,
    # Aggregate workers: the latest source mark each news.scored partition has applied to the windows.
    Column("topic", String(256), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("src_partition", Integer, primary_key=True),
    Column("through_offset", BigInteger, nullable=False),
    Column("max_t_us", BigInteger),
    Column("max_event_time", _TS),
    Column("idle", Boolean, nullable=False),
    Column("fanout", Integer, nullable=False),
    Column("sent_at", _TS, nullable=False),
    Column("lag", BigInteger),
    Column("sources", Integer),
)

mark_counts = Table(
    "mark_counts",
    metadata,
    # Source marks classify workers have published per news.scored topic (status tells them from items).
    Column("topic", String(256), primary_key=True),
    Column("sent", BigInteger, nullable=False),
)

window_late = Table(
    "window_late",
    metadata,
    Column("key", String(300), primary_key=True),
    Column("late_count", BigInteger, nullable=False),
    Column("last_late_event_time", _TS, nullable=False),
)

windows = Table(
    "windows",
    metadata,
    Column("key", String(300), primary_key=True),
    Column("size", String(32), primary_key=True),
    Column("window_start", _TS, primary_key=True),
    Column("window_end", _TS, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("n_negative", BigInteger, nullable=False),
    Column("n_neutral", BigInteger, nullable=False),
    Column("n_positive", BigInteger, nullable=False),
    Column("n_stories", BigInteger, nullable=False, server_default="0"),
    Column("n_negative_stories", BigInteger, nullable=False, server_default="0"),
    Column("sum_score_u", BigInteger, nullable=False),
    Column("sum_conf_u", BigInteger, nullable=False),
    Column("sum_conf_score_u", BigInteger, nullable=False),
    Column("sum_novelty", BigInteger, nullable=False, server_default="0"),
    Column("sum_nov_score_u", BigInteger, nullable=False, server_default="0"),
    Column("mean_sentiment", Float),
    Column("negative_share", Float),
    Column("neutral_share", Float),
    Column("positive_share", Float),
    Column("sentiment_index", Float),
    Column("story_sentiment", Float),
    Column("story_negative_share", Float),
    Column("volume_z", Float),
    Column("sentiment_z", Float),
    Column("story_z", Float),
    Column("story_sentiment_z", Float),
    Index("ix_windows_size_end", "size", "window_end"),
)

# --- Alerts (monitor/alerts, the alerting stage). Column meanings: monitor/store/alerts.py. ---

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule", String(128), nullable=False),
    Column("key", String(300), nullable=False),
    Column("state", String(16), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("labels", JSON, nullable=False),
    Column("summary", Text, nullable=False, default=""),
    Column("window", JSON),
    Column("started_at", _TS, nullable=False),
    Column("fired_at", _TS),
    Column("resolved_at", _TS),
    Column("last_notified_at", _TS),
    Column("acked_at", _TS),
    Column("acked_by", String(128)),
    Column("updated_at", _TS, nullable=False),
    Index("ix_alerts_rule_key_state", "rule", "key", "state"),
    Index("ix_alerts_state", "state"),
)

alert_events = Table(
    "alert_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alert_id", Integer, nullable=False),
    Column("rule", String(128), nullable=False),
    Column("key", String(300), nullable=False),
    Column("state", String(16), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("at", _TS, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("published_at", _TS),
    Index("ix_alert_events_unpublished", "published_at"),
)

alert_silences = Table(
    "alert_silences",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule", String(128)),
    Column("key", String(300)),
    Column("starts_at", _TS, nullable=False),
    Column("ends_at", _TS, nullable=False),
    Column("created_by", String(128), nullable=False, default=""),
    Column("comment", Text, nullable=False, default=""),
    Column("created_at", _TS, nullable=False),
)

alert_notifications = Table(
    "alert_notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("channel", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", _TS, nullable=False),
    Column("last_error", Text),
    Column("created_at", _TS, nullable=False),
    Column("sent_at", _TS),
    Index("ix_alert_notifications_status_next", "status", "next_attempt_at"),
)

alert_progress = Table(
    "alert_progress",
    metadata,
    # Stream-mode alerting: the last event-time tick evaluated per stream (news.scored topic).
    Column("stream", String(256), primary_key=True),
    Column("tick", _TS, nullable=False),
)

# --- Stories and novelty (monitor/stories). Column meanings: monitor/stories/index.py. ---

stories = Table(
    "stories",
    metadata,
    Column("story_id", String(32), primary_key=True),
    Column("first_seen", _TS, nullable=False),
    Column("last_seen", _TS, nullable=False),
    Column("n_items", BigInteger, nullable=False),
    Column("n_sources", Integer, nullable=False),
    Column("headline", Text, nullable=False),
    Column("first_item_id", String(256), nullable=False),
    Index("ix_stories_first_seen", "first_seen"),
)

story_items = Table(
    "story_items",
    metadata,
    Column("item_id", String(256), primary_key=True),
    Column("story_id", String(32), nullable=False),
    Column("published_at", _TS, nullable=False),
    Column("novelty", Integer, nullable=False),
    Column("source", String(512), nullable=False),
    Column("assigned_at", _TS, nullable=False),
    Index("ix_story_items_story_published", "story_id", "published_at"),
)

story_sources = Table(
    "story_sources",
    metadata,
    Column("story_id", String(32), primary_key=True),
    Column("source", String(512), primary_key=True),
)

story_bands = Table(
    "story_bands",
    metadata,
    Column("hash", BigInteger, primary_key=True),
    Column("band", Integer, primary_key=True),
    Column("story_id", String(32), primary_key=True),
    Column("exemplar_id", String(256), nullable=False),
    Column("last_seen", _TS, nullable=False),  # no index: pruning scans (bounded) and writes stay cheap
)

story_exemplars = Table(
    "story_exemplars",
    metadata,
    Column("item_id", String(256), primary_key=True),
    Column("story_id", String(32), nullable=False),
    Column("published_at", _TS, nullable=False),
    Column("signature", LargeBinary, nullable=False),
    Column("tickers", Text, nullable=False),
)

story_progress = Table(
    "story_progress",
    metadata,
    # One row (id 1): the newest event time assigned and the watermark of the last prune. Every assignment
    # transaction writes it first, which serialises them (see monitor/stories/index.py).
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("watermark", _TS),
    Column("pruned_at", _TS),
)
