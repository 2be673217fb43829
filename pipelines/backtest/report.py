"""Backtest outputs: signals.parquet, alerts.csv, events.csv, metrics.json and a self-contained report.html.

The report embeds its plots as base64 PNGs and its tables as HTML, so it opens offline and inside the
dashboard's backtest page. Nothing in it depends on the wall clock except the timing metrics.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import pandas as pd

from pipelines.backtest.events import OFFSETS

_STYLE = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
          "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
          "text-align:right}th{background:#f3f3f3}img{max-width:100%}.note{color:#555}")


def clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become null, numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_metrics(out: Path, metrics: dict[str, Any]) -> None:
    (out / "metrics.json").write_text(json.dumps(clean(metrics), indent=2, sort_keys=True) + "\n")


def write_tables(out: Path, signals: pd.DataFrame, alerts: pd.DataFrame, events: pd.DataFrame) -> None:
    signals.to_parquet(out / "signals.parquet", index=False)
    alerts.to_csv(out / "alerts.csv", index=False)
    events.to_csv(out / "events.csv", index=False)


def _png(fig: plt.Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def ic_plot(ic: pd.Series, title: str) -> str:
    fig, ax = plt.subplots(figsize=(10, 3))
    if not ic.empty:
        ax.bar(ic.index, ic.to_numpy(), width=1.0, color="#9ab", label="daily rank IC")
        ax.plot(ic.index, ic.rolling(21, min_periods=5).mean().to_numpy(), color="#c33", label="21-day mean")
        ax.legend(loc="upper right")
    ax.axhline(0, color="black", lw=0.6)
    ax.set_title(title)
    return _png(fig)


def quintile_plot(means: pd.Series, title: str) -> str:
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(range(len(means)), (means * 1e4).to_numpy(), color="#58a", tick_label=[str(q) for q in means.index])
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xlabel("sentiment quintile (1 = most negative)")
    ax.set_ylabel("mean return (bp)")
    ax.set_title(title)
    return _png(fig)


def car_plot(curves: pd.DataFrame, group: str) -> str:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for value, sub in curves[curves["group"] == group].groupby("value", sort=True):
        n = int(sub["n"].iloc[0])
        ax.plot(sub["offset"], sub["car_mean"] * 100, marker=".", label=f"{value} (n={n})")
        ax.fill_between(sub["offset"], sub["car_lo"] * 100, sub["car_hi"] * 100, alpha=0.15)
    ax.axhline(0, color="black", lw=0.6)
    ax.axvline(0, color="grey", lw=0.6, ls="--")
    ax.set_xticks(OFFSETS)
    ax.set_xlabel("trading days from the alert")
    ax.set_ylabel("CAR vs equal-weight (%)")
    ax.set_title(f"Event study by {group} (95% bands)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return _png(fig)


def _table(frame: pd.DataFrame, max_rows: int = 30) -> str:
    return frame.head(max_rows).to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0)


def _metrics_table(metrics: dict[str, Any]) -> str:
    rows = [(k, v) for k, v in sorted(clean(metrics).items()) if not isinstance(v, dict | list)]
    return _table(pd.DataFrame(rows, columns=["metric", "value"]).astype(str), max_rows=200)


def _side_by_side(metrics: dict[str, Any]) -> pd.DataFrame:
    """Raw and story-aware signal metrics in two columns."""
    names = [f"{m}_{h}d" for h in (1, 5) for m in ("ic_mean", "ic_tstat", "hit_rate", "long_short", "volume_ic_mean")]
    return pd.DataFrame({"metric": names, "raw": [clean(metrics.get(n)) for n in names],
                         "story-aware": [clean(metrics.get(f"story_{n}")) for n in names]})


def write_html(out: Path, metrics: dict[str, Any], parts: dict[str, Any]) -> None:
    """Assemble report.html from the metrics and the evaluation parts (see run.py for the keys)."""
    body = [f"<h1>finmon backtest</h1><p class='note'>{html.escape(parts['title'])}</p>",
            "<h2>Summary</h2>", _metrics_table(metrics),
            "<h2>Information coefficient</h2>", ic_plot(parts["ic_1d"], "Daily rank IC, sentiment vs next-day return"),
            ic_plot(parts["ic_5d"], "Daily rank IC, sentiment vs next-5-day return"),
            "<h2>Returns by sentiment quintile</h2>",
            quintile_plot(parts["quintiles_1d"], "Next-day return"), quintile_plot(parts["quintiles_5d"],
                                                                                   "Next-5-day return"),
            _table(parts["quintile_table"])]
    if "story_ic_1d" in parts:  # the signal the windows count: novelty-weighted, relevance-gated
        body += ["<h2>Story-aware signal (novelty-weighted sentiment of linked tickers)</h2>",
                 _table(_side_by_side(metrics)),
                 ic_plot(parts["story_ic_1d"], "Daily rank IC, story-aware sentiment vs next-day return"),
                 quintile_plot(parts["story_quintiles_1d"], "Next-day return by story-aware quintile")]
    body.append("<h2>Event study of the alerts</h2>")
    curves: pd.DataFrame = parts["curves"]
    if curves.empty:
        body.append("<p>No alert on a priced ticker with a full -5..+10 day window.</p>")
    else:
        body += [car_plot(curves, g) for g in ("all", "rule", "severity")]
        body.append(_table(curves[curves["offset"].isin([-1, 0, 1, 5, 10])], max_rows=200))
    body += ["<h2>Alerts</h2>", _table(parts["alerts"], max_rows=50),
             "<h2>Edges</h2>", _table(parts["edges"], max_rows=200)]
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>finmon backtest</title><style>{_STYLE}" \
           f"</style></head><body>{''.join(body)}</body></html>"
    (out / "report.html").write_text(page, encoding="utf-8")
