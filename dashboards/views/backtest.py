"""Backtest view: open a backtest output directory (`finmon backtest --out DIR`) and show its report."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st
import streamlit.components.v1 as components


def _row(metrics: dict[str, object], keys: tuple[str, ...]) -> None:
    for col, key in zip(st.columns(len(keys)), keys, strict=True):
        value = metrics.get(key)
        col.metric(key, f"{value:.4f}" if isinstance(value, float) else str(value))


def _metrics(out: Path) -> None:
    metrics = json.loads((out / "metrics.json").read_text())
    _row(metrics, ("n_items", "ic_mean_1d", "hit_rate_1d", "long_short_1d"))
    if "story_ic_mean_1d" in metrics:  # the signal the windows count, next to the raw one
        st.caption("Story-aware signal: novelty-weighted sentiment of the tickers linked at or above the relevance "
                   "threshold, distinct stories for volume")
        _row(metrics, ("story_volume_ic_mean_1d", "story_ic_mean_1d", "story_hit_rate_1d", "story_long_short_1d"))
    with st.expander("All metrics"):
        st.json(metrics)


def render() -> None:
    st.title("Backtest")
    default = st.query_params.get("dir", "backtest-out")
    path = st.text_input("Backtest output directory", value=default, key="backtest_dir")
    out = Path(path).expanduser()
    if not (out / "metrics.json").exists():
        st.info(
            f"No backtest report in `{out}`: run `finmon backtest --feed FEED --prices PRICES --out {out}` "
            "and open its output directory here."
        )
        return
    st.query_params["dir"] = path
    try:
        _metrics(out)
        if (out / "alerts.csv").exists():
            st.subheader("Alerts raised in the backtest")
            st.dataframe(pd.read_csv(out / "alerts.csv"), hide_index=True, width="stretch")
        if (out / "report.html").exists():
            st.subheader("Report")
            components.html((out / "report.html").read_text(encoding="utf-8"), height=1600, scrolling=True)
    except (OSError, ValueError) as exc:
        st.error(f"Cannot read the backtest in {out}: {exc}. Re-run `finmon backtest` to regenerate it.")
