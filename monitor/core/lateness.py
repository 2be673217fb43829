"""Lateness decided at the source: per source partition, in the order the source delivered its records.

A source partition (a `news.raw` partition live, a slice of the file in a backtest) delivers records in
offset order. An item is *late* when its event time is more than `grace` before the largest event time
among the records its partition delivered before it:

    late(i) = t_i < max{t_j : j before i in i's partition} - grace

That is a function of the partition's prefix alone, so it is the same at any replay speed, with any number
of classify or aggregate workers, and after any crash (a restarted worker resumes the partition's state
from the snapshot saved at its committed offset). Downstream re-keying and batching cannot make an item late.

`SourceTracker` holds the per-partition state; `decide_all` is the brute-force reference and the backtest's
way of applying the same rule to a whole feed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_MEMO = 50_000  # decisions remembered per tracker, so a batch that is processed again gets the same answers


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision about one record: late or not, and the source time it was measured against."""

    late: bool
    source_us: int | None  # the largest event time its partition had delivered before it (None: nothing yet)


@dataclass(slots=True)
class SourceState:
    """What a source partition has delivered so far: the next offset expected and the max event time."""

    next_offset: int = 0
    max_t_us: int | None = None


class SourceTracker:
    """Per-partition watermarks of a source topic and the lateness decisions that follow from them."""

    def __init__(self, grace_us: int) -> None:
        self.grace_us = grace_us
        self.states: dict[int, SourceState] = {}
        self._memo: OrderedDict[tuple[int, int], tuple[Verdict, int | None]] = OrderedDict()

    def knows(self, partition: int, offset: int) -> bool:
        """True when `offset` continues the partition's state or was already decided (no restore needed)."""
        state = self.states.get(partition)
        return (partition, offset) in self._memo or (state is not None and state.next_offset == offset)

    def restore(self, partition: int, next_offset: int, max_t_us: int | None) -> None:
        """Resume a partition at `next_offset` with the max event time of everything before it."""
        self.states[partition] = SourceState(next_offset, max_t_us)

    def observe(self, partition: int, offset: int, t_us: int | None) -> Verdict:
        """Decide one record (t_us None: a record without a usable time, which moves nothing)."""
        memo = self._memo.get((partition, offset))
        if memo is not None:
            return memo[0]
        state = self.states.setdefault(partition, SourceState(offset, None))
        before = state.max_t_us
        late = t_us is not None and before is not None and t_us < before - self.grace_us
        if t_us is not None and (before is None or t_us > before):
            state.max_t_us = t_us
        state.next_offset = max(state.next_offset, offset + 1)
        verdict = Verdict(late, before)
        self._memo[(partition, offset)] = (verdict, t_us)
        if len(self._memo) > _MEMO:
            self._memo.popitem(last=False)
        return verdict

    def watermark(self, partition: int) -> int | None:
        """Event time below which the partition can deliver only late items (None before any item)."""
        state = self.states.get(partition)
        return None if state is None or state.max_t_us is None else state.max_t_us - self.grace_us

    def snapshot(self, partitions: Iterable[int]) -> dict[int, SourceState]:
        """Copies of the states of `partitions`, to persist (through offset = next_offset - 1)."""
        return {p: SourceState(self.states[p].next_offset, self.states[p].max_t_us)
                for p in partitions if p in self.states}

    def state_through(self, partition: int, offset: int) -> SourceState:
        """The partition's state right after `offset`: what a worker resuming at `offset + 1` needs. A batch
        that re-reads records this tracker has already passed (a rewind to the committed offset) is saved
        as of its own last record, not as of the newest one seen."""
        memo = self._memo.get((partition, offset))
        if memo is not None:
            verdict, t_us = memo
            known = [t for t in (verdict.source_us, t_us) if t is not None]
            return SourceState(offset + 1, max(known) if known else None)
        state = self.states[partition]
        if state.next_offset != offset + 1:
            raise KeyError(f"no state of partition {partition} through offset {offset}")
        return SourceState(state.next_offset, state.max_t_us)


def decide_all(records: Sequence[tuple[int, int | None]], grace_us: int) -> list[Verdict]:
    """Brute force: verdicts for (partition, t_us) records given in delivery order, offsets implied."""
    tracker = SourceTracker(grace_us)
    offsets: dict[int, int] = {}
    out = []
    for partition, t_us in records:
        offset = offsets.get(partition, 0)
        offsets[partition] = offset + 1
        out.append(tracker.observe(partition, offset, t_us))
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


def replay_verdicts(keys: Sequence[bytes], times_us: Sequence[int], partitions: int, grace_us: int
                    ) -> list[tuple[int, int, Verdict]]:
    """(partition, offset, verdict) per item, for items published in this order keyed by `keys` to a topic
    with `partitions` partitions: what the live classify stage decides for a replay of them."""
    tracker = SourceTracker(grace_us)
    offsets: dict[int, int] = {}
    out = []
    for key, t_us in zip(keys, times_us, strict=True):
        partition = partition_for(key, partitions)
        offset = offsets.get(partition, 0)
        offsets[partition] = offset + 1
        out.append((partition, offset, tracker.observe(partition, offset, t_us)))
    return out
