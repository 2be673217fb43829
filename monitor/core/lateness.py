"""Lateness decided at the source: per source partition and feed, in the order the partition delivered them.

A source partition (a `news.raw` partition live, a slice of the file in a backtest) delivers records in
offset order, and several feeds share a partition (ingest keys items by id). An item is *late* when its
event time is more than `grace` before the largest event time among the records of its own feed (its
`source` field) that its partition delivered before it:

    late(i) = t_i < max{t_j : j before i in i's partition, source_j = source_i} - grace

Per feed, because feeds run at their own pace: a newswire that publishes an hour after the fact, or a feed
whose first poll brings a day of history, is not late just because a faster feed shares its partition.
That is a function of the partition's prefix alone, so it is the same at any replay speed, with any number
of classify or aggregate workers, and after any crash (a restarted worker resumes the partition's state
from the snapshot saved at its committed offset). Downstream re-keying and batching cannot make an item late.
The partition's stream time (its marks, monitor/core/streamtime.py) is the max over all its feeds.

`SourceTracker` holds the per-partition state; `decide_all` is the brute-force reference and the backtest's
way of applying the same rule to a whole feed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

# Decisions remembered per tracker (with the state after each), so a batch that is processed again gets the
# same answers; a rewind further back than this resumes from the stored snapshot instead (exact as well).
_MEMO = 5_000


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision about one record: late or not, and the source time it was measured against."""

    late: bool
    source_us: int | None  # the largest event time its feed had delivered on its partition (None: nothing yet)


@dataclass(slots=True)
class SourceState:
    """What a source partition has delivered so far: the next offset expected, the max event time over all
    its feeds (its stream time) and per feed (lateness). `feeds` is replaced on change, never mutated, so a
    remembered state stays as it was."""

    next_offset: int = 0
    max_t_us: int | None = None
    feeds: Mapping[str, int] = field(default_factory=dict)


class SourceTracker:
    """Per-partition watermarks of a source topic and the lateness decisions that follow from them."""

    def __init__(self, grace_us: int) -> None:
        self.grace_us = grace_us
        self.states: dict[int, SourceState] = {}
        self._memo: OrderedDict[tuple[int, int], tuple[Verdict, SourceState]] = OrderedDict()

    def knows(self, partition: int, offset: int) -> bool:
        """True when `offset` continues the partition's state or was already decided (no restore needed)."""
        state = self.states.get(partition)
        return (partition, offset) in self._memo or (state is not None and state.next_offset == offset)

    def restore(self, partition: int, next_offset: int, max_t_us: int | None,
                feeds: Mapping[str, int] | None = None) -> None:
        """Resume a partition at `next_offset` with the max event times of everything before it, overall and
        per feed (a snapshot saved before feeds were tracked has none: each feed starts afresh, leniently)."""
        self.states[partition] = SourceState(next_offset, max_t_us, dict(feeds or {}))

    def observe(self, partition: int, offset: int, t_us: int | None, feed: str = "") -> Verdict:
        """Decide one record of `feed` (t_us None: a record without a usable time, which moves nothing)."""
        memo = self._memo.get((partition, offset))
        if memo is not None:
            return memo[0]
        state = self.states.setdefault(partition, SourceState(offset, None))
        before = state.feeds.get(feed)
        late = t_us is not None and before is not None and t_us < before - self.grace_us
        if t_us is not None:
            if before is None or t_us > before:
                state.feeds = _with(state.feeds, feed, t_us)
            if state.max_t_us is None or t_us > state.max_t_us:
                state.max_t_us = t_us
        state.next_offset = max(state.next_offset, offset + 1)
        verdict = Verdict(late, before)
        self._memo[(partition, offset)] = (verdict, SourceState(offset + 1, state.max_t_us, state.feeds))
        if len(self._memo) > _MEMO:
            self._memo.popitem(last=False)
        return verdict

    def watermark(self, partition: int) -> int | None:
        """Event time below which the partition can deliver only late items (None before any item)."""
        state = self.states.get(partition)
        return None if state is None or state.max_t_us is None else state.max_t_us - self.grace_us

    def state_through(self, partition: int, offset: int) -> SourceState:
        """The partition's state right after `offset`: what a worker resuming at `offset + 1` needs. A batch
        that re-reads records this tracker has already passed (a rewind to the committed offset) is saved
        as of its own last record, not as of the newest one seen."""
        memo = self._memo.get((partition, offset))
        if memo is not None:
            return memo[1]
        state = self.states[partition]
        if state.next_offset != offset + 1:
            raise KeyError(f"no state of partition {partition} through offset {offset}")
        return SourceState(state.next_offset, state.max_t_us, state.feeds)


def _with(feeds: Mapping[str, int], feed: str, t_us: int) -> Mapping[str, int]:
    """`feeds` with `feed` at `t_us`, as a new mapping (remembered states keep theirs)."""
    out = dict(feeds)
    out[feed] = t_us
    return out


def decide_all(records: Sequence[tuple[int, int | None]], grace_us: int,
               feeds: Sequence[str] | None = None) -> list[Verdict]:
    """Brute force: verdicts for (partition, t_us) records given in delivery order, offsets implied."""
    tracker = SourceTracker(grace_us)
    offsets: dict[int, int] = {}
    out = []
    for i, (partition, t_us) in enumerate(records):
        offset = offsets.get(partition, 0)
        offsets[partition] = offset + 1
        out.append(tracker.observe(partition, offset, t_us, feeds[i] if feeds is not None else ""))
    return out


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash (the Java client's and kafka-python's default partitioner), as an unsigned int32."""
    length, seed, m, r = len(data), 0x9747B28C, 0x5BD1E995, 24
    h = (seed ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    tail = length % 4
    base = length - tail
    if tail >= 3:
        h ^= data[base + 2] << 16
    if tail >= 2:
        h ^= data[base + 1] << 8
    if tail >= 1:
        h ^= data[base]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a keyed record: where a replay's item lands."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def replay_verdicts(keys: Sequence[bytes], times_us: Sequence[int], partitions: int, grace_us: int,
                    feeds: Sequence[str] | None = None) -> list[tuple[int, int, Verdict]]:
    """(partition, offset, verdict) per item, for items of `feeds` (their `source`; default all one feed)
    published in this order keyed by `keys` to a topic with `partitions` partitions: what the live classify
    stage decides for a replay of them."""
    tracker = SourceTracker(grace_us)
    offsets: dict[int, int] = {}
    out = []
    for i, (key, t_us) in enumerate(zip(keys, times_us, strict=True)):
        partition = partition_for(key, partitions)
        offset = offsets.get(partition, 0)
        offsets[partition] = offset + 1
        out.append((partition, offset, tracker.observe(partition, offset, t_us, feeds[i] if feeds else "")))
    return out
