"""`finmon bench pipeline`: end-to-end throughput and publish-to-stored latency of the embedded stack,
printed next to the classifier-alone rate measured on the same machine in the same run.

It starts the same processes `finmon up` does (broker, classify and sink workers), replays N items at full
speed and reads the store's `stored_at` against each item's publish time.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from monitor.config import Settings
from monitor.sources.files import FileSource
from monitor.store import Store, as_utc
from monitor.store.schema import scored_items
from pipelines.replay import publish, resolve_feed
from pipelines.stack import Stack, UpOptions


def bench_records(feed: str, n: int) -> list[dict[str, Any]]:
    """n items cycled from the feed, each with a fresh id (so every one is stored)."""
    base = FileSource(resolve_feed(feed)).records()
    return [{**base[i % len(base)], "id": f"bench-{i}"} for i in range(n)]


def classifier_rate(settings: Settings, texts: list[str]) -> float:
    from monitor.classify.engine import load_classifier

    cfg = settings.classify
    classifier = load_classifier(cfg.model, device=cfg.device, quantize=cfg.quantize,
                                 max_batch_tokens=cfg.max_batch_tokens)
    classifier.predict(texts[:64])  # warm-up
    start = time.perf_counter()
    for i in range(0, len(texts), cfg.max_batch):
        classifier.predict(texts[i : i + cfg.max_batch])
    return len(texts) / (time.perf_counter() - start)


def wait_stored(store: Store, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while store.count_scored() < n:
        if time.monotonic() > deadline:
            raise click.ClickException(f"only {store.count_scored()} of {n} items stored after {timeout:.0f}s")
        time.sleep(0.2)


def run_pipeline(settings: Settings, records: list[dict[str, Any]], timeout: float) -> dict[str, float]:
    stack = Stack(settings, UpOptions(None, None, False, 0, None, None))
    try:
        stack.start()
        store = Store(settings.store_url)
        publish(stack.settings, [{**records[0], "id": "bench-warmup"}], progress=False)
        wait_stored(store, 1, timeout)  # workers have loaded the model and joined their groups
        sent_at = datetime.now(UTC)
        start = time.perf_counter()
        publish(stack.settings, records, progress=False)
        wait_stored(store, len(records) + 1, timeout)
        elapsed = time.perf_counter() - start
        return {"e2e_items_per_s": len(records) / elapsed, **latencies(store, sent_at)}
    finally:
        stack.stop()
        stack.shutdown_broker()


def latencies(store: Store, sent_at: datetime) -> dict[str, float]:
    """Publish-to-stored latency per item; all items were sent within a second or so of `sent_at`, so this
    is an upper bound that includes queueing behind the burst (what a replay at full speed sees)."""
    query = select(scored_items.c.stored_at).where(scored_items.c.id != "bench-warmup")
    with store.engine.connect() as conn:
        stored = [as_utc(row[0]) for row in conn.execute(query)]
    lat = sorted((s - sent_at).total_seconds() for s in stored if s is not None)
    return {"latency_p50_s": statistics.median(lat), "latency_p99_s": lat[int(0.99 * (len(lat) - 1))]}


@click.command("pipeline")
@click.option("--feed", default="demo", show_default=True, help="Feed whose texts are cycled.")
@click.option("--items", "n_items", type=int, default=3000, show_default=True)
@click.option("--timeout", type=float, default=600, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def command(settings: Settings, feed: str, n_items: int, timeout: float, as_json: bool) -> None:
    """End-to-end items/s and latency vs the classifier alone, on this machine, in one run."""
    records = bench_records(feed, n_items)
    with tempfile.TemporaryDirectory() as tmp:
        local = settings.model_copy(update={"store_url": f"sqlite:///{Path(tmp) / 'bench.db'}",
                                            "data_dir": Path(tmp)})
        alone = classifier_rate(local, [str(r.get("title", "")) for r in records])
        result = {"items": n_items, "classifier_items_per_s": alone, **run_pipeline(local, records, timeout)}
    result["e2e_vs_classifier"] = result["e2e_items_per_s"] / alone
    if as_json:
        click.echo(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}))
        return
    for key, value in result.items():
        click.echo(f"{key:>24}: {value:.3f}" if isinstance(value, float) else f"{key:>24}: {value}")
