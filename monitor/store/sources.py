"""Where the stream is: source snapshots of the classify stage and applied source marks of the aggregate stage.

`source_marks` — per news.raw partition and offset: the max event time the partition had delivered through
    that offset (`max_t_us`, null when none). A classify worker saves one per partition after each batch, before
    committing; a worker that takes the partition over at committed offset `c` resumes from the row at
    `c - 1`, so its lateness decisions equal an uninterrupted worker's (monitor/core/lateness.py).
`stream_marks` — per (news.scored topic, partition, news.raw partition): the latest source mark the aggregate
    stage applied with the windows, in the same transaction. `stream_clock_marks` feeds monitor/core/streamtime.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, and_, delete, select

from monitor.clock import EPOCH, from_micros, to_micros
from monitor.core.lateness import SourceState
from monitor.core.streamtime import StoredMark
from monitor.records import SourceMark
from monitor.store.dialect import insert_stmt
from monitor.store.schema import mark_counts, source_marks, stream_marks
from monitor.store.times import as_utc

KEEP_SNAPSHOTS = 50  # per partition: the committed one is at most a few batches behind the newest


def save_snapshots(conn: Connection, topic: str, states: dict[int, SourceState], now: datetime) -> None:
    """Persist `states` (through offset = next_offset - 1) and prune old snapshots of those partitions."""
    rows = [{"src_topic": topic, "src_partition": p, "through_offset": s.next_offset - 1, "max_t_us": s.max_t_us,
             "feeds": dict(s.feeds), "saved_at": now} for p, s in sorted(states.items())]
    if not rows:
        return
    stmt = insert_stmt(conn, source_marks)
    conn.execute(stmt.on_conflict_do_update(index_elements=["src_topic", "src_partition", "through_offset"],
                                            set_={"max_t_us": stmt.excluded.max_t_us, "feeds": stmt.excluded.feeds,
                                                  "saved_at": stmt.excluded.saved_at}), rows)
    for partition in states:
        _prune(conn, topic, partition)


def _prune(conn: Connection, topic: str, partition: int) -> None:
    where = and_(source_marks.c.src_topic == topic, source_marks.c.src_partition == partition)
    keep = select(source_marks.c.through_offset).where(where).order_by(
        source_marks.c.through_offset.desc()).offset(KEEP_SNAPSHOTS).limit(1)
    cutoff = conn.execute(keep).scalar_one_or_none()
    if cutoff is not None:
        conn.execute(delete(source_marks).where(where, source_marks.c.through_offset <= cutoff))


def load_snapshot(conn: Connection, topic: str, partition: int, next_offset: int) -> tuple[SourceState, bool]:
    """(the partition's state through `next_offset - 1`: max event time overall and per feed, exact?) for a
    worker resuming it there.

    Exact when a snapshot ends right there (the committed batch saved it). Otherwise the newest one before
    it (a lenient approximation, e.g. after the snapshots were lost; an empty state if there is none), and an
    empty state at the very start."""
    if next_offset <= 0:
        return SourceState(0), True
    query = select(source_marks.c.through_offset, source_marks.c.max_t_us, source_marks.c.feeds).where(
        source_marks.c.src_topic == topic, source_marks.c.src_partition == partition,
        source_marks.c.through_offset < next_offset).order_by(source_marks.c.through_offset.desc()).limit(1)
    row = conn.execute(query).first()
    if row is None:
        return SourceState(next_offset), False
    feeds = {str(k): int(v) for k, v in (row.feeds or {}).items()}
    state = SourceState(next_offset, None if row.max_t_us is None else int(row.max_t_us), feeds)
    return state, row.through_offset == next_offset - 1


def apply_marks(conn: Connection, topic: str, marks: Iterable[tuple[int, SourceMark]]) -> None:
    """Store (news.scored partition, mark) pairs: the max event time only grows; the idle flag follows the
    newest mark (by source offset), so a redelivered old mark cannot undo a newer one."""
    latest: dict[tuple[int, int], SourceMark] = {}
    batch_t: dict[tuple[int, int], int] = {}  # the max event time of every mark of the pair in this batch
    for partition, mark in marks:
        pair = (partition, mark.src_partition)
        # the newest by source offset wins (a later one on the partition if equal), as against the stored mark
        if pair not in latest or mark.through_offset >= latest[pair].through_offset:
            latest[pair] = mark
        if mark.max_event_time is not None:
            batch_t[pair] = max(batch_t.get(pair, 0), to_micros(mark.max_event_time))
    if not latest:
        return
    current = {(r.partition, r.src_partition): r for r in conn.execute(select(stream_marks).where(
        stream_marks.c.topic == topic, stream_marks.c.partition.in_(sorted({p for p, _ in latest}))))}
    rows = []
    for (partition, source), mark in sorted(latest.items()):
        t_us = batch_t.get((partition, source))  # not just the last mark's: two workers' marks may interleave
        old = current.get((partition, source))
        if old is not None:
            if old.max_t_us is not None and (t_us is None or old.max_t_us > t_us):
                t_us = int(old.max_t_us)
            if old.through_offset > mark.through_offset:  # a redelivered older mark: keep the newer state
                mark = SourceMark(mark.src_topic, source, old.through_offset, None, bool(old.idle), mark.fanout,
                                  as_utc(old.sent_at) or mark.sent_at, old.lag, mark.sources)
        rows.append({"topic": topic, "partition": partition, "src_partition": source,
                     "through_offset": mark.through_offset, "max_t_us": t_us,
                     "max_event_time": from_micros(t_us) if t_us is not None else None, "idle": mark.idle,
                     "fanout": mark.fanout, "sent_at": mark.sent_at, "lag": mark.lag, "sources": mark.sources})
    stmt = insert_stmt(conn, stream_marks)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=["topic", "partition", "src_partition"],
        set_={c: stmt.excluded[c] for c in ("through_offset", "max_t_us", "max_event_time", "idle", "fanout",
                                              "sent_at", "lag", "sources")}), rows)


def stream_clock_marks(conn: Connection, topic: str) -> list[StoredMark]:
    """Every applied source mark of `topic`, for monitor/core/streamtime."""
    return [StoredMark(r.partition, r.src_partition, None if r.max_t_us is None else int(r.max_t_us), bool(r.idle),
                       int(r.fanout), None if r.lag is None else int(r.lag), to_micros(as_utc(r.sent_at) or EPOCH),
                       None if r.sources is None else int(r.sources))
            for r in conn.execute(select(stream_marks).where(stream_marks.c.topic == topic))]


def count_marks(conn: Connection, topic: str, n: int) -> None:
    stmt = insert_stmt(conn, mark_counts).values(topic=topic, sent=n)
    conn.execute(stmt.on_conflict_do_update(index_elements=["topic"], set_={"sent": mark_counts.c.sent + n}))


def marks_sent(conn: Connection, topic: str) -> int:
    value = conn.execute(select(mark_counts.c.sent).where(mark_counts.c.topic == topic)).scalar_one_or_none()
    return int(value or 0)
