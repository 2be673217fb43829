"""Fuzzed input into news.raw (hypothesis): wrong types, huge fields, deep JSON, control characters, invalid
UTF-8, duplicate ids, timestamps far in the past and future. Every worker keeps running and, once the stream
is drained, published = stored + dead-lettered."""

from __future__ import annotations

import json
import signal
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.kafka.broker import EmbeddedBroker
from monitor.status import collect_status
from monitor.store import Store
from tests.conftest import make_settings
from tests.pipeline_helpers import Feed, drained, finish, good_item, publish_feed, start_worker, wait_for

pytestmark = pytest.mark.slow
BASE = datetime(2025, 1, 6, 14, tzinfo=UTC)

TIMES = st.one_of(
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
    st.sampled_from(
        [
            "1900-01-01T00:00:00Z",
            "2300-01-01T00:00:00Z",
            "0001-01-01T00:00:00",
            "9999-12-31T23:59:59Z",
            "2025-02-30T00:00:00Z",
            "",
            "now",
        ]
    ),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=True),
    st.none(),
)
TEXT = st.one_of(
    st.text(max_size=80),
    st.text(st.characters(codec="utf-8", categories=["Cc", "Cs", "So"]), max_size=40),
    st.just("x" * 70_000),
    st.just(""),
    st.integers(),
    st.lists(st.text(max_size=5), max_size=3),
)
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=20,
)


def _object(item_id: object, title: object, published: object, tickers: object, extra: dict) -> bytes:  # type: ignore[type-arg]
    body = {"id": item_id, "title": title, "published_at": published, "tickers": tickers, **extra}
    return json.dumps(body, default=str, allow_nan=True).encode("utf-8", "surrogatepass")


OBJECTS = st.builds(
    _object,
    item_id=st.one_of(
        st.sampled_from(["dup-1", "dup-2"]), st.uuids().map(str), st.integers(), st.none(), st.just(["list"])
    ),
    title=TEXT,
    published=TIMES,
    tickers=st.one_of(st.lists(st.text(max_size=6), max_size=3), st.text(max_size=10), st.integers(), st.none()),
    extra=st.dictionaries(st.sampled_from(["body", "source", "url", "lang", "v", "fetched_at"]), JSONISH, max_size=3),
)
PAYLOADS = st.one_of(
    OBJECTS,
    st.binary(max_size=200),  # mostly invalid UTF-8 / not JSON
    JSONISH.map(lambda v: json.dumps(v).encode()),  # valid JSON, wrong shape
    st.integers(min_value=1, max_value=3000).map(lambda n: b"[" * n + b"]" * n),  # deep nesting
)


@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(payloads=st.lists(PAYLOADS, min_size=120, max_size=120))
def test_fuzzed_payloads_are_stored_or_dead_lettered(broker: EmbeddedBroker, tmp_path_factory, payloads) -> None:
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.db'}"
    settings_ = make_settings(broker.bootstrap, url, partitions=2)
    # Good items and exact re-publishes of two of them go in among the fuzz, so both outcomes are exercised.
    good = [json.dumps(good_item(i, BASE)).encode() for i in range(10)]
    payloads = [*payloads, *good, good[0], good[1]]
    publish_feed(settings_, Feed(messages=[(f"k{i}".encode(), p) for i, p in enumerate(payloads)]))
    workers = [start_worker(settings_, stage) for stage in ("classify", "sink")]
    store = Store(url)
    store.create_schema()

    def settled() -> bool:
        status = collect_status(settings_)
        return drained(settings_, status) and status["published"] == status["stored"] + status["dead_lettered"]

    wait_for(settled, timeout=240, every=1.0)
    assert all(w.poll() is None for w in workers)  # nobody crashed
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
        finish(worker, timeout=60)
    status = collect_status(settings_)
    assert status["published"] == len(payloads) == status["stored"] + status["dead_lettered"]
    assert status["stored"] >= 10 and status["dead_letters_by_reason"].get("duplicate_id", 0) >= 2
