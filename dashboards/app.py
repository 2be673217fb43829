"""The finmon dashboard (Streamlit). Reads only the store named by FINMON_STORE_URL, never Kafka.

Run it with `finmon dashboard` (or `finmon up`, which starts it) rather than `streamlit run`, so it binds to
127.0.0.1 and sends no usage statistics.
"""

from __future__ import annotations

import streamlit as st

from dashboards.views import alerts, backtest, news, overview, system, ticker

PAGES = [
    st.Page(overview.render, title="Overview", icon=":material/monitoring:", url_path="overview", default=True),
    st.Page(alerts.render, title="Alerts", icon=":material/notifications_active:", url_path="alerts"),
    st.Page(news.render, title="News explorer", icon=":material/newspaper:", url_path="news"),
    st.Page(ticker.render, title="Ticker", icon=":material/candlestick_chart:", url_path="ticker"),
    st.Page(backtest.render, title="Backtest", icon=":material/history:", url_path="backtest"),
    st.Page(system.render, title="System", icon=":material/dns:", url_path="system"),
]


def main() -> None:
    st.set_page_config(page_title="finmon", page_icon=":material/monitoring:", layout="wide")
    st.navigation(PAGES).run()


main()
