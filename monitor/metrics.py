"""Prometheus metrics every worker exposes (on 127.0.0.1 by default, when a metrics port is given).

Names follow Prometheus conventions; every series carries the `stage` label, so one dashboard covers the
classify, sink, aggregate and alert workers alike.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

RECORDS_IN = Counter("finmon_records_in_total", "Records consumed and committed", ["stage"])
MESSAGES_OUT = Counter("finmon_messages_out_total", "Messages produced (acknowledged)", ["stage", "topic"])
DEAD_LETTERS = Counter("finmon_dead_letters_total", "Records sent to the dead-letter topic", ["stage", "reason"])
BATCH_SIZE = Histogram("finmon_batch_size", "Records per micro-batch", ["stage"],
                       buckets=(1, 4, 16, 64, 128, 256, 512, 1024, 2048, 4096))
BATCH_SECONDS = Histogram("finmon_batch_seconds", "Process + produce + commit time of one micro-batch", ["stage"],
                          buckets=(0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
MODEL_SECONDS = Histogram("finmon_model_forward_seconds", "Classifier time per micro-batch", ["stage"],
                          buckets=(0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
LAG = Gauge("finmon_consumer_lag", "High-water mark minus position, per assigned partition",
            ["stage", "topic", "partition"])
TRANSIENT = Counter("finmon_transient_failures_total", "Retried failures (store or broker unavailable)",
                    ["stage", "kind"])
NOTIFICATIONS = Counter("finmon_notifications_total", "Notification attempts by channel and outcome",
                        ["channel", "outcome"])
COMMIT_FAILURES = Counter("finmon_commit_failures_total", "Offset commits that failed (rebalance or broker)",
                          ["stage"])


def serve(port: int | None, host: str = "127.0.0.1") -> None:
    """Expose /metrics on host:port; None or 0 keeps metrics in-process only."""
    if not port:
        return
    start_http_server(port, addr=host)
    log.info("metrics on http://%s:%d/metrics", host, port)
