"""Ticker view: one ticker's sentiment index, volume and z-scores, its price series when prices have been
loaded, and its alerts and headlines."""

from __future__ import annotations

import streamlit as st

from dashboards import charts, data
from dashboards.state import TimeWindow, store_error


def _pick(window: TimeWindow) -> str | None:
    tickers = data.tickers(data.url())
    if not tickers:
        st.info(
            "No ticker windows yet: items need tickers (a `tickers` field or `$CASHTAGS`) and the aggregate "
            "stage must be running."
        )
        return None
    chosen = st.query_params.get("symbol")
    index = tickers.index(chosen) if chosen in tickers else 0
    symbol = st.sidebar.selectbox("Ticker", tickers, index=index, key="ticker_symbol")
    st.query_params["symbol"] = symbol
    return symbol


def _body(symbol: str, window: TimeWindow) -> None:
    url = data.url()
    frame = data.windows(url, window.size, window.start, window.end, key=f"ticker:{symbol}")
    if frame.empty:
        st.info(f"No {window.size} windows for {symbol} in this range; widen the range or pick another size.")
        return
    st.altair_chart(charts.sentiment_and_volume(frame, f"{symbol}, {window.size} windows"), width="stretch")
    st.caption("z-scores against the ticker's own recent windows (empty until enough history exists)")
    st.altair_chart(charts.z_scores(frame), width="stretch")
    prices = data.prices(url, symbol, window.start, window.end)
    if prices.empty:
        st.caption("No prices loaded for this ticker (`finmon prices load FILE` or a backtest loads them).")
    else:
        st.line_chart(prices, x="date", y="close", height=180)
    alerts = data.alerts(url, key=f"ticker:{symbol}")[["rule", "state", "severity", "started_at", "resolved_at"]]
    if not alerts.empty:
        st.subheader("Alerts")
        st.dataframe(alerts, hide_index=True, width="stretch")
    st.subheader("Headlines")
    st.dataframe(
        data.headlines(url, symbol, window.start, window.end),
        hide_index=True,
        width="stretch",
        column_config={"url": st.column_config.LinkColumn("link", display_text="open")},
    )


def render() -> None:
    st.title("Ticker")
    try:
        window = data.page_window()
        if window is None:
            return
        symbol = _pick(window)
        if symbol is None:
            return

        @st.fragment(run_every="10s")
        def live() -> None:
            _body(symbol, window)

        live()
    except Exception as exc:
        store_error(exc)
