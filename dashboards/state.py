"""Shared dashboard plumbing: the cached store connection, cached queries, the sidebar's time controls, and
consistent colours. Nothing connects at import time: the store opens on first use."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import streamlit as st

from monitor.config import Settings, load_settings
from monitor.store import Store

SENTIMENT_COLORS = {"negative": "#d62728", "neutral": "#9e9e9e", "positive": "#2ca02c"}
DIVERGING = "redyellowgreen"  # Vega scheme: negative red -> positive green
RANGES = {
    "Last 6 hours": timedelta(hours=6),
    "Last 24 hours": timedelta(days=1),
    "Last 3 days": timedelta(days=3),
    "Last 7 days": timedelta(days=7),
    "Last 30 days": timedelta(days=30),
    "Everything": None,
}
REFRESH = "10s"
EMPTY_HINT = "No data yet: run `finmon up` (or `finmon replay demo` with the workers running) to fill the store."


@st.cache_resource
def settings() -> Settings:
    return load_settings()


@st.cache_resource
def store() -> Store:
    """One store (engine + pool) per server process."""
    return Store(settings().store_url)


@dataclass(frozen=True)
class TimeWindow:
    start: datetime | None
    end: datetime | None
    size: str


def store_error(exc: Exception) -> None:
    st.error(
        f"The store at {store().safe_url} cannot be read: {exc.__class__.__name__}: "
        f"{str(exc).splitlines()[0][:300]}. Check FINMON_STORE_URL and that the database is running."
    )


def time_controls(latest: datetime | None, sizes: tuple[str, ...] = ("5min", "1h", "1D")) -> TimeWindow:
    """Sidebar pickers for the time range (anchored on the latest item, so replays of history work) and the
    window size. Widget keys keep the user's choice across refreshes and pages."""
    choice = st.sidebar.selectbox("Time range", list(RANGES), index=1, key="range")
    size = st.sidebar.selectbox("Window size", list(sizes), index=min(1, len(sizes) - 1), key="size")
    span = RANGES[choice]
    if latest is None or span is None:
        return TimeWindow(None, latest, size)
    return TimeWindow(latest - span, latest, size)
