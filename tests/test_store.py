"""Store writes are idempotent on SQLite and PostgreSQL: redeliveries are no-ops, duplicate ids are caught."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from monitor.clock import to_micros
from monitor.records import DeadLetter, RawItem, ScoredItem, SourceMark
from monitor.store import Store, as_utc
from monitor.store.sources import apply_marks, stream_clock_marks

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _scored(item_id: str, partition: int = 0, offset: int = 0) -> ScoredItem:
    raw = RawItem(id=item_id, title=f"headline {item_id}", published_at=NOW - timedelta(hours=1), tickers=("ACME",))
    return ScoredItem(
        item=raw,
        topic="Earnings",
        topic_probs={"Earnings": 0.9, "Macro": 0.1},
        sentiment="positive",
        sentiment_probs={"negative": 0.1, "neutral": 0.2, "positive": 0.7},
        model_version="test",
        scored_at=NOW,
        src_partition=partition,
        src_offset=offset,
    )


def test_upsert_is_idempotent_and_catches_duplicate_ids(store_url: str) -> None:
    store = Store(store_url)
    store.create_schema()
    store.create_schema()  # twice is fine
    batch = [_scored("a", 0, 1), _scored("b", 1, 1)]
    assert store.upsert_scored(batch, NOW) == (2, [])
    assert store.upsert_scored(batch, NOW) == (0, [])  # a redelivery changes nothing
    inserted, dups = store.upsert_scored([_scored("a", 3, 7), _scored("c", 0, 2), _scored("c", 0, 9)], NOW)
    assert inserted == 1
    assert sorted((d.item.id, d.src_offset) for d in dups) == [("a", 7), ("c", 9)]
    assert store.count_scored() == 3
    assert sorted(store.scored_ids()) == ["a", "b", "c"]


def test_times_come_back_utc(store_url: str) -> None:
    store = Store(store_url)
    store.create_schema()
    store.upsert_scored([_scored("t")], NOW)
    with store.engine.connect() as conn:
        from sqlalchemy import select

        from monitor.store.schema import scored_items

        stamp = conn.execute(select(scored_items.c.published_at)).scalar_one()
    assert as_utc(stamp) == NOW - timedelta(hours=1)


def test_dead_letters_are_stored_once(store_url: str) -> None:
    store = Store(store_url)
    store.create_schema()
    letter = DeadLetter(
        payload=b"\xff\x00",
        topic="news.raw",
        partition=2,
        offset=10,
        stage="classify",
        reason="not_utf8",
        detail="bad bytes",
        at=NOW,
        key=None,
    )
    other = replace(letter, offset=11, reason="malformed_json")
    assert store.add_dead_letters([letter, other], NOW) == 2
    assert store.add_dead_letters([letter], NOW) == 0
    assert store.count_dead_letters() == {"not_utf8": 1, "malformed_json": 1}
    rows = {row["src_offset"]: row for row in store.dead_letter_rows()}
    assert bytes(rows[10]["payload"]) == b"\xff\x00"


def test_workers_creating_the_schema_at_once_do_not_fail(store_url: str) -> None:
    import threading

    barrier, errors = threading.Barrier(4), []

    def create() -> None:
        store = Store(store_url)
        barrier.wait()
        try:
            store.create_schema()
        except Exception as exc:  # collected: the assertion below shows which
            errors.append(exc)
        finally:
            store.dispose()

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert Store(store_url).count_scored() == 0  # the schema is there and usable


def test_an_older_store_gains_the_heartbeat_lag_column(store_url: str) -> None:
    """Stores created before heartbeats carried consumer lag: create_schema adds the column, and beats keep it."""
    from monitor.store.heartbeats import beat, heartbeats, stage_heartbeats

    store = Store(store_url)
    stage_heartbeats.create(store.engine)
    with store.engine.begin() as conn:  # the table as it was before the column
        conn.exec_driver_sql("ALTER TABLE stage_heartbeats DROP COLUMN lag")
    store.create_schema()
    store.create_schema()  # the upgrade is idempotent
    row = {
        "worker": "h:1",
        "stage": "sink",
        "started_at": NOW,
        "updated_at": NOW,
        "stopped_at": None,
        "assigned": ["news.scored[0]"],
        "records_in": 5,
        "messages_out": 5,
        "dead_letters": 0,
        "batches": 1,
        "records_per_s": 1.0,
        "mean_batch": 5.0,
        "lag": {"news.scored[0]": 3},
    }
    beat(store.engine, row)
    assert heartbeats(store.engine)[0]["lag"] == {"news.scored[0]": 3}
    store.dispose()


def test_source_snapshots_keep_each_feeds_event_time(store_url: str) -> None:
    """A classify worker that takes a partition over resumes its lateness per feed, exactly at the commit."""
    from monitor.core.lateness import SourceState
    from monitor.store import sources as sstore

    store = Store(store_url)
    store.create_schema()
    now = datetime(2026, 11, 30, tzinfo=UTC)
    with store.engine.begin() as conn:
        sstore.save_snapshots(conn, "news.raw", {0: SourceState(10, 500, {"wire": 500, "rss": 120}),
                                                 1: SourceState(3, None, {})}, now)
    with store.engine.connect() as conn:
        assert sstore.load_snapshot(conn, "news.raw", 0, 10) == (SourceState(10, 500, {"wire": 500, "rss": 120}),
                                                                  True)
        assert sstore.load_snapshot(conn, "news.raw", 0, 14) == (SourceState(14, 500, {"wire": 500, "rss": 120}),
                                                                  False)  # an earlier one stands in
        assert sstore.load_snapshot(conn, "news.raw", 1, 3) == (SourceState(3, None, {}), True)
        assert sstore.load_snapshot(conn, "news.raw", 2, 5) == (SourceState(5), False)  # none at all
        assert sstore.load_snapshot(conn, "news.raw", 2, 0) == (SourceState(0), True)  # the very start


def test_stream_marks_keep_the_newest_state_and_the_max_time_of_a_batch_with_interleaved_marks(store_url: str) -> None:
    """Two classify workers' marks of one source can interleave on a news.scored partition around a rebalance:
    a stale one (older time, lower offset) after the newer one in the same batch must not pull time back."""
    t0 = datetime(2025, 5, 9, 15, tzinfo=UTC)
    newer = SourceMark("news.raw", 2, 40, t0, True, 4, t0, 0, 4)
    stale = SourceMark("news.raw", 2, 25, t0 - timedelta(hours=9), False, 4, t0, 3, 4)
    store = Store(store_url)
    store.create_schema()
    with store.engine.begin() as conn:
        apply_marks(conn, "news.scored", [(0, newer), (0, stale), (1, stale)])
    with store.engine.connect() as conn:
        marks = {m.partition: m for m in stream_clock_marks(conn, "news.scored")}
    assert (marks[0].max_t_us, marks[0].idle) == (to_micros(t0), True)  # both from the newer mark
    assert (marks[1].max_t_us, marks[1].idle) == (to_micros(t0 - timedelta(hours=9)), False)
    with store.engine.begin() as conn:  # and across batches, as before
        apply_marks(conn, "news.scored", [(0, stale)])
    with store.engine.connect() as conn:
        assert {m.partition: m.max_t_us for m in stream_clock_marks(conn, "news.scored")}[0] == to_micros(t0)
    store.dispose()
