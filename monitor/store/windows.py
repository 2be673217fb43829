"""Window tables: what the aggregate stage writes and the dashboard and CLI read.

`windows` — one row per (key, size, window_start); a pure function of the set of distinct items seen:
    key            `market`, `topic:<topic name>` or `ticker:<SYMBOL>`
    size           the spec label: `5min`, `1h`, `1d`, or `SIZE/HOP` for hopping windows (`1h/15min`)
    window_start, window_end   UTC, [start, end)
    count, n_negative, n_neutral, n_positive           items, and items by sentiment label
    n_stories, n_negative_stories                      distinct stories (novelty-100 items), negative ones
    sum_score_u, sum_conf_u, sum_conf_score_u          exact sums in micro-units (see monitor/windows/engine.py)
    sum_novelty, sum_nov_score_u                       story sums, added by the story pass at the watermark
    mean_sentiment, negative_share, neutral_share, positive_share, sentiment_index   derived from the sums
    story_sentiment, story_negative_share              derived from the story sums (null until settled)
    volume_z, sentiment_z                              null until the key has enough baseline windows
    story_z, story_sentiment_z                         the same for n_stories and story_sentiment
`aggregate_items` — one row per distinct item id: event time, `late`, its keys and integer contributions;
    `story_text` and `source` for the story pass, and the `story_id` and `novelty` it decided (null: not yet;
    story_id '' with null novelty: never settled, as the item is late or was stored before stories existed).
`window_late` — per key: how many distinct items their source delivered late (monitor/core/lateness.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, and_, bindparam, func, select, update

from monitor.records import WINDOW_DERIVED, WINDOW_SUMS, WINDOW_ZSCORES
from monitor.store.dialect import insert_stmt
from monitor.store.schema import aggregate_items, window_late, windows
from monitor.store.times import as_utc
from monitor.timestamps import from_us, to_us

SUM_COLUMNS, DERIVED_COLUMNS, Z_COLUMNS = list(WINDOW_SUMS), list(WINDOW_DERIVED), list(WINDOW_ZSCORES)


_CHUNK = 900  # ids per IN (...) list: well under SQLite's variable limit


def known_items(conn: Connection, ids: Sequence[str]) -> dict[str, bool]:
    """item id -> late, for the ids already decided."""
    out: dict[str, bool] = {}
    for i in range(0, len(ids), _CHUNK):
        query = select(aggregate_items.c.item_id, aggregate_items.c.late).where(
            aggregate_items.c.item_id.in_(ids[i : i + _CHUNK])
        )
        out.update({row.item_id: bool(row.late) for row in conn.execute(query)})
    return out


def insert_items(conn: Connection, rows: list[dict[str, Any]]) -> set[str]:
    """Insert new items; return the ids actually inserted (a redelivered id is a no-op)."""
    if not rows:
        return set()
    stmt = insert_stmt(conn, aggregate_items).on_conflict_do_nothing(index_elements=["item_id"])
    return {row[0] for row in conn.execute(stmt.returning(aggregate_items.c.item_id), rows).all()}


def add_late(conn: Connection, counts: dict[str, tuple[int, int]]) -> None:
    """key -> (new late items, latest of their event times in us): add to the per-key late counters."""
    rows = [{"key": k, "late_count": n, "last_late_event_time": from_us(t).to_pydatetime()}
            for k, (n, t) in sorted(counts.items())]
    if rows:
        stmt = insert_stmt(conn, window_late)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=["key"],
            set_={"late_count": window_late.c.late_count + stmt.excluded.late_count,
                  "last_late_event_time": func.max(window_late.c.last_late_event_time,
                                                   stmt.excluded.last_late_event_time)
                  if conn.dialect.name == "sqlite" else
                  func.greatest(window_late.c.last_late_event_time, stmt.excluded.last_late_event_time)}), rows)


def add_sums(conn: Connection, size: str, size_us: int, sums: pd.DataFrame,
             columns: Sequence[str] = SUM_COLUMNS) -> None:
    """Add per-window sums (`columns` of `sums`; the others add 0) to the stored windows, creating rows as
    needed."""
    if sums.empty:
        return
    records = sums.sort_values(["key", "start_us"]).to_dict("records")  # one lock order: no deadlocks
    rows = [{"key": r["key"], "size": size, "window_start": from_us(r["start_us"]).to_pydatetime(),
             "window_end": from_us(r["start_us"] + size_us).to_pydatetime(),
             **{c: int(r[c]) if c in columns else 0 for c in SUM_COLUMNS}} for r in records]
    stmt = insert_stmt(conn, windows)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=["key", "size", "window_start"],
        set_={c: windows.c[c] + stmt.excluded[c] for c in columns}), rows)


def unsettled_items(conn: Connection, until_us: int) -> list[Any]:
    """Accepted items before `until_us` with no story yet, in the story pass's order (event time, item id)."""
    a = aggregate_items.c
    query = (select(a.item_id, a.event_time, a["keys"], a.label, a.score_u, a.story_text, a.source)
             .where(a.late.is_(False), a.story_id.is_(None), a.event_time < from_us(until_us).to_pydatetime())
             .order_by(a.event_time, a.item_id))
    rows = list(conn.execute(query).all())
    # ties on event time in code-point order of the id on every database (PostgreSQL's collation may differ)
    rows.sort(key=lambda r: (as_utc(r.event_time), r.item_id))
    return rows


def settled_items(conn: Connection) -> list[Any]:
    """Accepted items whose story is settled: item id, event time, keys, score (micro-units) and novelty."""
    a = aggregate_items.c
    return list(conn.execute(select(a.item_id, a.event_time, a["keys"], a.score_u, a.novelty).where(
        a.late.is_(False), a.novelty.is_not(None))).all())


def retire_pre_story_items(conn: Connection) -> int:
    """Mark items stored before the story columns existed (no story text) as never to be settled: their text
    is gone, and settling a whole history at once would stall the first batch after an upgrade. Their windows
    keep 0 stories. Cheap on later starts: only the (few) unsettled items are looked at."""
    a = aggregate_items.c
    result = conn.execute(update(aggregate_items).where(a.story_id.is_(None), a.story_text.is_(None))
                          .values(story_id=""))
    return int(result.rowcount or 0)


def settle_items(conn: Connection, decided: Sequence[tuple[str, str, int]]) -> None:
    """Write (item id, story id, novelty) of settled items."""
    if not decided:
        return
    stmt = (update(aggregate_items).where(aggregate_items.c.item_id == bindparam("b_id"))
            .values(story_id=bindparam("b_story"), novelty=bindparam("b_novelty")))
    conn.execute(stmt, [{"b_id": i, "b_story": s, "b_novelty": n} for i, s, n in sorted(decided)])


def unsent_stories(conn: Connection, limit: int) -> list[Any]:
    """Settled items whose news.stories message was never acknowledged (a worker stopped between settling
    and the broker's ack), oldest first: item id, story id, novelty, event time, source, keys."""
    a = aggregate_items.c
    return list(conn.execute(select(a.item_id, a.story_id, a.novelty, a.event_time, a.source, a["keys"])
                             .where(a.story_sent.is_(False), a.novelty.is_not(None))
                             .order_by(a.event_time, a.item_id).limit(limit)).all())


def mark_stories_sent(conn: Connection, item_ids: Sequence[str]) -> None:
    """The broker acknowledged these items' news.stories messages."""
    ids = sorted(set(item_ids))
    for i in range(0, len(ids), _CHUNK):
        conn.execute(update(aggregate_items).where(aggregate_items.c.item_id.in_(ids[i:i + _CHUNK]))
                     .values(story_sent=True))


def load_range(conn: Connection, size: str, keys: Sequence[str], lo_us: int, hi_us: int) -> pd.DataFrame:
    """Stored windows of `keys` with lo <= start <= hi (key, start_us, sums, derived, z)."""
    cols = [windows.c.key, windows.c.window_start, *(windows.c[c] for c in SUM_COLUMNS + DERIVED_COLUMNS + Z_COLUMNS)]
    rows: list[Any] = []
    for i in range(0, len(keys), _CHUNK):
        query = select(*cols).where(
            windows.c.size == size, windows.c.key.in_(list(keys[i : i + _CHUNK])),
            windows.c.window_start >= from_us(lo_us).to_pydatetime(),
            windows.c.window_start <= from_us(hi_us).to_pydatetime(),
        )
        rows.extend(conn.execute(query).all())
    frame = pd.DataFrame(rows, columns=[c.name for c in cols])
    starts = pd.to_datetime(frame.pop("window_start"), utc=True)  # naive from SQLite: stored as UTC
    frame["start_us"] = starts.to_numpy(dtype="datetime64[us]").astype(np.int64)
    return frame.astype({**{c: np.int64 for c in SUM_COLUMNS}, **{c: float for c in DERIVED_COLUMNS + Z_COLUMNS}})


def update_metrics(conn: Connection, size: str, rows: pd.DataFrame) -> None:
    """Write derived metrics and z-scores of `rows` (key, start_us, ...) back to their windows."""
    if rows.empty:
        return
    stmt = update(windows).where(and_(windows.c.key == bindparam("b_key"), windows.c.size == bindparam("b_size"),
                                      windows.c.window_start == bindparam("b_start")))
    stmt = stmt.values({c: bindparam(f"b_{c}") for c in DERIVED_COLUMNS + Z_COLUMNS})
    params = []
    for r in rows.sort_values(["key", "start_us"]).to_dict("records"):
        p: dict[str, Any] = {f"b_{c}": _nullable(r[c]) for c in DERIVED_COLUMNS + Z_COLUMNS}
        p.update(b_key=r["key"], b_size=size, b_start=from_us(r["start_us"]).to_pydatetime())
        params.append(p)
    conn.execute(stmt, params)


def _nullable(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else float(value)


def read_windows(conn: Connection, key: str, size: str, last: int | None = None) -> list[dict[str, Any]]:
    """Windows of one key and size, oldest first, as the CLI prints them (the last `last` only if given)."""
    query = select(windows).where(windows.c.key == key, windows.c.size == size).order_by(windows.c.window_start)
    if last is not None:
        query = query.order_by(None).order_by(windows.c.window_start.desc()).limit(last)
    rows = [dict(row._mapping) for row in conn.execute(query)]
    rows.sort(key=lambda r: as_utc(r["window_start"]) or r["window_start"])
    return [{**r, "window_start": as_utc(r["window_start"]), "window_end": as_utc(r["window_end"])} for r in rows]


def windows_in_view(conn: Connection, size: str, at: datetime, lookback_us: int,
                    complete_only: bool = False) -> list[dict[str, Any]]:
    """Windows of `size` that contain `at` or ended within `lookback` before it (what alert rules look at);
    `complete_only`: only those that have ended by the instant after `at` (event-time evaluation)."""
    lo = from_us(to_us(at) - lookback_us).to_pydatetime()
    query = select(windows).where(windows.c.size == size, windows.c.window_end > lo, windows.c.window_start <= at)
    if complete_only:
        query = query.where(windows.c.window_end <= from_us(to_us(at) + 1).to_pydatetime())
    return [{**dict(r._mapping), "window_start": as_utc(r.window_start), "window_end": as_utc(r.window_end)}
            for r in conn.execute(query)]


def next_window_end(conn: Connection, sizes: Iterable[str], after: datetime | None) -> datetime | None:
    """The earliest end, strictly after `after` (None: any), of a stored window of one of `sizes`."""
    query = select(func.min(windows.c.window_end)).where(windows.c.size.in_(list(sizes)))
    if after is not None:
        query = query.where(windows.c.window_end > after)
    value = conn.execute(query).scalar_one_or_none()
    return None if value is None else as_utc(value)


def late_counts(conn: Connection) -> dict[str, int]:
    return {row.key: int(row.late_count) for row in conn.execute(select(window_late))}


def all_windows(conn: Connection, sizes: Iterable[str] | None = None) -> pd.DataFrame:
    """Every window row (tests, rebuild checks), with start_us for easy comparison."""
    query = select(windows)
    if sizes is not None:
        query = query.where(windows.c.size.in_(list(sizes)))
    frame = pd.DataFrame([dict(r._mapping) for r in conn.execute(query)])
    if frame.empty:
        return pd.DataFrame(columns=[*(c.name for c in windows.c), "start_us"])
    frame["start_us"] = [to_us(as_utc(t)) for t in frame["window_start"]]
    return frame.sort_values(["size", "key", "start_us"]).reset_index(drop=True)
