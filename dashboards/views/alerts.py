"""Alerts: firing, pending and resolved alerts with their evidence (the window that matched and the headlines
behind it); acknowledge and silence from the page, written to the store so the alert stage honours them."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from dashboards import data
from dashboards import queries as q
from dashboards.state import store, store_error

# Markdown colour tags, not emoji: they render in every browser and font setup.
STATE_LABELS = {"firing": ":red[**firing**]", "pending": ":orange[**pending**]", "resolved": ":green[resolved]"}
SILENCE_LENGTHS = {"1 hour": "1h", "4 hours": "4h", "1 day": "1D", "1 week": "7D"}


def _now() -> datetime:
    return datetime.now(UTC)  # the page is an entry point: wall-clock time is injected from here


def _evidence(alert: pd.Series) -> None:
    window = alert["window"] if isinstance(alert["window"], dict) else {}
    if window:
        metrics = {k: window.get(k) for k in ("count", "negative_share", "sentiment_index", "volume_z", "sentiment_z")}
        cols = st.columns(len(metrics))
        for col, (name, value) in zip(cols, metrics.items(), strict=True):
            col.metric(name, "n/a" if value is None else (f"{value:.2f}" if isinstance(value, float) else value))
        start, end = pd.Timestamp(window.get("window_start")), pd.Timestamp(window.get("window_end"))
        if not pd.isna(start) and not pd.isna(end):
            st.caption(f"Headlines behind {alert['key']} from {start:%Y-%m-%d %H:%M} to {end:%H:%M} UTC")
            st.dataframe(
                data.evidence(data.url(), alert["key"], start.to_pydatetime(), end.to_pydatetime()),
                hide_index=True,
                width="stretch",
                column_config={"url": st.column_config.LinkColumn("link", display_text="open")},
            )
    _actions(alert)


def _actions(alert: pd.Series) -> None:
    cols = st.columns([1, 1, 2])
    if alert["state"] in ("pending", "firing") and pd.isna(alert["acked_at"]):
        if cols[0].button("Acknowledge", key=f"ack_{alert['id']}"):
            q.acknowledge(store().engine, int(alert["id"]), _who(), _now())
            st.cache_data.clear()
            st.success(f"Alert {alert['id']} acknowledged")
    elif not pd.isna(alert["acked_at"]):
        cols[0].caption(f"acknowledged by {alert['acked_by']}")
    length = cols[2].selectbox("Silence for", list(SILENCE_LENGTHS), key=f"len_{alert['id']}")
    if cols[1].button("Silence", key=f"silence_{alert['id']}"):
        q.add_silence(
            store().engine,
            alert["rule"],
            alert["key"],
            pd.Timedelta(SILENCE_LENGTHS[length]),
            _who(),
            "from the dashboard",
            _now(),
        )
        st.cache_data.clear()
        st.success(f"{alert['rule']} on {alert['key']} silenced for {length}")


def _who() -> str:
    try:
        return f"dashboard:{getpass.getuser()}"
    except (KeyError, OSError):
        return "dashboard"


def _list(frame: pd.DataFrame) -> None:
    counts = frame["state"].value_counts()
    cols = st.columns(3)
    for col, state in zip(cols, ("firing", "pending", "resolved"), strict=True):
        col.metric(state.capitalize(), int(counts.get(state, 0)))
    shown = st.multiselect("States", list(STATE_LABELS), default=list(STATE_LABELS), key="alert_states")
    records = data.track_records(data.url())
    for _, alert in frame[frame["state"].isin(shown)].head(50).iterrows():
        title = (
            f"{STATE_LABELS.get(alert['state'], alert['state'])} {alert['rule']} — {alert['key']} ({alert['severity']})"
        )
        with st.expander(f"{title}, since {pd.Timestamp(alert['started_at']):%Y-%m-%d %H:%M} UTC"):
            st.write(alert["summary"] or "")
            st.caption(records.get(alert["rule"], "No track record yet: `finmon backtest --save-track-record` "
                                                  "measures what this rule's alerts were followed by."))
            _evidence(alert)


def _silences() -> None:
    active = q.silences(store().engine, _now())
    st.subheader(f"Active silences ({len(active)})")
    if not active.empty:
        st.dataframe(active, hide_index=True, width="stretch")
    with st.form("new_silence"):
        cols = st.columns(4)
        rule = cols[0].text_input("Rule (empty = any)")
        key = cols[1].text_input("Key, e.g. ticker:AAPL (empty = any)")
        length = cols[2].selectbox("For", list(SILENCE_LENGTHS))
        comment = cols[3].text_input("Comment")
        if st.form_submit_button("Add silence"):
            try:
                q.add_silence(
                    store().engine,
                    rule or None,
                    key or None,
                    pd.Timedelta(SILENCE_LENGTHS[length]),
                    _who(),
                    comment,
                    _now(),
                )
                st.success("Silence added")
            except ValueError as exc:
                st.error(str(exc))


def render() -> None:
    st.title("Alerts")
    try:
        frame = data.alerts(data.url())
        if frame.empty:
            st.info(
                "No alerts yet. The alert stage (`finmon worker alerting`, started by `finmon up`) evaluates the "
                "rules in monitor/data/rules.yaml against the windows; alerts appear here when they match."
            )
        else:
            _list(frame)
        _silences()
    except Exception as exc:
        store_error(exc)
