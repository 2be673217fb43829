"""System: throughput, consumer lag, dead letters by reason, the loaded model's card and metrics, and the
health of the store. Everything comes from the store: lag is what the workers report in their heartbeats,
so this page (and the dashboard) never loads a Kafka client; `finmon status` asks the broker itself."""

from __future__ import annotations

import json

import streamlit as st

from dashboards import data
from dashboards.state import settings, store_error


def _store_section() -> None:
    counts = data.store_counts(data.url())
    rate = data.stored_rate(data.url())
    cols = st.columns(4)
    cols[0].metric("Items stored", f"{counts['stored']:,}")
    cols[1].metric("Stored/s (last min)", f"{rate['per_s_1min']:.1f}")
    cols[2].metric("Stored/s (last 10 min)", f"{rate['per_s_10min']:.1f}")
    last = counts["last_stored_at"]
    cols[3].metric("Last write (UTC)", last.strftime("%H:%M:%S") if last else "never")
    if counts["models"]:
        st.caption(
            "Model versions of the latest 10,000 items: "
            + ", ".join(f"{k}: {v:,}" for k, v in counts["models"].items())
        )


def _workers_section() -> None:
    frame = data.workers(data.url())
    st.subheader("Stage workers")
    if frame.empty:
        st.caption("No worker has reported yet (`finmon worker <stage>` writes a heartbeat every 10 s).")
        return
    running = frame[frame["stopped_at"].isna()]
    per_stage = running.groupby("stage").agg(
        workers=("worker", "count"), items_per_s=("records_per_s", "sum"), mean_batch=("mean_batch", "mean")
    )
    lag = data.consumer_lag(data.url())
    per_stage["lag"] = lag.groupby("stage")["lag"].sum().reindex(per_stage.index).astype("Int64")
    st.dataframe(per_stage, width="stretch")
    with st.expander("Every worker"):
        st.dataframe(frame, hide_index=True, width="stretch")


def _lag_section() -> None:
    lag = data.consumer_lag(data.url())
    st.subheader("Consumer lag")
    if lag.empty:
        st.caption("No running worker has reported lag yet (each reports it after a batch, in its heartbeat).")
        return
    st.caption(
        f"{int(lag['lag'].sum()):,} records behind in all. Per partition, as each stage's workers last reported "
        "it; `finmon status` asks the broker."
    )
    st.dataframe(lag, hide_index=True, width="stretch")


def _dead_letters() -> None:
    summary = data.dead_letter_summary(data.url())
    st.subheader(f"Dead letters ({int(summary['count'].sum()) if not summary.empty else 0})")
    if summary.empty:
        st.caption("None: every record so far was valid.")
        return
    st.bar_chart(summary, x="reason", y="count", color="stage")
    st.dataframe(data.recent_dead_letters(data.url()), hide_index=True, width="stretch")


def _model_card() -> None:
    from monitor.classify.model import resolve_model_dir

    try:
        model_dir = resolve_model_dir(settings().classify.model)
    except Exception as exc:
        st.warning(f"Model not found: {exc}")
        return
    metrics = model_dir / "metrics.json"
    card = model_dir / "README.md"
    st.subheader(f"Model: {model_dir.name}")
    if metrics.exists():
        st.json(json.loads(metrics.read_text()), expanded=False)
    if card.exists():
        with st.expander("Model card"):
            st.markdown(card.read_text())


def render() -> None:
    st.title("System")

    @st.fragment(run_every="10s")
    def live() -> None:
        try:
            _store_section()
            _workers_section()
            _lag_section()
            _dead_letters()
        except Exception as exc:
            store_error(exc)

    live()
    _model_card()
