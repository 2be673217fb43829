"""Cached wrappers of the dashboard queries: a few seconds of TTL keeps pages live without hammering the
store. The store URL is the cache key, so switching stores never serves stale rows."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import streamlit as st

from dashboards import queries as q
from dashboards.state import EMPTY_HINT, TimeWindow, store, time_controls

TTL = 5


def url() -> str:
    return store().url


@st.cache_data(ttl=TTL, show_spinner=False)
def time_bounds(store_url: str) -> tuple[datetime | None, datetime | None]:
    return q.time_bounds(store().engine)


@st.cache_data(ttl=60, show_spinner=False)
def topics(store_url: str) -> list[str]:
    return q.topics(store().engine)


@st.cache_data(ttl=60, show_spinner=False)
def languages(store_url: str) -> list[str]:
    return q.languages(store().engine)


@st.cache_data(ttl=TTL, show_spinner=False)
def news(store_url: str, f: q.NewsFilter) -> pd.DataFrame:
    return q.news(store().engine, f)


@st.cache_data(ttl=TTL, show_spinner=False)
def store_counts(store_url: str) -> dict[str, object]:
    return q.store_counts(store().engine)


@st.cache_data(ttl=TTL, show_spinner=False)
def dead_letter_summary(store_url: str) -> pd.DataFrame:
    return q.dead_letter_summary(store().engine)


@st.cache_data(ttl=TTL, show_spinner=False)
def recent_dead_letters(store_url: str) -> pd.DataFrame:
    return q.recent_dead_letters(store().engine)


@st.cache_data(ttl=TTL, show_spinner=False)
def stored_rate(store_url: str) -> dict[str, float]:
    return q.stored_rate(store().engine)


@st.cache_data(ttl=TTL, show_spinner=False)
def windows(
    store_url: str,
    size: str,
    start: datetime | None,
    end: datetime | None,
    key: str | None = None,
    prefix: str | None = None,
) -> pd.DataFrame:
    return q.windows(store().engine, size, start, end, key=key, prefix=prefix)


@st.cache_data(ttl=60, show_spinner=False)
def window_sizes(store_url: str) -> list[str]:
    return q.window_sizes(store().engine)


@st.cache_data(ttl=30, show_spinner=False)
def tickers(store_url: str) -> list[str]:
    return q.tickers(store().engine)


@st.cache_data(ttl=60, show_spinner=False)
def prices(store_url: str, ticker: str, start: datetime | None, end: datetime | None) -> pd.DataFrame:
    return q.prices(store().engine, ticker, start, end)


@st.cache_data(ttl=TTL, show_spinner=False)
def headlines(store_url: str, ticker: str | None, start: datetime | None, end: datetime | None) -> pd.DataFrame:
    return q.news(store().engine, q.NewsFilter(start=start, end=end, tickers=(ticker,) if ticker else (), limit=100))


@st.cache_data(ttl=TTL, show_spinner=False)
def alerts(store_url: str, key: str | None = None, since: datetime | None = None) -> pd.DataFrame:
    return q.alerts(store().engine, key=key, since=since)


@st.cache_data(ttl=60, show_spinner=False)
def track_records(store_url: str) -> dict[str, str]:
    """rule -> its backtest track record, as one line (monitor/alerts/track.py)."""
    return q.track_records(store().engine)


@st.cache_data(ttl=TTL, show_spinner=False)
def alert_counts(store_url: str) -> dict[str, int]:
    return q.alert_counts(store().engine)


@st.cache_data(ttl=TTL, show_spinner=False)
def evidence(store_url: str, key: str, start: datetime, end: datetime) -> pd.DataFrame:
    return q.evidence_headlines(store().engine, key, start, end)


@st.cache_data(ttl=TTL, show_spinner=False)
def workers(store_url: str) -> pd.DataFrame:
    return q.workers(store().engine)


@st.cache_data(ttl=TTL, show_spinner=False)
def consumer_lag(store_url: str) -> pd.DataFrame:
    return q.consumer_lag(store().engine)


def page_window() -> TimeWindow | None:
    """The sidebar's time range and window size over the store's data, or None (with a hint) when it is empty."""
    low, latest = time_bounds(url())
    if latest is None:
        st.info(EMPTY_HINT)
        return None
    window = time_controls(latest, tuple(window_sizes(url())) or ("5min", "1h", "1D"))
    return window if window.start is not None else TimeWindow(low, latest, window.size)
