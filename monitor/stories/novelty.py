"""Novelty 0-100 of an item within its story (pure), in the spirit of RavenPack's Event Novelty Score.

    novelty = round(100 * decay ** k)

where k is the number of items of the same story with an event time in [t - window, t] that were assigned
before this one (t: the item's own event time; window: 24 h by default; decay: 0.75 by default). The first
item of a story scores 100, then 75, 56, 42, 32, 24, 18, 13, 10, 8, 6, 4, 3, 2, 1, 1, 1, 0, ... A story
whose earlier items are all more than `window` older than t starts again at 100 (it resurfaced).

Only the count of earlier copies in the window matters, not the wall-clock time between them, so a replay of
time-ordered input at any speed, in any batch sizes, gives the same numbers. Items of the same story that
arrive out of event-time order: an item counts only the earlier copies already assigned when it arrives
(copies with a later event time never count), so a late original scores as if the later copies did not
exist, and the copies it preceded keep the novelty they were given (assignments are final).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

DEFAULT_DECAY = 0.75


def novelty(earlier: int, decay: float = DEFAULT_DECAY) -> int:
    """Novelty of an item with `earlier` earlier copies of its story in the window."""
    if earlier < 0:
        raise ValueError(f"earlier must be >= 0, got {earlier}")
    return round(100 * decay**earlier)


def earlier_in_window(times_us: Sequence[int], t_us: int, window_us: int) -> int:
    """How many of the sorted `times_us` lie in [t - window, t]."""
    return bisect.bisect_right(times_us, t_us) - bisect.bisect_left(times_us, t_us - window_us)
