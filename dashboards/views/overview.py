"""Overview: market sentiment and news volume over time, one small chart per topic, a topic x time heatmap,
the tickers whose sentiment moved most, and how many alerts are firing."""

from __future__ import annotations

import streamlit as st

from dashboards import charts, data
from dashboards.queries import movers
from dashboards.state import TimeWindow, store_error


def _headline(market, window: TimeWindow) -> None:
    cols = st.columns(4)
    latest = market.dropna(subset=["sentiment_index"]).tail(1)
    index = float(latest["sentiment_index"].iloc[0]) if not latest.empty else None
    cols[0].metric("Market sentiment index (latest window)", f"{index:+.2f}" if index is not None else "n/a")
    cols[1].metric("Items in range", f"{int(market['count'].sum()):,}")
    counts = data.alert_counts(data.url())
    cols[2].metric("Alerts firing", counts.get("firing", 0))
    cols[3].metric("Alerts pending", counts.get("pending", 0))


def _sections(window: TimeWindow) -> None:
    url = data.url()
    market = data.windows(url, window.size, window.start, window.end, key="market")
    if market.empty:
        st.info(
            f"No {window.size} windows in this range yet: the aggregate stage (`finmon worker aggregate`, "
            "started by `finmon up`) writes them. Try another window size or time range."
        )
        return
    _headline(market, window)
    st.altair_chart(charts.sentiment_and_volume(market, f"Market, {window.size} windows"), width="stretch")
    topics = data.windows(url, window.size, window.start, window.end, prefix="topic:")
    if not topics.empty:
        st.subheader("Topics")
        st.altair_chart(charts.topic_heatmap(topics), width="stretch")
        with st.expander("One chart per topic", expanded=False):
            st.altair_chart(charts.topic_small_multiples(topics))
    _movers(window)


def _movers(window: TimeWindow) -> None:
    if window.start is None or window.end is None:
        return
    tickers = data.windows(data.url(), window.size, window.start, window.end, prefix="ticker:")
    moved = movers(tickers, window.start, window.end).head(10)
    st.subheader("Tickers whose sentiment moved most (second half of the range vs the first)")
    if moved.empty:
        st.caption("Not enough ticker news in this range to compare.")
        return
    st.altair_chart(charts.movers_bar(moved), width="stretch")


def render() -> None:
    st.title("Overview")
    try:
        window = data.page_window()
        if window is None:
            return

        @st.fragment(run_every="10s")
        def live() -> None:
            _sections(window)

        live()
    except Exception as exc:
        store_error(exc)
