"""Injected time. Logic never calls `datetime.now()` itself: live runs pass a `SystemClock`, replays and tests
pass a clock they control, so the same code runs in wall-clock and in event time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
INSTANT = timedelta(microseconds=1)  # the smallest step of time: `t - INSTANT` is the last instant before t


class Clock(Protocol):
    """Anything that tells the current time as a timezone-aware UTC datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """Wall-clock time in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to (tests, event-time replays)."""

    def __init__(self, start: datetime) -> None:
        self._now = ensure_utc(start)

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = ensure_utc(when)


def ensure_utc(when: datetime) -> datetime:
    """Return `when` in UTC; naive datetimes are taken to be UTC already (the wire format's convention)."""
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def next_tick(when: datetime, step: timedelta) -> datetime:
    """The first `step` boundary (UTC-epoch aligned, like the windows) strictly after `when`: an item at t is
    seen by the evaluation after t. Event-time evaluation (backtests, stream-mode alerting) ticks on these."""
    return EPOCH + ((when - EPOCH) // step + 1) * step


def to_micros(when: datetime) -> int:
    """A datetime as integer microseconds since the epoch (UTC): exact, unlike float timestamps."""
    return (ensure_utc(when) - EPOCH) // INSTANT


def from_micros(us: int) -> datetime:
    """Integer microseconds since the epoch as a UTC datetime."""
    return EPOCH + timedelta(microseconds=int(us))
