"""Persistence: scored items, dead letters (and later windows and alerts) in SQLite or PostgreSQL."""

from monitor.store.db import TRANSIENT_ERRORS, Store, as_utc, make_engine

__all__ = ["TRANSIENT_ERRORS", "Store", "as_utc", "make_engine"]
