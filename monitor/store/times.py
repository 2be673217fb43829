"""Datetimes as the store hands them back. A leaf module (no other store imports), so every table module can
use it without importing the Store and looping back into db.py."""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(when: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; the store only ever writes UTC, so attach it."""
    if when is None:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
