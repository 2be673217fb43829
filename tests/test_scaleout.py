"""Scale-out on the embedded broker: 3 classify workers and 2 aggregators over 8 partitions, workers added
and removed mid-stream. Every item is scored and stored exactly once, and the windows equal those of a
single aggregator fed the same scored items."""

from __future__ import annotations

import signal

import pandas as pd
import pytest

from monitor.kafka.broker import EmbeddedBroker
from monitor.records import SourceMark, decode_scored_record
from monitor.status import collect_status
from monitor.store import Store
from monitor.store.windows import all_windows
from monitor.windows.aggregator import Delivery, WindowAggregator
from tests.conftest import make_settings, settings_env
from tests.pipeline_helpers import drained, finish, make_feed, publish_feed, start_worker, topic_messages, wait_for

pytestmark = pytest.mark.slow
METRICS = [
    "count",
    "n_negative",
    "n_neutral",
    "n_positive",
    "mean_sentiment",
    "sentiment_index",
    "volume_z",
    "sentiment_z",
]


def _drained(settings, n_good: int) -> bool:
    status = collect_status(settings)
    return status["stored"] == n_good and drained(settings, status, ("classify", "sink", "aggregate"))


def _reference_windows(settings, tmp_path) -> pd.DataFrame:
    """One aggregator, one batch, over the distinct scored items the pipeline produced (first copy of each)."""
    url = f"sqlite:///{tmp_path / 'reference.db'}"
    store = Store(url)
    store.create_schema()
    seen: dict[str, Delivery] = {}
    for offset, value in enumerate(topic_messages(settings, settings.kafka.topics.scored)):
        scored = decode_scored_record(value)
        if isinstance(scored, SourceMark):
            continue
        seen.setdefault(scored.item.id, Delivery(0, offset, scored))
    WindowAggregator(store, settings.windows, "reference").apply(list(seen.values()))
    with store.engine.connect() as conn:
        return all_windows(conn)


def test_three_classifiers_two_aggregators_eight_partitions(broker: EmbeddedBroker, tmp_path) -> None:
    # The default grace: lateness is decided per news.raw partition, so however the workers interleave, a
    # time-ordered feed has no late item and the windows are comparable window by window.
    settings = make_settings(broker.bootstrap, f"sqlite:///{tmp_path / 'scale.db'}", partitions=8)
    env = settings_env(settings)
    first, second = make_feed(1200, bad_every=0), make_feed(1200, bad_every=0, start_index=1200)
    publish_feed(settings, first)
    workers: dict = {}
    try:
        _run_the_scenario(settings, env, workers, second)
    finally:  # a failed run must not leave workers running through the rest of the suite
        for proc in workers.values():
            if proc.poll() is None:
                proc.kill()
    store = Store(settings.store_url)
    assert sorted(store.scored_ids()) == sorted(first.good_ids | second.good_ids)
    assert store.count_dead_letters_by_stage().get("aggregate", 0) == 0  # nothing late
    with store.engine.connect() as conn:
        got = all_windows(conn)
    want = _reference_windows(settings, tmp_path)
    assert len(got) == len(want) > 0
    merged = got.merge(want, on=["key", "size", "start_us"], suffixes=("", "_ref"))
    assert len(merged) == len(want)
    for column in METRICS:
        pd.testing.assert_series_equal(
            merged[column], merged[f"{column}_ref"], check_names=False, atol=1e-6, check_dtype=False
        )


def _run_the_scenario(settings, env, workers: dict, second) -> None:  # type: ignore[no-untyped-def]
    """Workers join and leave mid-stream (`workers` holds every one started, for the caller's clean-up)."""
    for name, stage in [("c1", "classify"), ("c2", "classify"), ("a1", "aggregate"), ("s1", "sink")]:
        workers[name] = start_worker(settings, stage, env=env)
    store = Store(settings.store_url)
    store.create_schema()
    wait_for(lambda: store.count_scored() >= 300, timeout=240)
    workers["c3"] = start_worker(settings, "classify", env=env)  # added mid-stream
    workers["a2"] = start_worker(settings, "aggregate", env=env)
    publish_feed(settings, second)
    wait_for(lambda: store.count_scored() >= 1500, timeout=240)
    workers["c1"].send_signal(signal.SIGTERM)  # removed mid-stream, cleanly
    finish(workers["c1"], timeout=60)
    workers["a1"].kill()  # and one aggregator dies hard
    workers["a1"].wait()
    wait_for(lambda: _drained(settings, 2400), timeout=300, every=1.0)
    for name, proc in workers.items():
        if name not in ("c1", "a1"):
            proc.send_signal(signal.SIGTERM)
            finish(proc, timeout=60)
