"""Structured logs carry where a bad record sits; the metrics registry counts what the stage loop did."""

from __future__ import annotations

import io
import json
import logging
from types import SimpleNamespace

from prometheus_client import generate_latest

from monitor.clock import SystemClock
from monitor.config import load_settings
from monitor.kafka.stage import dead_letter_message
from monitor.logs import JsonFormatter


def test_dead_letter_log_line_is_structured() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("monitor.kafka.stage")
    logger.addHandler(handler)
    try:
        record = SimpleNamespace(topic="news.raw", partition=3, offset=42, value=b"{oops", key=b"k")
        message = dead_letter_message(load_settings(), record, "classify", "malformed_json", "bad json", SystemClock())
    finally:
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["level"] == "WARNING"
    assert (line["topic"], line["partition"], line["offset"], line["reason"]) == ("news.raw", 3, 42, "malformed_json")
    assert message.reason == "malformed_json" and message.key == b"k"


def test_metrics_are_exposed_in_prometheus_format() -> None:
    from monitor import metrics

    metrics.DEAD_LETTERS.labels("classify", "not_utf8").inc()
    metrics.BATCH_SIZE.labels("classify").observe(64)
    text = generate_latest().decode()
    assert 'finmon_dead_letters_total{reason="not_utf8",stage="classify"}' in text
    assert 'finmon_batch_size_bucket{le="64.0",stage="classify"}' in text


def test_heartbeats_carry_the_lag_of_owned_partitions() -> None:
    """The dashboard reads consumer lag from heartbeats: after a batch, each owned partition's lag is in them."""
    from kafka import TopicPartition

    from monitor.kafka.stage import StageRunner

    owned = [TopicPartition("news.scored", 0), TopicPartition("news.scored", 1)]
    marks, positions = {owned[0]: 10, owned[1]: 7}, {owned[0]: 4, owned[1]: 7}
    consumer = SimpleNamespace(assignment=lambda: set(owned), highwater=marks.get, position=positions.get)
    beats: list[dict[str, object]] = []
    runner = StageRunner(
        load_settings(), SimpleNamespace(stage="sink"), ["news.scored"], "g", SystemClock(), heartbeat=beats.append
    )
    runner._watch_assignment(consumer)  # before any batch: nothing measured yet
    runner._update_lag(consumer)  # what the loop does after each committed batch
    runner._beat(5.0, 2.0)
    runner._beat(0.0, 0.0, stopped=True)
    assert [b["lag"] for b in beats] == [{}, {"news.scored[0]": 6, "news.scored[1]": 0}, {}]
