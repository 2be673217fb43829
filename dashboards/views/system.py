"""System: throughput, consumer lag, dead letters by reason, the loaded model's card and metrics, and the
health of the store and the broker."""

from __future__ import annotations

import json

import streamlit as st

from dashboards import data
from dashboards.state import settings, store_error


@st.cache_data(ttl=5, show_spinner=False)
def kafka_status(bootstrap: str) -> dict[str, object]:
    from monitor.status import kafka_counts  # lazy: only when the page is open

    try:
        counts = kafka_counts(settings())
        return {"ok": True, "topics": counts["per_topic"], "lag": counts["lag"]}
    except Exception as exc:
        return {"ok": False, "error": str(exc)}


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
    st.dataframe(per_stage, width="stretch")
    with st.expander("Every worker"):
        st.dataframe(frame, hide_index=True, width="stretch")


def _kafka_section() -> None:
    status = kafka_status(settings().bootstrap)
    if not status["ok"]:
        st.warning(f"Broker at {settings().bootstrap} unreachable: {status['error']}")
        return
    st.success(f"Broker at {settings().bootstrap} answers")
    cols = st.columns(2)
    cols[0].dataframe(
        {"topic": list(status["topics"]), "messages": list(status["topics"].values())},  # type: ignore[union-attr]
        hide_index=True,
    )
    cols[1].dataframe(
        {"consumer group": list(status["lag"]), "lag": list(status["lag"].values())},  # type: ignore[union-attr]
        hide_index=True,
    )


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
            _dead_letters()
        except Exception as exc:
            store_error(exc)
        _kafka_section()

    live()
    _model_card()
