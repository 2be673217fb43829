"""SIGKILL of the alerting worker mid-stream: after a restart the alert state is what an uninterrupted worker
reaches (same alerts, same states, one row per (rule, key) episode) and no transition is stored or published
twice. The alert stage keeps its state in the store, so a crash can only repeat an evaluation."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.kafka.broker import EmbeddedBroker
from monitor.store import Store
from monitor.store import alerts as astore
from tests.alert_feed import BURST_START, HOT, burst_feed
from tests.conftest import make_settings
from tests.pipeline_helpers import finish, start_worker, topic_messages, wait_for
from tests.test_aggregate_pipeline import env_with, other_run, publish_scored

pytestmark = pytest.mark.slow


def _alert_state(url: str) -> list[tuple[str, str, str]]:
    with Store(url).engine.connect() as conn:
        return sorted((a["rule"], a["key"], a["state"]) for a in astore.list_alerts(conn))


def test_alerting_worker_killed_and_restarted_matches_an_uninterrupted_one(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    crashed = make_settings(broker.bootstrap, f"sqlite:///{tmp_path / 'crashed.db'}", partitions=2)
    steady = other_run(crashed, f"sqlite:///{tmp_path / 'steady.db'}")
    cut = BURST_START + timedelta(minutes=7)  # the stream ends inside the burst: alerts stay active
    publish_scored(crashed, [s for s in burst_feed() if s.item.published_at < cut])
    for run in (crashed, steady):
        finish(start_worker(run, "aggregate", "--stop-after-idle", "3"))
    env = {"FINMON_ALERTS__TIME_MODE": "stream", "FINMON_ALERTS__EVALUATE_EVERY_S": "0.5"}

    first = start_worker(crashed, "alerting", env=env_with(crashed, **env))
    store = Store(crashed.store_url)
    wait_for(lambda: bool(_alert_state(crashed.store_url)), timeout=120, every=0.2)
    first.kill()  # SIGKILL in the middle of its work
    first.wait()
    finish(start_worker(crashed, "alerting", "--stop-after-idle", "4", env=env_with(crashed, **env)))
    finish(start_worker(steady, "alerting", "--stop-after-idle", "4", env=env_with(steady, **env)))

    assert _alert_state(crashed.store_url) == _alert_state(steady.store_url)
    assert {key for _, key, _ in _alert_state(crashed.store_url)} == {f"ticker:{HOT}"} | {
        key for _, key, _ in _alert_state(crashed.store_url) if not key.startswith("ticker:")
    }
    with store.engine.connect() as conn:
        transitions = Counter((e["alert_id"], e["state"]) for e in astore.events(conn))
    assert transitions and max(transitions.values()) == 1  # no transition stored twice
    published = Counter(
        (e["rule"], e["key"], e["state"]) for e in map(json.loads, topic_messages(crashed, crashed.kafka.topics.alerts))
    )
    # Both runs publish to the same `alerts` topic: each transition appears once per run, never more.
    assert published and set(published.values()) == {2}
