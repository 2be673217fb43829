"""The Kafka-free core against brute force: lateness per source, stream time, evaluation ticks.

Lateness is decided by classify workers that crash, rebalance and redo batches (simulated with hypothesis);
whatever happens, every record gets the verdict a single pass over its source partition gives.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.clock import from_micros, to_micros
from monitor.core.lateness import SourceState, SourceTracker, decide_all, partition_for, replay_verdicts
from monitor.core.streamtime import StoredMark, catching_up, complete_time, processed_time
from monitor.core.ticks import following_tick, next_window_end
from monitor.windows import parse_spec

BASE = datetime(2025, 1, 6, tzinfo=UTC)
MIN = 60_000_000


def brute_late(log: list[int | None], grace: int, feeds: list[str] | None = None) -> list[bool]:
    """late(i) = t_i < max of the earlier records' times of the same feed - grace, by definition."""
    feeds = feeds or [""] * len(log)
    out = []
    for i, t in enumerate(log):
        earlier = [u for u, f in zip(log[:i], feeds[:i], strict=True) if u is not None and f == feeds[i]]
        out.append(t is not None and bool(earlier) and t < max(earlier) - grace)
    return out


times = st.one_of(st.none(), st.integers(0, 600).map(lambda m: m * MIN // 4))
records = st.tuples(times, st.sampled_from(["wire", "rss", "slow"]))


@settings(max_examples=60, deadline=None)
@given(logs=st.dictionaries(st.integers(0, 3), st.lists(records, max_size=40), min_size=1, max_size=4),
       grace_min=st.sampled_from([0, 5, 30]), seed=st.integers(0, 2**16))
def test_workers_that_crash_and_rebalance_decide_like_one_pass(logs: dict[int, list[tuple[int | None, str]]],
                                                              grace_min: int, seed: int) -> None:
    grace, rng = grace_min * MIN, random.Random(seed)
    snapshots: dict[tuple[int, int], SourceState] = {}  # (partition, through offset) -> state (the store)
    committed = dict.fromkeys(logs, 0)
    verdicts: dict[tuple[int, int], bool] = {}
    worker = SourceTracker(grace)
    while any(committed[p] < len(log) for p, log in logs.items()):
        if rng.random() < 0.3:
            worker = SourceTracker(grace)  # a crash or a rebalance: a new worker, state only from the store
        batch = [(p, o) for p, log in logs.items()
                 for o in range(committed[p], min(len(log), committed[p] + rng.randint(0, 7)))]
        for p in {p for p, _ in batch}:
            first = min(o for q, o in batch if q == p)
            if not worker.knows(p, first):
                saved = snapshots.get((p, first - 1)) if first else None
                worker.restore(p, first, saved.max_t_us if saved else None, saved.feeds if saved else None)
        for p, o in batch:
            verdict = worker.observe(p, o, *logs[p][o]).late
            assert verdicts.setdefault((p, o), verdict) == verdict  # a redelivered record: the same answer
        for p in {p for p, _ in batch}:
            state = worker.state_through(p, max(o for q, o in batch if q == p))
            snapshots[(p, state.next_offset - 1)] = state
        if rng.random() < 0.8:  # the commit; otherwise the batch is redelivered
            for p, o in batch:
                committed[p] = max(committed[p], o + 1)
    for p, log in logs.items():
        assert [verdicts[(p, o)] for o in range(len(log))] == brute_late([t for t, _ in log], grace,
                                                                         [f for _, f in log])


def test_decide_all_and_replay_verdicts_agree_with_the_definition() -> None:
    rng = random.Random(5)
    log = [rng.randrange(0, 500) * MIN for _ in range(300)]
    assert [v.late for v in decide_all([(0, t) for t in log], 20 * MIN)] == brute_late(log, 20 * MIN)
    keys = [f"id-{i}".encode() for i in range(300)]
    got = replay_verdicts(keys, log, 4, 20 * MIN)
    for part in range(4):
        mine = [i for i in range(300) if partition_for(keys[i], 4) == part]
        assert [got[i][1] for i in mine] == list(range(len(mine)))  # offsets in publish order
        assert [got[i][2].late for i in mine] == brute_late([log[i] for i in mine], 20 * MIN)
    ordered = sorted(log)  # a time-ordered feed is never late, however it is partitioned
    assert not any(v.late for _, _, v in replay_verdicts(keys, ordered, 8, 0))


def test_a_slow_feed_is_not_late_because_a_fast_feed_shares_its_partition() -> None:
    """A newswire an hour behind, or a feed whose first poll brings a day of history, keeps its items: each
    feed is measured against itself. Out of order within its own feed, beyond the grace, is still late."""
    rng = random.Random(9)
    fast = [(1440 + i) * MIN for i in range(100)]  # today, in order
    slow = [i * 10 * MIN for i in range(100)]  # yesterday's backlog, in order, published after today's news
    log, feeds = fast + slow, ["wire"] * 100 + ["rss"] * 100
    assert not any(v.late for v in decide_all([(0, t) for t in log], 20 * MIN, feeds))
    assert all(v.late for v in decide_all([(0, t) for t in log], 20 * MIN)[100:])  # one feed: all late
    shuffled = list(range(200))
    rng.shuffle(shuffled)
    got = decide_all([(0, log[i]) for i in shuffled], 20 * MIN, [feeds[i] for i in shuffled])
    assert [v.late for v in got] == brute_late([log[i] for i in shuffled], 20 * MIN, [feeds[i] for i in shuffled])
    keys = [f"id-{i}".encode() for i in range(200)]
    assert not any(v.late for _, _, v in replay_verdicts(keys, log, 4, 20 * MIN, feeds))


def test_verdicts_carry_the_source_time_they_were_measured_against() -> None:
    tracker = SourceTracker(10 * MIN)
    assert tracker.observe(0, 0, 100 * MIN).source_us is None
    verdict = tracker.observe(0, 1, 50 * MIN)
    assert verdict.late and verdict.source_us == 100 * MIN
    assert not tracker.observe(0, 2, 95 * MIN).late
    assert tracker.state_through(0, 2) == SourceState(3, 100 * MIN, {"": 100 * MIN})
    assert tracker.watermark(0) == 90 * MIN


def mark(partition: int, source: int, minute: int | None, idle: bool = False, fanout: int = 2) -> StoredMark:
    return StoredMark(partition, source, None if minute is None else minute * MIN, idle, fanout)


def test_stream_time_is_the_minimum_over_sources_and_waits_for_every_downstream_partition() -> None:
    assert processed_time([]) == (None, False)
    assert complete_time([mark(0, 0, 30)], 0) is None  # partition 1 has not seen source 0's mark yet
    marks = [mark(0, 0, 30), mark(1, 0, 20), mark(0, 1, 50), mark(1, 1, 50)]
    assert processed_time(marks) == (20 * MIN, False)
    assert complete_time(marks, 5 * MIN) == 15 * MIN
    quiet = [mark(0, 0, 30, idle=True), mark(1, 0, 30, idle=True), mark(0, 1, 50), mark(1, 1, 50)]
    assert complete_time(quiet, 5 * MIN) == 45 * MIN  # an idle source does not hold time back
    done = [mark(p, s, 30 + 20 * s, idle=True) for p in (0, 1) for s in (0, 1)]
    assert complete_time(done, 5 * MIN) == 50 * MIN  # all idle: everything delivered is complete
    half_idle = [mark(0, 0, 30, idle=True), mark(1, 0, 30), mark(0, 1, 50), mark(1, 1, 50)]
    assert complete_time(half_idle, 0) == 30 * MIN  # idle only once every partition has the idle mark


def brute_next_end(after_us: int | None, specs: list, items: list[int]) -> int | None:
    ends = []
    for spec in specs:
        for t in items:
            first_end = (t // spec.hop_us + 1) * spec.hop_us
            ends += [first_end + k * spec.hop_us for k in range(spec.size_us // spec.hop_us)]
    later = [e for e in ends if after_us is None or e > after_us]
    return min(later) if later else None


@settings(max_examples=80, deadline=None)
@given(items=st.lists(st.integers(0, 2000).map(lambda m: m * MIN // 3), max_size=30),
       after=st.one_of(st.none(), st.integers(0, 700).map(lambda m: m * MIN)),
       sizes=st.sampled_from([("5min",), ("1h",), ("1h/15min",), ("5min", "1h/20min")]))
def test_next_window_end_equals_brute_force(items: list[int], after: int | None, sizes: tuple[str, ...]) -> None:
    specs = [parse_spec(s) for s in sizes]
    items = sorted(items)
    got = next_window_end(from_micros(after) if after is not None else None, specs, items)
    want = brute_next_end(after, specs, items)
    assert (to_micros(got) if got is not None else None) == want


def test_following_tick_steps_while_active_and_jumps_to_window_ends_otherwise() -> None:
    step = timedelta(minutes=5)
    tick = BASE + timedelta(minutes=10)
    assert following_tick(tick, step, True, None) == tick + step
    assert following_tick(tick, step, False, None) is None
    assert following_tick(tick, step, False, BASE + timedelta(minutes=60)) == BASE + timedelta(minutes=60)
    assert following_tick(tick, step, False, BASE + timedelta(minutes=61)) == BASE + timedelta(minutes=65)
    assert following_tick(None, step, False, BASE + timedelta(minutes=15)) == BASE + timedelta(minutes=15)


def test_catching_up_while_a_source_is_behind_or_its_marks_are_stale() -> None:
    def m(lag: int | None, sent_min: int, idle: bool = False) -> StoredMark:
        return StoredMark(0, 0, 10 * MIN, idle, 1, lag, sent_min * MIN)

    now, lag, age = 100 * MIN, 1000, 1 * MIN
    assert not catching_up([], now, lag, age)
    assert catching_up([m(5000, 100)], now, lag, age)  # classify far behind
    assert not catching_up([m(10, 100)], now, lag, age)
    assert catching_up([m(0, 90)], now, lag, age)  # the aggregators have not applied a mark for 10 minutes
    assert not catching_up([m(5000, 10, idle=True)], now, lag, age)  # idle sources never hold


def test_a_source_not_heard_from_yet_holds_stream_time_back() -> None:
    """Four news.raw partitions, marks from three: the fourth's first items may still be on their way."""
    three = [StoredMark(p, s, 60 * MIN, False, 2, 0, 0, sources=4) for p in (0, 1) for s in (0, 1, 2)]
    assert complete_time(three, 0) is None
    assert catching_up(three, 0, 1000, MIN)
    four = [*three, StoredMark(0, 3, None, True, 2, 0, 0, 4), StoredMark(1, 3, None, True, 2, 0, 0, 4)]
    assert complete_time(four, 0) == 60 * MIN  # an empty partition's idle marks release it
