"""Load test of the embedded stack (a benchmark, not a timed test): sustained replay at 50%, 90% and 120% of
the measured capacity, a few minutes each. Prints throughput, publish-to-stored latency p50/p99, the lag and
the workers' memory over time as a table, writes them to JSON and plots them to PNG.

    .venv/bin/python benchmarks/load_test.py --minutes 2 --out benchmarks/results

Capacity is measured first, in the same run: a burst is published and timed until it is stored.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select

from monitor.config import load_settings
from monitor.kafka.client import make_producer
from monitor.sources.files import FileSource, dumps
from monitor.status import kafka_counts
from monitor.store import Store
from monitor.store.schema import scored_items
from pipelines.replay import DEMO_FEED
from pipelines.stack import Stack, UpOptions


@dataclass
class Level:
    name: str
    rate: float
    samples: list[dict[str, float]] = field(default_factory=list)
    first_id: int = 0
    last_id: int = 0


class Load:
    """Publishes uniquely-numbered demo headlines, stamping each with its publish time (fetched_at)."""

    def __init__(self, stack: Stack) -> None:
        self.stack, self.next_id = stack, 0
        self.texts = [r["title"] for r in FileSource(DEMO_FEED).records()]
        self.producer = make_producer(stack.settings, client_id="load-test")

    def send(self) -> None:
        now = datetime.now(UTC).isoformat()
        item = {
            "id": f"load-{self.next_id}",
            "title": self.texts[self.next_id % len(self.texts)],
            "published_at": now,
            "fetched_at": now,
            "source": "load-test",
        }
        self.producer.send(self.stack.settings.kafka.topics.raw, key=item["id"].encode(), value=dumps(item))
        self.next_id += 1


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sample(stack: Stack, store: Store, t0: float) -> dict[str, float]:
    lag = sum(kafka_counts(stack.settings)["lag"].values())
    row = {"t": time.monotonic() - t0, "lag": lag, "stored": store.count_scored()}
    for name in ("classify", "sink"):
        row[f"rss_{name}_mb"] = rss_mb(stack.children[name].pid)
    return row


def measure_capacity(load: Load, store: Store, n: int) -> float:
    start_stored, start = store.count_scored(), time.monotonic()
    for _ in range(n):
        load.send()
    load.producer.flush()
    while store.count_scored() < start_stored + n:
        time.sleep(0.2)
    return n / (time.monotonic() - start)


def run_level(level: Level, load: Load, stack: Stack, store: Store, seconds: float, t0: float) -> None:
    level.first_id, start, next_sample = load.next_id, time.monotonic(), 0.0
    while (elapsed := time.monotonic() - start) < seconds:
        due = int(elapsed * level.rate)
        while load.next_id - level.first_id < due:
            load.send()
        if elapsed >= next_sample:
            level.samples.append({**sample(stack, store, t0), "level": level.name})
            next_sample += 2.0
        time.sleep(0.005)
    load.producer.flush()
    level.last_id = load.next_id


def latencies(store: Store, level: Level) -> pd.Series:
    c = scored_items.c
    ids = [f"load-{i}" for i in range(level.first_id, level.last_id)]
    with store.engine.connect() as conn:
        rows = conn.execute(select(c.fetched_at, c.stored_at).where(c.id.in_(ids))).all()
    frame = pd.DataFrame(rows, columns=["fetched_at", "stored_at"])
    return (
        pd.to_datetime(frame["stored_at"], utc=True) - pd.to_datetime(frame["fetched_at"], utc=True)
    ).dt.total_seconds()


def drain(stack: Stack, store: Store, target: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while store.count_scored() < target and time.monotonic() < deadline:
        time.sleep(0.5)


def summarize(level: Level, store: Store, seconds: float) -> dict[str, Any]:
    lat = latencies(store, level)
    frame = pd.DataFrame(level.samples)
    stored = frame["stored"].iloc[-1] - frame["stored"].iloc[0] if len(frame) > 1 else 0
    span = frame["t"].iloc[-1] - frame["t"].iloc[0] if len(frame) > 1 else seconds
    return {
        "level": level.name,
        "offered_per_s": round(level.rate, 1),
        "throughput_per_s": round(stored / span, 1) if span else 0.0,
        "latency_p50_s": round(float(lat.quantile(0.5)), 3),
        "latency_p99_s": round(float(lat.quantile(0.99)), 3),
        "max_lag": int(frame["lag"].max()),
        "lag_end": int(frame["lag"].iloc[-1]),
        "rss_classify_mb_start_end": [
            round(frame["rss_classify_mb"].iloc[0]),
            round(frame["rss_classify_mb"].iloc[-1]),
        ],
        "rss_sink_mb_start_end": [round(frame["rss_sink_mb"].iloc[0]), round(frame["rss_sink_mb"].iloc[-1])],
    }


def plot(samples: pd.DataFrame, out: Path) -> None:
    import matplotlib  # lazy: plotting only at the end

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    for name, group in samples.groupby("level", sort=False):
        axes[0].plot(group["t"], group["lag"], label=name)
        axes[1].plot(group["t"], group["stored"].diff() / group["t"].diff(), label=name)
        axes[2].plot(group["t"], group["rss_classify_mb"], label=f"classify {name}")
        axes[2].plot(group["t"], group["rss_sink_mb"], linestyle="--", label=f"sink {name}")
    for ax, title in zip(axes, ("consumer lag (records)", "stored items/s", "worker RSS (MB)"), strict=True):
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[-1].set_xlabel("seconds since start")
    fig.suptitle("finmon load test (embedded stack)")
    fig.tight_layout()
    fig.savefig(out / "load_test.png", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=2.0, help="Duration of each load level.")
    parser.add_argument("--levels", default="0.5,0.9,1.2", help="Fractions of the measured capacity.")
    parser.add_argument("--burst", type=int, default=1500, help="Items used to measure capacity.")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    settings = load_settings(None, store_url=f"sqlite:///{args.out / 'load_test.db'}", data_dir=args.out)
    (args.out / "load_test.db").unlink(missing_ok=True)
    stack = Stack(settings, UpOptions(None, None, False, 0, None, None))
    try:
        stack.start()
        store, load = Store(stack.settings.store_url), Load(stack)
        measure_capacity(load, store, 50)  # warm-up: model loaded, groups joined
        capacity = measure_capacity(load, store, args.burst)
        print(f"capacity: {capacity:.1f} items/s")
        t0, results, samples = time.monotonic(), [], []
        for fraction in (float(x) for x in args.levels.split(",")):
            level = Level(f"{fraction:.0%}", fraction * capacity)
            run_level(level, load, stack, store, args.minutes * 60, t0)
            drain(stack, store, load.next_id, timeout=180)
            results.append(summarize(level, store, args.minutes * 60))
            samples += level.samples
            print(json.dumps(results[-1]))
    finally:
        stack.stop()
        stack.shutdown_broker()
    frame = pd.DataFrame(results)
    print(frame.to_string(index=False))
    (args.out / "load_test.json").write_text(json.dumps({"capacity_per_s": capacity, "levels": results}, indent=2))
    plot(pd.DataFrame(samples), args.out)
    print(f"wrote {args.out / 'load_test.json'} and {args.out / 'load_test.png'}")


if __name__ == "__main__":
    main()
