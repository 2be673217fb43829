"""Dashboard query benchmark (prints numbers; not a test): every query a page load runs, timed against a store
holding N scored items (default 1,000,000) and their windows, so a page on a big store stays interactive.

    .venv/bin/python benchmarks/bench_dashboard.py                  # 1,000,000 items, SQLite in a temp dir
    .venv/bin/python benchmarks/bench_dashboard.py --items 200000 --store-url postgresql+psycopg://...

The store is filled in bulk (synthetic items from bench_windows, windows computed by the same engine the
aggregate stage uses); the timings are the median of 3 runs of each query, uncached (Streamlit's cache would
hide them).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_windows import from_scratch, load_store, synthetic

from dashboards import queries as q
from monitor.store import Store
from monitor.store.schema import scored_items
from monitor.timestamps import from_us


def fill_items(store: Store, items: pd.DataFrame) -> None:
    """scored_items rows for the synthetic items (the news explorer and time bounds read these)."""
    probs = {"negative": (0.8, 0.15, 0.05), "neutral": (0.1, 0.7, 0.2), "positive": (0.05, 0.2, 0.75)}
    chunk = 50_000
    with store.engine.begin() as conn:
        for i in range(0, len(items), chunk):
            rows = []
            for r in items.iloc[i : i + chunk].itertuples(index=False):
                when = from_us(r.t_us).to_pydatetime()
                neg, neu, pos = probs[r.label]
                rows.append(
                    {
                        "id": r.item_id,
                        "published_at": when,
                        "title": f"{r.ticker} {r.topic} headline {r.item_id}",
                        "body": "",
                        "source": "bench",
                        "url": "",
                        "tickers": [r.ticker],
                        "lang": "en",
                        "fetched_at": when,
                        "topic": r.topic,
                        "topic_probs": {r.topic: 1.0},
                        "sentiment": r.label,
                        "p_negative": neg,
                        "p_neutral": neu,
                        "p_positive": pos,
                        "sentiment_score": pos - neg,
                        "model_version": "bench",
                        "scored_at": when,
                        "src_partition": 0,
                        "src_offset": 0,
                        "stored_at": when,
                    }
                )
            conn.execute(insert(scored_items), rows)


def timed(fn: Callable[[], Any], repeat: int = 3) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def page_queries(store: Store) -> dict[str, Callable[[], Any]]:
    engine = store.engine
    _, latest = q.time_bounds(engine)
    if latest is None:
        raise SystemExit("the store is empty")
    day, week = latest - timedelta(days=1), latest - timedelta(days=7)
    return {
        "time_bounds": lambda: q.time_bounds(engine),
        "overview: market 1h windows, 7 days": lambda: q.windows(engine, "1h", week, latest, key="market"),
        "overview: topic 1h windows, 7 days": lambda: q.windows(engine, "1h", week, latest, prefix="topic:"),
        "overview: ticker 1h windows, 24 h + movers": lambda: q.movers(
            q.windows(engine, "1h", day, latest, prefix="ticker:"), day, latest
        ),
        "overview: alert counts": lambda: q.alert_counts(engine),
        "news: latest 500, 24 h": lambda: q.news(engine, q.NewsFilter(start=day, end=latest)),
        "news: ticker filter, 7 days": lambda: q.news(engine, q.NewsFilter(start=week, end=latest, tickers=("T001",))),
        "news: free text, 24 h": lambda: q.news(engine, q.NewsFilter(start=day, end=latest, text="earnings")),
        "ticker: symbol list": lambda: q.tickers(engine),
        "ticker: one ticker 1h windows, 7 days": lambda: q.windows(engine, "1h", week, latest, key="ticker:T001"),
        "system: store counts": lambda: q.store_counts(engine),
        "system: stored rate": lambda: q.stored_rate(engine),
        "system: dead letters": lambda: q.dead_letter_summary(engine),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--store-url", default=None, help="Empty database to fill (default: SQLite in a temp dir).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(args.store_url or f"sqlite:///{Path(tmp) / 'dash.db'}")
        store.create_schema()
        started = time.perf_counter()
        items = synthetic(args.items, tickers=500, days=90)
        result, _ = from_scratch(items, ("5min", "1h", "1D"))
        load_store(store, items, result)
        fill_items(store, items)
        print(f"filled {args.items:,} items and {len(result):,} windows in {time.perf_counter() - started:.0f}s")
        rows = [(name, timed(fn)) for name, fn in page_queries(store).items()]
    width = max(len(name) for name, _ in rows)
    for name, seconds in rows:
        print(f"{name:<{width}}  {seconds * 1000:8.1f} ms")
    print(f"{'slowest':<{width}}  {max(s for _, s in rows) * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
