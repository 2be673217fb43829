"""Property: random feeds give identical windows, late items and alerts along every path.

Feeds are drawn by hypothesis: ordered, disordered within the grace, disordered beyond it, with gaps of
hours and with partitions that get no news at all. Each feed goes through
  (a) the backtest core (pipelines/backtest/stream.EventTimeReplay on the items' scores),
  (b) the live stage processors with 1 or 3 classify workers and 1 or 2 aggregators, crashes and
      rebalances, and stream-mode alerting evaluated at random moments while the stream is half done
      (tests/stream_sim.py; the real broker runs in tests/test_event_time.py),
  (d) brute force: lateness by definition, windows recomputed from the accepted items in one batch, their
      stories settled in one pass, and the rules evaluated at every tick with no skipping.
Story columns included: live settles stories behind stream time, the backtest before each tick, brute
force at once; all in (event time, item id) order, so all agree (the feeds repeat headlines: copies join).
"""

from __future__ import annotations

import json
import random
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from monitor.alerts.lifecycle import AlertEvaluator
from monitor.alerts.rules import parse_rules
from monitor.classify import load_classifier
from monitor.clock import INSTANT, next_tick, to_micros
from monitor.config import load_settings
from monitor.core.lateness import replay_verdicts
from monitor.records import decode_deadletter
from monitor.store import Store
from monitor.store import windows as wstore
from monitor.store.schema import aggregate_items
from monitor.windows.aggregator import Delivery, WindowAggregator
from pipelines.backtest.stream import EventTimeReplay, fired_alerts
from tests.stream_sim import simulate

START = datetime(2025, 5, 5, 9, tzinfo=UTC)
TITLES = ["{t} shares plunge after fraud probe", "{t} beats estimates and raises guidance",
          "{t} to present at investor day", "{t} misses estimates, cuts outlook"]
RULES = parse_rules("""
rules:
  - name: busy
    scope: [ticker]
    window: 30min
    when: ["count >= 3"]
    min_count: 1
    for: 0s
  - name: gloomy
    scope: [market, ticker]
    window: 1h/30min
    when: ["negative_share >= 0.5"]
    min_count: 2
    for: 30min
""")
COLS = ["key", "size", "start_us", "count", "n_negative", "n_neutral", "n_positive", "mean_sentiment",
        "sentiment_index", "volume_z", "sentiment_z", "n_stories", "n_negative_stories", "sum_novelty",
        "sum_nov_score_u", "story_sentiment", "story_negative_share"]


@pytest.fixture(scope="module")
def classifier():  # type: ignore[no-untyped-def]
    return load_classifier(device="cpu")


def feed_from(minutes: list[float], titles: list[int], tickers: list[int]) -> list[tuple[bytes, bytes]]:
    out = []
    for i, (minute, title, ticker) in enumerate(zip(minutes, titles, tickers, strict=False)):
        body = {"id": f"f{i}", "title": TITLES[title].format(t=f"$QZ{ticker}"), "source": "t",
                "published_at": (START + timedelta(minutes=minute)).isoformat()}
        out.append((f"f{i}".encode(), json.dumps(body).encode()))
    return out


@st.composite
def feeds(draw: st.DrawFn) -> list[tuple[bytes, bytes]]:
    n = draw(st.integers(1, 60))
    kind = draw(st.sampled_from(["ordered", "within", "beyond", "gaps"]))
    minutes, t = [], 0.0
    for _ in range(n):
        t += draw(st.floats(0, 6)) + (draw(st.sampled_from([0, 0, 0, 300])) if kind == "gaps" else 0)
        jitter = {"ordered": 0.0, "within": draw(st.floats(-50, 0)), "gaps": 0.0,
                  "beyond": draw(st.sampled_from([0.0, 0.0, -20.0, -150.0]))}[kind]
        minutes.append(round(max(t + jitter, 0.0), 2))
    titles = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    tickers = draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    return feed_from(minutes, titles, tickers)


def windows_of(store: Store) -> pd.DataFrame:
    with store.engine.connect() as conn:
        return wstore.all_windows(conn)[COLS].sort_values(["size", "key", "start_us"]).reset_index(drop=True)


def alert_rows(store: Store, end: datetime) -> list[tuple[str, str, str]]:
    frame = fired_alerts(store)
    frame = frame[frame["fired_at"] <= end]  # live stream time stops at the last item
    return [(r.rule, r.key, r.fired_at.isoformat()) for r in frame.itertuples()]


def every_tick(store: Store, items: list, step: timedelta, end: datetime) -> None:  # type: ignore[type-arg]
    """Brute force: all accepted items applied at once, then the rules at every tick, none skipped."""
    aggregator = WindowAggregator(store, load_settings(None).windows.model_copy(
        update={"sizes": ("30min", "1h/30min")}), "brute")
    aggregator.apply([Delivery(i, 0, s) for i, s in enumerate(items)])
    with store.engine.begin() as conn:  # stories: every accepted item, in one pass (event time, id order)
        aggregator.settle_stories(conn, to_micros(end) + 1)
    evaluator = AlertEvaluator(store, RULES, complete_only=True)
    tick = next_tick(min(s.item.published_at for s in items), step)
    while tick <= end:
        evaluator.evaluate(tick - INSTANT)
        tick += step


@settings(max_examples=25, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(feed=feeds(), seed=st.integers(0, 2**16), workers=st.sampled_from([(1, 1), (3, 2), (3, 1)]))
def test_random_feeds_agree_along_every_path(classifier, feed, seed: int, workers: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'live.db'}"
        cfg = load_settings(None, store_url=url, kafka={"partitions": 4},
                            windows={"sizes": ("30min", "1h/30min"), "grace": timedelta(minutes=30),
                                     "mark_interval_s": 1e-6, "idle_timeout_s": 1e-6},
                            alerts={"time_mode": "stream", "stream_step_s": 600})
        live = Store(url)
        live.create_schema()
        outcome = simulate(cfg, classifier, live, feed, RULES, random.Random(seed), *workers, crash=0.2)

        # late items: by definition, per news.raw partition in publish order
        times = [to_micros(datetime.fromisoformat(json.loads(v)["published_at"])) for _, v in feed]
        verdicts = replay_verdicts([k for k, _ in feed], times, 4, cfg.windows.grace // INSTANT)
        want_late = {k.decode() for (k, _), (_, _, v) in zip(feed, verdicts, strict=True) if v.late}
        got_late = {json.loads(decode_deadletter(m.value).payload)["id"] for m in outcome.dead
                    if m.reason == "late"}
        assert got_late == want_late

        # (a) the backtest core over the same scored items
        items = list(outcome.scored.values())
        assert len(items) == len(feed) and {s.item.id for s in items if s.late} == want_late
        ordered = sorted(items, key=lambda s: s.item.published_at)
        core = Store(f"sqlite:///{Path(tmp) / 'core.db'}")
        core.create_schema()
        step = timedelta(seconds=cfg.alerts.stream_step_s)
        EventTimeReplay(core, cfg.windows, RULES, step).run(ordered, progress=False)
        brute = Store(f"sqlite:///{Path(tmp) / 'brute.db'}")
        brute.create_schema()
        end = max(s.item.published_at for s in items)
        every_tick(brute, [s for s in ordered if not s.late], step, end)

        with live.engine.connect() as conn:  # the finished stream settled the story of every accepted item
            unsettled = conn.execute(aggregate_items.select().where(
                aggregate_items.c.late.is_(False), aggregate_items.c.novelty.is_(None))).all()
        assert not unsettled
        pd.testing.assert_frame_equal(windows_of(live), windows_of(core), check_dtype=False, atol=1e-9)
        pd.testing.assert_frame_equal(windows_of(live), windows_of(brute), check_dtype=False, atol=1e-9)
        rows = {"live": alert_rows(live, end), "core": alert_rows(core, end), "brute": alert_rows(brute, end)}
        assert rows["live"] == rows["core"] == rows["brute"], rows
        for store in (live, core, brute):
            store.dispose()
