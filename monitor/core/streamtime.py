"""Stream time: the event time that every source has passed, as Flink and Beam merge watermarks.

Classify workers send a `SourceMark` for each source (news.raw) partition to *every* news.scored
partition after the scored items they produced from it; an aggregator stores the latest mark of each
(downstream partition, source) pair in the same transaction as the windows those items changed. So once
every downstream partition holds a mark of source `p` with event time `T`, every item of `p` up to `T` is
in the windows.

- `processed_time`: the minimum over sources of what has reached the windows: windows before it hold all the
  news delivered so far (up to disorder within the grace).
- `complete_time`: the same minus the grace: nothing that is not late can still change a window that ends
  before it. Event-time alert evaluation (stream mode, backtests) never runs past it.

An idle source (its classify worker is caught up and has had nothing for `idle_timeout`) does not hold time
back; when every source is idle, everything delivered is complete.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StoredMark:
    """The latest source mark one downstream partition has applied."""

    partition: int  # the news.scored partition it was read from
    source: int  # the news.raw partition it speaks for
    max_t_us: int | None  # the largest event time the source had delivered (None: nothing yet)
    idle: bool
    fanout: int  # how many downstream partitions the source's marks go to
    lag: int | None = None  # records of the source still unread when the mark was sent
    sent_us: int | None = None  # when it was sent (wall clock, microseconds since the epoch)
    sources: int | None = None  # how many sources there are (None: unknown, then only those seen count)


@dataclass(frozen=True, slots=True)
class SourceTime:
    """What all downstream partitions agree a source has delivered into the windows."""

    source: int
    max_t_us: int | None  # None while some downstream partition has no mark of it yet
    idle: bool


def source_times(marks: Iterable[StoredMark]) -> list[SourceTime]:
    """Per source: the minimum over its downstream partitions (unknown until all of them report)."""
    by_source: dict[int, list[StoredMark]] = defaultdict(list)
    for mark in marks:
        by_source[mark.source].append(mark)
    out = []
    for source, rows in sorted(by_source.items()):
        fanout = max(m.fanout for m in rows)
        complete = len({m.partition for m in rows}) >= fanout
        times = [m.max_t_us for m in rows if m.max_t_us is not None]
        idle = complete and all(m.idle for m in rows)
        known = complete and len(times) == len(rows)
        out.append(SourceTime(source, min(times) if known and times else None, idle))
    return out


def processed_time(marks: Iterable[StoredMark]) -> tuple[int | None, bool]:
    """(min over active sources of what reached the windows, whether every source is idle). A source not heard
    from yet holds time back: its first items may still be on their way to the windows."""
    marks = list(marks)
    sources = source_times(marks)
    expected = max((m.sources for m in marks if m.sources is not None), default=0)
    if not sources or len(sources) < expected:
        return None, False
    active = [s for s in sources if not s.idle]
    if not active:
        known = [s.max_t_us for s in sources if s.max_t_us is not None]
        return (max(known) if known else None), True
    if any(s.max_t_us is None for s in active):
        return None, False
    return min(s.max_t_us for s in active if s.max_t_us is not None), False


def complete_time(marks: Iterable[StoredMark], grace_us: int) -> int | None:
    """Event time before which the windows are final (see the module docstring)."""
    processed, all_idle = processed_time(marks)
    if processed is None:
        return None
    return processed if all_idle else processed - grace_us


def catching_up(marks: Iterable[StoredMark], now_us: int, max_lag: int, max_age_us: int) -> bool:
    """True while the stream is behind: an active source whose classify worker had more than `max_lag` records
    left to read at its last mark, or whose newest mark the aggregators have not caught up with for
    `max_age_us` (an active source sends one at least every `mark_interval_s`). Wall-clock alerting holds
    evaluation then: the windows near `now` are still filling from the backlog."""
    by_source: dict[int, list[StoredMark]] = defaultdict(list)
    for mark in marks:
        by_source[mark.source].append(mark)
    expected = max((m.sources for rows in by_source.values() for m in rows if m.sources is not None), default=0)
    if len(by_source) < expected:
        return True  # a source not heard from yet (its first marks are still on their way)
    for rows in by_source.values():
        if all(m.idle for m in rows) and len({m.partition for m in rows}) >= max(m.fanout for m in rows):
            continue
        if any(m.lag is not None and m.lag > max_lag for m in rows):
            return True
        newest = max((m.sent_us for m in rows if m.sent_us is not None), default=None)
        if newest is not None and now_us - newest > max_age_us:
            return True
    return False
