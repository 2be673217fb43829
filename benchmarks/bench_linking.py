"""`finmon bench linking`: what entity linking costs (monitor/entities), one run.

- index build: a cold build in a fresh process (imports pytickersymbols' 2 MB table, reads the word list, indexes
  every name), a rebuild with those already loaded, and a cached `Linker.from_settings` (what a stage pays
  after the first);
- linking: microseconds per item over the bundled demo feed (title, body and feed tickers), and over up to
  `--rows` rows of the shared StockNet tweets (`../shared/data/backtest/tweets`, read in place, never copied),
  with how many items got at least one ticker at or above the threshold.

    .venv/bin/finmon bench linking            # or: .venv/bin/python benchmarks/bench_linking.py --json
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from monitor.config import load_settings
from monitor.entities import Linker, clear_cache
from monitor.sources.files import read_table

REPO = Path(__file__).resolve().parent.parent
DEMO_FEED = REPO / "monitor/data/demo_feed.jsonl"
BACKTEST_TWEETS = REPO.parent / "shared/data/backtest/tweets"

Item = tuple[str, str, tuple[str, ...]]


def _tickers(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return tuple(str(value).replace(",", " ").split()) if isinstance(value, str) else ()


def demo_items() -> list[Item]:
    frame = read_table(DEMO_FEED)
    bodies = frame["body"] if "body" in frame else [""] * len(frame)
    return [(str(t), b if isinstance(b, str) else "", _tickers(k))
            for t, b, k in zip(frame["title"], bodies, frame["tickers"], strict=True)]


def backtest_items(rows: int, directory: Path = BACKTEST_TWEETS) -> list[Item]:
    """The first `rows` tweets of the monthly files, text and the ticker each was collected for."""
    items: list[Item] = []
    for path in sorted(directory.glob("tweets_*.csv")):
        frame = read_table(path)
        items += [(str(t), "", (str(k),)) for t, k in zip(frame["text"], frame["ticker"], strict=True)]
        if len(items) >= rows:
            break
    return items[:rows]


def build_times() -> dict[str, float]:
    settings = load_settings(None)
    clear_cache()
    start = time.perf_counter()
    Linker.from_settings(settings)
    cold = time.perf_counter() - start
    clear_cache()
    start = time.perf_counter()
    linker = Linker.from_settings(settings)
    rebuild = time.perf_counter() - start
    start = time.perf_counter()
    Linker.from_settings(settings)
    cached = time.perf_counter() - start
    return {"index_cold_s": round(cold, 3), "index_rebuild_s": round(rebuild, 3),
            "index_cached_us": round(cached * 1e6, 1), "names": len(linker.index), "companies": linker.index.companies}


def per_item(linker: Linker, items: Sequence[Item], min_items: int = 5000) -> dict[str, float]:
    """µs per item (the items repeated until at least `min_items` were linked), and the share linked."""
    rounds = max(1, -(-min_items // max(len(items), 1)))
    start = time.perf_counter()
    for _ in range(rounds):
        results = [linker.link(title, body, tickers) for title, body, tickers in items]
    seconds = time.perf_counter() - start
    linked = sum(any(x.relevance >= linker.min_relevance for x in links) for links in results)
    return {"items": len(items), "us_per_item": round(seconds / (rounds * len(items)) * 1e6, 1),
            "share_linked": round(linked / max(len(items), 1), 3)}


def bench(rows: int, tweets_dir: Path = BACKTEST_TWEETS) -> dict[str, Any]:
    result: dict[str, Any] = build_times()
    linker = Linker.from_settings(load_settings(None))
    result["demo_feed"] = per_item(linker, demo_items())
    if tweets_dir.is_dir():
        result["stocknet"] = per_item(linker, backtest_items(rows, tweets_dir))
        text_only = [(title, body, ()) for title, body, _ in backtest_items(rows, tweets_dir)]
        result["stocknet_text_only"] = per_item(linker, text_only)
    return result


def render_text(r: dict[str, Any]) -> str:
    lines = [f"index: cold {r['index_cold_s']:.3f} s, rebuild {r['index_rebuild_s']:.3f} s, cached "
             f"{r['index_cached_us']:.0f} µs ({r['names']} names, {r['companies']} companies)"]
    for key in ("demo_feed", "stocknet", "stocknet_text_only"):
        if key in r:
            x = r[key]
            lines.append(f"{key:<19} {x['us_per_item']:7.1f} µs/item over {x['items']} items, "
                         f"{x['share_linked']:.0%} with a ticker at/above the threshold")
    return "\n".join(lines)


@click.command("linking")
@click.option("--rows", type=int, default=5000, show_default=True, help="StockNet tweets to link (if present).")
@click.option("--tweets-dir", type=click.Path(path_type=Path), default=BACKTEST_TWEETS, show_default=True,
              help="Directory of tweets_YYYY-MM.csv files.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def command(rows: int, tweets_dir: Path, as_json: bool) -> None:
    """Entity linking: index build time and µs per item on the demo feed and StockNet tweets."""
    result = bench(rows, tweets_dir)
    click.echo(json.dumps(result) if as_json else render_text(result))


if __name__ == "__main__":
    command()
