"""Which event-time instants alert rules are evaluated at: one rule for the live stream and the backtest.

Rules are evaluated at `tick - 1 us` for ticks on a UTC-epoch-aligned step grid, and see only *complete*
windows (ended by the tick). While an alert is pending or firing, every tick counts (`for` durations and
repeats advance). Otherwise a rule's result can only change when a window completes, so the next tick is
the first one at or after the end of the next window that holds an item: the same ticks, whether the
windows are read from the store (live) or derived from the feed's item times (backtest).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from datetime import datetime, timedelta

from monitor.clock import INSTANT, from_micros, next_tick, to_micros
from monitor.windows.spec import WindowSpec


def following_tick(tick: datetime | None, step: timedelta, active: bool, next_end: datetime | None
                   ) -> datetime | None:
    """The tick after `tick` (None: before the first) given whether an alert is active and the end of the next
    window to complete after `tick` (None: no such window yet)."""
    if active and tick is not None:
        return tick + step
    if next_end is None:
        return None
    candidate = next_tick(next_end - INSTANT, step)
    return candidate if tick is None or candidate > tick else tick + step


def next_window_end(after: datetime | None, specs: Sequence[WindowSpec], times_us: Sequence[int]
                    ) -> datetime | None:
    """The earliest end, strictly after `after`, of a window of `specs` holding one of the (sorted) item times."""
    best: int | None = None
    lo_us = to_micros(after) if after is not None else None
    for spec in specs:
        end = _next_end(lo_us, spec, times_us)
        if end is not None and (best is None or end < best):
            best = end
    return None if best is None else from_micros(best)


def _next_end(after_us: int | None, spec: WindowSpec, times_us: Sequence[int]) -> int | None:
    if not times_us:
        return None
    hop, size = spec.hop_us, spec.size_us
    if after_us is not None:
        first = (after_us // hop + 1) * hop  # the first window end after `after`
        i = bisect.bisect_left(times_us, first - size)
        if i < len(times_us) and times_us[i] < first:
            return first  # that window holds an item
        i = bisect.bisect_left(times_us, first)
    else:
        i = 0
    if i >= len(times_us):
        return None
    return (times_us[i] // hop + 1) * hop  # the earliest-ending window holding the next item
