"""`finmon bench pipeline`: end-to-end throughput and publish-to-stored latency of the embedded stack,
printed next to the classifier-alone rate measured on the same machine in the same run: one classifier with
torch's default threads (`classifier_items_per_s`, as `finmon bench classifier` runs it), and, where the stack
runs single-threaded classify workers, one of them alone times their number (`e2e_vs_workers_alone`).

It starts the same processes `finmon up` does (broker and every stage), replays N items at full speed and
reads the store's `stored_at` against each item's publish time. `--backlog` publishes all N items first and
only then starts the workers (a catch-up after an outage): it reports how fast the whole stack drains it,
scored, stored and in the windows, and how many items came out late (the target is none), and the CPU time
each process (broker, every stage) spent per item during the drain: where the machine's cores went.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from sqlalchemy import func, select

from monitor.config import Settings
from monitor.sources.files import FileSource
from monitor.store import Store, as_utc
from monitor.store.schema import aggregate_items, scored_items
from pipelines.replay import publish, resolve_feed
from pipelines.stack import Stack, UpOptions, classify_workers

PER_WORKER_TEXTS = 3000  # texts the one-worker reference scores


def bench_records(feed: str, n: int, spacing_s: float = 5.0) -> list[dict[str, Any]]:
    """n items cycled from the feed, each with a fresh id (so every one is stored) and an event time
    `spacing_s` after the previous one (a time-ordered feed, however often the texts repeat)."""
    base = FileSource(resolve_feed(feed)).records()
    start = datetime(2025, 1, 6, tzinfo=UTC)
    return [{**base[i % len(base)], "id": f"bench-{i}",
             "published_at": (start + timedelta(seconds=spacing_s * i)).isoformat()} for i in range(n)]


def classifier_rate(settings: Settings, texts: list[str], threads: int | None = None) -> float:
    """Texts/s of the classifier alone in this process (`threads`: torch threads for it; None: the default)."""
    import torch

    from monitor.classify.engine import load_classifier

    cfg, before = settings.classify, torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        classifier = load_classifier(cfg.model, device=cfg.device, quantize=cfg.quantize,
                                     max_batch_tokens=cfg.max_batch_tokens)
        classifier.predict(texts[:64])  # warm-up
        start = time.perf_counter()
        for i in range(0, len(texts), cfg.max_batch):
            classifier.predict(texts[i : i + cfg.max_batch])
        return len(texts) / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)


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


def run_backlog(settings: Settings, records: list[dict[str, Any]], timeout: float) -> dict[str, float]:
    """Publish everything, then start the workers; time from the first item stored to the last one in the
    windows."""
    stack = Stack(settings, UpOptions(None, None, False, 0, None, None))
    try:
        stack.start_broker()
        publish(stack.settings, records, progress=False)
        stack.start_workers()
        pids = {**{name: proc.pid for name, proc in stack.children.items()}, "broker": stack.broker.pid}
        store, first, cpu_at_first, machine_at_first = Store(settings.store_url), None, {}, (0.0, 0.0)
        deadline = time.monotonic() + timeout
        while True:
            stored, applied = store.count_scored(), count_applied(store)
            if first is None and stored:
                first, cpu_at_first, machine_at_first = time.perf_counter(), cpu_seconds(pids), machine_cpu()
            if stored >= len(records) and applied >= len(records):
                break
            if time.monotonic() > deadline:
                raise click.ClickException(f"{stored} stored, {applied} in the windows after {timeout:.0f}s")
            time.sleep(0.2)
        elapsed = time.perf_counter() - (first or time.perf_counter())
        cpu_at_end, machine_at_end = cpu_seconds(pids), machine_cpu()
        late = store.count_dead_letters_by_stage().get("aggregate", 0)
        # CPU per item of each process over the drain (from the first item stored): where the cores went
        cpu = {f"cpu_ms_per_item_{name}": 1000 * (cpu_at_end[name] - cpu_at_first.get(name, 0.0)) / len(records)
               for name in pids}
        # cores busy on the whole machine during the drain, and how many of them the stack's processes used:
        # a gap between the two is someone else's work, busy < cores is time the stack left idle
        busy = (machine_at_end[0] - machine_at_first[0]) / max(elapsed, 1e-9)
        stack_cores = sum(cpu_at_end[n] - cpu_at_first.get(n, 0.0) for n in pids) / max(elapsed, 1e-9)
        return {"backlog_items_per_s": len(records) / elapsed if elapsed else float("nan"), "late": late, **cpu,
                "machine_busy_cores": busy, "stack_cores": stack_cores, "machine_cores": os.cpu_count() or 0}
    finally:
        stack.stop()
        stack.shutdown_broker()


def machine_cpu() -> tuple[float, float]:
    """(busy, idle) CPU seconds of the whole machine so far, all cores together (Linux /proc/stat)."""
    tick = os.sysconf("SC_CLK_TCK")
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / tick, idle / tick


def cpu_seconds(pids: dict[str, int | None]) -> dict[str, float]:
    """User + system CPU seconds each process has used so far (Linux /proc; 0 where unknown)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for name, pid in pids.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[name] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime (fields 14, 15 of stat)
        except (OSError, IndexError, ValueError):
            out[name] = 0.0
    return out


def count_applied(store: Store) -> int:
    """Distinct items the aggregate stage has taken into the windows (or found late)."""
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(aggregate_items)).scalar_one())


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
@click.option("--backlog", is_flag=True, help="Publish every item first, then start the stack: the drain rate.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def command(settings: Settings, feed: str, n_items: int, timeout: float, backlog: bool, as_json: bool) -> None:
    """End-to-end items/s and latency vs the classifier alone, on this machine, in one run."""
    records = bench_records(feed, n_items)
    with tempfile.TemporaryDirectory() as tmp:
        local = settings.model_copy(update={"store_url": f"sqlite:///{Path(tmp) / 'bench.db'}",
                                            "data_dir": Path(tmp)})
        texts = [str(r.get("title", "")) for r in records]
        alone = classifier_rate(local, texts)
        # one single-threaded classifier, times the classify workers the stack runs: what that many processes
        # with a core each would score if nothing else ran (a tighter reference than `alone` on CPU)
        workers, threads = classify_workers(local)
        per_worker = classifier_rate(local, texts[:PER_WORKER_TEXTS], threads) if threads else None
        run = run_backlog if backlog else run_pipeline
        result = {"items": n_items, "classifier_items_per_s": alone, "classify_workers": workers,
                  "classify_threads": threads, **run(local, records, timeout)}
    rate = result.get("backlog_items_per_s", result.get("e2e_items_per_s"))
    result["e2e_vs_classifier"] = rate / alone
    if per_worker is not None:
        result["classifier_one_worker_items_per_s"] = per_worker
        result["e2e_vs_workers_alone"] = rate / (per_worker * workers)
    if as_json:
        click.echo(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}))
        return
    for key, value in result.items():
        click.echo(f"{key:>24}: {value:.3f}" if isinstance(value, float) else f"{key:>24}: {value}")
