"""Store queries behind the dashboard, as plain functions of an engine (no Streamlit here), so they can be
tested and benchmarked on their own. Every query is bounded by a time range or a LIMIT and uses an index."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy import Engine, String, and_, cast, func, or_, select

from monitor.language import UNDETERMINED
from monitor.records import WINDOW_DERIVED, WINDOW_ZSCORES
from monitor.store import as_utc
from monitor.store.schema import aggregate_items, dead_letters, scored_items
from monitor.windows.spec import parse_spec


@dataclass(frozen=True)
class NewsFilter:
    """What the news explorer filters on; empty means 'everything'."""

    start: datetime | None = None
    end: datetime | None = None
    topics: Sequence[str] = ()
    tickers: Sequence[str] = ()
    sentiments: Sequence[str] = ()
    langs: Sequence[str] = ()  # "und" also selects items stored before language detection (no lang)
    text: str = ""
    limit: int = 500


def time_bounds(engine: Engine) -> tuple[datetime | None, datetime | None]:
    """Earliest and latest event time in the store (the dashboard anchors 'last 24 h' on the latest).
    Two queries on purpose: SQLite answers a lone MIN or MAX from the index, but not both in one SELECT."""
    with engine.connect() as conn:
        low = conn.execute(select(func.min(scored_items.c.published_at))).scalar_one()
        high = conn.execute(select(func.max(scored_items.c.published_at))).scalar_one()
    return as_utc(low), as_utc(high)


def topics(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(r[0] for r in conn.execute(select(scored_items.c.topic).distinct()))


def languages(engine: Engine, recent: int = 10_000) -> list[str]:
    """Languages of the latest `recent` items (by the stored_at index: a bounded scan, unlike a DISTINCT over
    the whole table), "und" standing for items without one."""
    c = scored_items.c
    latest = select(c.lang).order_by(c.stored_at.desc()).limit(recent).subquery()
    with engine.connect() as conn:
        found = {r[0] or UNDETERMINED for r in conn.execute(select(latest.c.lang).distinct())}
    return sorted(found, key=lambda lang: (lang == UNDETERMINED, lang))


def _news_conditions(f: NewsFilter) -> list[object]:
    c = scored_items.c
    cond: list[object] = []
    if f.start is not None:
        cond.append(c.published_at >= f.start)
    if f.end is not None:
        cond.append(c.published_at <= f.end)
    if f.topics:
        cond.append(c.topic.in_(list(f.topics)))
    if f.sentiments:
        cond.append(c.sentiment.in_(list(f.sentiments)))
    if f.langs:
        in_langs = c.lang.in_(list(f.langs))
        cond.append(or_(in_langs, c.lang.is_(None)) if UNDETERMINED in f.langs else in_langs)
    if f.tickers:  # tickers is a JSON list; its text form holds each symbol in quotes
        cond.append(or_(*[cast(c.tickers, String).like(f'%"{t.upper()}"%') for t in f.tickers]))
    if f.text.strip():
        pattern = f"%{f.text.strip().lower()}%"
        cond.append(or_(func.lower(c.title).like(pattern), func.lower(c.body).like(pattern)))
    return cond


NEWS_COLUMNS = [
    "published_at",
    "title",
    "topic",
    "sentiment",
    "sentiment_score",
    "p_negative",
    "p_neutral",
    "p_positive",
    "tickers",
    "source",
    "lang",
    "url",
    "id",
    "model_version",
]


def news(engine: Engine, f: NewsFilter) -> pd.DataFrame:
    """Latest scored items matching the filter, newest first, with their story (null until settled)."""
    cols = [scored_items.c[name] for name in NEWS_COLUMNS]
    story = [aggregate_items.c.story_id, aggregate_items.c.novelty]
    query = (select(*cols, *story).select_from(scored_items.outerjoin(
        aggregate_items, aggregate_items.c.item_id == scored_items.c.id))
        .where(and_(True, *_news_conditions(f))).order_by(scored_items.c.published_at.desc()))
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query.limit(f.limit)).mappings().all(),
                             columns=[*NEWS_COLUMNS, "story_id", "novelty"])
    frame["published_at"] = pd.to_datetime(frame["published_at"], utc=True)
    frame["tickers"] = frame["tickers"].map(lambda t: ", ".join(t) if isinstance(t, list) else str(t or ""))
    frame["story_id"] = frame["story_id"].replace("", None)  # '' = never settled (late, or from before stories)
    return frame


STORY_COLUMNS = ["first_seen", "headline", "copies", "sources", "mean_score", "tickers", "topic", "story_id"]


def group_by_story(frame: pd.DataFrame) -> pd.DataFrame:
    """News rows (as `news` returns them) grouped by story, newest story first: its first headline, copies,
    distinct sources, mean score and tickers; an item whose story is not settled yet stands alone."""
    if frame.empty:
        return pd.DataFrame(columns=STORY_COLUMNS)
    rows = frame.assign(group=frame["story_id"].fillna("item:" + frame["id"].astype(str)))
    rows = rows.sort_values(["published_at", "id"])
    grouped = rows.groupby("group", sort=False).agg(
        first_seen=("published_at", "min"), headline=("title", "first"), copies=("id", "count"),
        sources=("source", "nunique"), mean_score=("sentiment_score", "mean"), topic=("topic", "first"),
        tickers=("tickers", lambda t: ", ".join(sorted({s for v in t for s in str(v).split(", ") if s}))),
        story_id=("story_id", "first"))
    return grouped.sort_values("first_seen", ascending=False).reset_index(drop=True)[STORY_COLUMNS]


def store_counts(engine: Engine, recent: int = 10_000) -> dict[str, object]:
    """Totals for the system page; model versions are counted over the latest `recent` items only, which is
    what an operator checks after a model rollout and keeps the page fast on a big store."""
    c = scored_items.c
    latest = select(c.model_version).order_by(c.stored_at.desc()).limit(recent).subquery()
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(scored_items)).scalar_one()
        last = conn.execute(select(func.max(c.stored_at))).scalar_one()
        models = conn.execute(select(latest.c.model_version, func.count()).group_by(latest.c.model_version)).all()
    return {"stored": int(stored), "last_stored_at": as_utc(last), "models": {k: int(v) for k, v in models}}


def dead_letter_summary(engine: Engine) -> pd.DataFrame:
    """Dead letters by stage and reason, with the latest example's detail."""
    d = dead_letters.c
    query = (
        select(d.stage, d.reason, func.count().label("count"), func.max(d.failed_at).label("last_at"))
        .group_by(d.stage, d.reason)
        .order_by(func.count().desc())
    )
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).mappings().all(), columns=["stage", "reason", "count", "last_at"])


def recent_dead_letters(engine: Engine, limit: int = 50) -> pd.DataFrame:
    d = dead_letters.c
    query = (
        select(d.failed_at, d.stage, d.reason, d.detail, d.src_topic, d.src_partition, d.src_offset)
        .order_by(d.failed_at.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return pd.DataFrame(
        rows, columns=["failed_at", "stage", "reason", "detail", "src_topic", "src_partition", "src_offset"]
    )


def stored_rate(engine: Engine) -> dict[str, float]:
    """The sink's recent throughput: items stored in the last 1 and 10 minutes before the latest write."""
    c = scored_items.c
    with engine.connect() as conn:
        last = as_utc(conn.execute(select(func.max(c.stored_at))).scalar_one())
        if last is None:
            return {"per_s_1min": 0.0, "per_s_10min": 0.0}
        out = {}
        for minutes in (1, 10):
            since = last - pd.Timedelta(minutes=minutes)
            n = conn.execute(select(func.count()).where(c.stored_at >= since)).scalar_one()
            out[f"per_s_{minutes}min"] = int(n) / (minutes * 60)
    return out


WINDOW_COLUMNS = ["key", "window_start", "window_end", "count", *WINDOW_DERIVED, *WINDOW_ZSCORES]


def _windows_table():
    from monitor.store.schema import windows

    return windows


def windows(
    engine: Engine,
    size: str,
    start: datetime | None,
    end: datetime | None,
    *,
    key: str | None = None,
    prefix: str | None = None,
) -> pd.DataFrame:
    """Window rows of one size for one key or every key with a prefix (`topic:`, `ticker:`), in a time range."""
    w = _windows_table().c
    cond = [w.size == size]
    if key is not None:
        cond.append(w.key == key)
    if prefix is not None:
        cond.append(w.key.like(f"{prefix}%"))
    if start is not None:
        cond.append(w.window_end > start)
    if end is not None:
        cond.append(w.window_start <= end)
    query = select(*[w[c] for c in WINDOW_COLUMNS]).where(and_(*cond)).order_by(w.window_start)
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query).mappings().all(), columns=WINDOW_COLUMNS)
    for col in ("window_start", "window_end"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame


def window_sizes(engine: Engine) -> list[str]:
    w = _windows_table().c
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(select(w.size).where(w.key == "market").distinct())]


def movers(ticker_windows: pd.DataFrame, start: datetime, end: datetime, min_count: int = 3) -> pd.DataFrame:
    """Tickers whose count-weighted sentiment index moved most between the first and second half of the range."""
    if ticker_windows.empty:
        return pd.DataFrame(columns=["ticker", "before", "after", "change", "items"])
    mid = start + (end - start) / 2
    frame = ticker_windows.dropna(subset=["sentiment_index"]).assign(
        half=lambda f: (f["window_start"] >= mid).map({False: "before", True: "after"}),
        weighted=lambda f: f["sentiment_index"] * f["count"],
    )
    sums = frame.groupby(["key", "half"])[["weighted", "count"]].sum()
    index = (sums["weighted"] / sums["count"]).unstack("half")
    counts = sums["count"].groupby(level="key").sum()
    out = pd.DataFrame({"before": index.get("before"), "after": index.get("after"), "items": counts})
    out = out[out["items"] >= min_count].dropna(subset=["before", "after"])
    out["change"] = out["after"] - out["before"]
    out = out.reindex(out["change"].abs().sort_values(ascending=False).index)
    return (
        out.rename_axis("key")
        .reset_index()
        .assign(ticker=lambda f: f["key"].str.removeprefix("ticker:"))[["ticker", "before", "after", "change", "items"]]
    )


def tickers(engine: Engine) -> list[str]:
    """Symbols that have windows, most news first (counted on the longest window size: the fewest rows)."""
    w = _windows_table().c
    sizes = window_sizes(engine)
    if not sizes:
        return []
    longest = max(sizes, key=lambda size: parse_spec(size).size_us)
    query = (
        select(w.key, func.sum(w["count"]).label("n"))
        .where(w.key.like("ticker:%"), w.size == longest)
        .group_by(w.key)
        .order_by(func.sum(w["count"]).desc())
        .limit(500)
    )
    with engine.connect() as conn:
        return [row.key.removeprefix("ticker:") for row in conn.execute(query)]


def prices(engine: Engine, ticker: str, start: datetime | None, end: datetime | None) -> pd.DataFrame:
    from monitor.store.prices import price_series

    return price_series(engine, ticker, start.date() if start else None, end.date() if end else None)


ALERT_COLUMNS = [
    "id",
    "rule",
    "key",
    "state",
    "severity",
    "started_at",
    "fired_at",
    "resolved_at",
    "acked_at",
    "acked_by",
    "summary",
    "window",
]


def alerts(
    engine: Engine,
    states: Sequence[str] = ("pending", "firing", "resolved"),
    key: str | None = None,
    since: datetime | None = None,
) -> pd.DataFrame:
    """Alerts (newest first) with their last matching window as evidence."""
    from monitor.store import alerts as astore

    with engine.connect() as conn:
        rows = astore.list_alerts(conn, tuple(states), since)
    frame = pd.DataFrame(rows, columns=ALERT_COLUMNS) if rows else pd.DataFrame(columns=ALERT_COLUMNS)
    frame = frame[ALERT_COLUMNS]
    if key is not None:
        frame = frame[frame["key"] == key]
    return frame.sort_values("started_at", ascending=False).reset_index(drop=True)


def alert_counts(engine: Engine) -> dict[str, int]:
    from monitor.store.schema import alerts as table

    query = select(table.c.state, func.count()).where(table.c.state.in_(["pending", "firing"])).group_by(table.c.state)
    with engine.connect() as conn:
        return {state: int(n) for state, n in conn.execute(query)}


def silences(engine: Engine, at: datetime) -> pd.DataFrame:
    from monitor.store import alerts as astore

    columns = ["id", "rule", "key", "starts_at", "ends_at", "created_by", "comment"]
    with engine.connect() as conn:
        rows = astore.active_silences(conn, at)
    return pd.DataFrame(rows, columns=columns)[columns] if rows else pd.DataFrame(columns=columns)


def add_silence(
    engine: Engine, rule: str | None, key: str | None, length: pd.Timedelta, by: str, comment: str, at: datetime
) -> int:
    """Silence a rule and/or a key from `at` for `length`; the alert stage reads the same table."""
    from monitor.store import alerts as astore

    if rule is None and key is None:
        raise ValueError("choose a rule and/or a key: a silence of everything is too easy to forget")
    if length <= pd.Timedelta(0):
        raise ValueError("the silence must last a positive time")
    values = {
        "rule": rule,
        "key": key,
        "starts_at": at,
        "ends_at": at + length.to_pytimedelta(),
        "created_by": by,
        "comment": comment,
        "created_at": at,
    }
    with engine.begin() as conn:
        return astore.add_silence(conn, values)


def track_records(engine: Engine) -> dict[str, str]:
    """rule -> the one-line track record a saved backtest measured (`finmon backtest --save-track-record`)."""
    from monitor.alerts.track import TrackRecord
    from monitor.store.track import track_records as stored

    with engine.connect() as conn:
        return {rule: TrackRecord.from_mapping(row).describe() for rule, row in stored(conn).items()}


def acknowledge(engine: Engine, alert_id: int, by: str, at: datetime) -> int:
    from monitor.store import alerts as astore

    with engine.begin() as conn:
        return astore.ack_alerts(conn, at, by, alert_id=alert_id)


def evidence_headlines(engine: Engine, key: str, start: datetime, end: datetime, limit: int = 30) -> pd.DataFrame:
    """The items behind an alert's window: the key's headlines in that window, most negative first."""
    if key.startswith("ticker:"):
        f = NewsFilter(start=start, end=end, tickers=(key.removeprefix("ticker:"),), limit=500)
    elif key.startswith("topic:"):
        f = NewsFilter(start=start, end=end, topics=(key.removeprefix("topic:"),), limit=500)
    else:
        f = NewsFilter(start=start, end=end, limit=500)
    return news(engine, f).sort_values("sentiment_score").head(limit)


def workers(engine: Engine) -> pd.DataFrame:
    """Every stage worker's latest heartbeat: what it consumes, items/s and mean batch size."""
    from monitor.store.heartbeats import heartbeats

    columns = [
        "stage",
        "worker",
        "records_per_s",
        "mean_batch",
        "records_in",
        "dead_letters",
        "assigned",
        "updated_at",
        "stopped_at",
    ]
    rows = heartbeats(engine)
    frame = pd.DataFrame(rows, columns=columns) if rows else pd.DataFrame(columns=columns)
    frame["assigned"] = frame["assigned"].map(lambda parts: ", ".join(parts) if isinstance(parts, list) else "")
    return frame[columns]


def consumer_lag(engine: Engine) -> pd.DataFrame:
    """Records behind per stage and partition, from the running workers' heartbeats (each reports the lag of
    the partitions it owns after every batch), so the dashboard never needs a Kafka client. A partition that
    moved between workers is taken from the newest report."""
    from monitor.store.heartbeats import heartbeats

    columns = ["stage", "partition", "lag", "worker", "updated_at"]
    rows, seen = [], set()
    for beat in heartbeats(engine):  # newest first
        if beat["stopped_at"] is not None:
            continue
        for partition, lag in sorted((beat.get("lag") or {}).items()):
            if (beat["stage"], partition) not in seen:
                seen.add((beat["stage"], partition))
                rows.append([beat["stage"], partition, int(lag), beat["worker"], beat["updated_at"]])
    return pd.DataFrame(rows, columns=columns).sort_values(["stage", "partition"], ignore_index=True)
