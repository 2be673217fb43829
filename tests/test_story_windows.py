"""Story-aware windows (issue #13 part 3): stories settled at the watermark, counted by the shipped rules.

- A burst of 60 copies of one negative story (retweets, syndicated variants) within an hour fires no
  story-counting alert, while 12 distinct negative stories in the same hour fire `negative-story-burst`
  (through the backtest's EventTimeReplay with the shipped rules, on a real store).
- Determinism: one feed with near-duplicates, applied to the live aggregator in different batch splits and
  interleavings of its source partitions, with source marks moving stream time, gives identical windows
  (story columns included) and story ids, equal to a brute-force reference (MemoryStories in event-time
  order + compute_windows), on SQLite and PostgreSQL.
- Migration: a store created before the story columns gets them, with existing windows at 0 stories.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import text

from monitor.alerts.rules import load_rules, parse_rules
from monitor.clock import to_micros
from monitor.config import load_settings
from monitor.records import WINDOW_DERIVED, WINDOW_SUMS, RawItem, ScoredItem, SourceMark
from monitor.store import Store
from monitor.store import windows as wstore
from monitor.store.schema import aggregate_items
from monitor.stories import MemoryStories, StoryInput
from monitor.windows.aggregator import Delivery, WindowAggregator
from monitor.windows.engine import Baseline, compute_windows, item_values, items_frame
from monitor.windows.keys import KeyExtractor, company_dictionary
from monitor.windows.spec import parse_specs
from pipelines.backtest.stream import EventTimeReplay, fired_alerts

HOUR = datetime(2025, 6, 3, 14, tzinfo=UTC)  # a Tuesday, 10:00 New York
PROBS = {"negative": (0.88, 0.08, 0.04), "neutral": (0.1, 0.7, 0.2), "positive": (0.04, 0.16, 0.8)}
ORIGINAL = "Acme Biotech shares plunge after FDA rejects its lead cancer drug"
COPIES = (
    "RT @biotechwire: {o}",
    "{o} https://t.co/x{n}",
    "{o} - Reuters",
    "{o} (Bloomberg)",
    "$ACME {o}",
    "BREAKING: {o}",
    "RT @trader{n}: {o} $ACME",
)
DISTINCT = (  # twelve different bad-news stories about one company within the hour
    "Dorsey Industries cuts full-year outlook as orders slump",
    "SEC opens investigation into Dorsey accounting practices",
    "Dorsey chief executive resigns effective immediately",
    "Moody's downgrades Dorsey Industries credit rating to junk",
    "Dorsey recalls 200,000 water heaters over fire hazard",
    "Union workers walk out at three Dorsey plants",
    "Dorsey misses second-quarter earnings estimates by a wide margin",
    "Largest customer cancels multiyear contract with Dorsey",
    "Dorsey suspends quarterly dividend to conserve cash",
    "Short seller report accuses Dorsey of channel stuffing",
    "Explosion halts production at Dorsey's Ohio factory",
    "Dorsey faces class action over misleading investor statements",
)


def scored(item_id: str, title: str, when: datetime, ticker: str, label: str = "negative",
           source: str = "wire", partition: int = 0, offset: int = 0) -> ScoredItem:
    neg, neu, pos = PROBS[label]
    raw = RawItem(id=item_id, title=title, published_at=when, source=source, tickers=(ticker,))
    return ScoredItem(item=raw, topic="markets", topic_probs={"markets": 1.0}, sentiment=label,
                      sentiment_probs={"negative": neg, "neutral": neu, "positive": pos}, model_version="test",
                      scored_at=when, src_partition=partition, src_offset=offset)


def copies_and_distinct() -> list[ScoredItem]:
    """60 copies of one negative Acme story and 12 distinct negative Dorsey stories, within one hour."""
    items = [scored(f"acme-{n}", COPIES[n % len(COPIES)].format(o=ORIGINAL, n=n) if n else ORIGINAL,
                    HOUR + timedelta(seconds=55 * n), "ACME", source=f"src{n % 5}") for n in range(60)]
    items += [scored(f"dors-{k}", title, HOUR + timedelta(minutes=4 * k + 1), "DRSY")
              for k, title in enumerate(DISTINCT)]
    return sorted(items, key=lambda s: (s.item.published_at, s.item.id))


RAW_BURST = parse_rules("""
rules:
  - name: raw-negative-burst
    scope: ticker
    window: 1h
    when: ["count >= 8", "negative_share >= 0.5"]
""")


def replay(url: str, rules: Any, items: list[ScoredItem]) -> tuple[pd.DataFrame, pd.DataFrame]:
    store = Store(url)
    store.create_schema()
    settings = load_settings(None, store_url=url)
    EventTimeReplay(store, settings.windows, rules, timedelta(minutes=5), stories=settings.stories).run(
        items, progress=False)
    with store.engine.connect() as conn:
        windows = wstore.all_windows(conn)
    alerts = fired_alerts(store)
    store.dispose()
    return alerts, windows


def test_sixty_copies_fire_no_story_alert_while_twelve_distinct_stories_do(store_url: str) -> None:
    alerts, windows = replay(store_url, load_rules(), copies_and_distinct())
    fired = set(zip(alerts["rule"], alerts["key"], strict=True))
    assert not [f for f in fired if f[1] == "ticker:ACME"], fired  # one story, however many copies
    assert ("negative-story-burst", "ticker:DRSY") in fired
    hour = windows[(windows["size"] == "1h") & windows["key"].isin(["ticker:ACME", "ticker:DRSY"])]
    by_key = hour.set_index("key")
    assert by_key.loc["ticker:ACME", "count"] == 60 and by_key.loc["ticker:ACME", "n_stories"] == 1
    assert by_key.loc["ticker:DRSY", "count"] == 12 and by_key.loc["ticker:DRSY", "n_negative_stories"] == 12
    assert by_key.loc["ticker:DRSY", "story_negative_share"] == 1.0
    # copies weigh less and less: Acme's novelty-weighted sentiment is as negative as one item's score
    assert by_key.loc["ticker:ACME", "story_sentiment"] == pytest.approx(-0.84, abs=1e-6)


def test_counting_copies_would_fire_on_the_syndicated_story(sqlite_url: str) -> None:
    """The contrast: a rule on raw counts fires for the 60 copies (what the shipped rules no longer do)."""
    alerts, _ = replay(sqlite_url, RAW_BURST, copies_and_distinct())
    assert {"ticker:ACME", "ticker:DRSY"} <= set(alerts["key"])


WORDS = ("bank", "plant", "order", "court", "chip", "rating", "merger", "fleet", "tariff", "patent", "drug", "mine",
         "store", "bond", "union", "loan", "cloud", "engine", "vote", "satellite", "harbor", "grid", "pipeline", "fund")


def day_level_feed() -> list[ScoredItem]:
    """Eight ordinary days of two distinct neutral stories for ACME and for DRSY, then a day on which ACME
    gets 60 copies of one story and DRSY 12 distinct stories."""
    rng = random.Random(7)

    def headline(company: str) -> str:  # few shared shingles: every one its own story
        return f"{company} " + " ".join(rng.sample(WORDS, 9))

    start = HOUR - timedelta(days=8)
    items = [scored(f"{t}-{d}-{k}", headline(t.title()), start + timedelta(days=d, hours=k), t, "neutral")
             for d in range(8) for k in range(2) for t in ("ACME", "DRSY")]
    copy = headline("Acme")
    items += [scored(f"acme-copy-{n}", f"RT @desk{n}: {copy}" if n else copy, HOUR + timedelta(minutes=5 * n),
                     "ACME", "neutral") for n in range(60)]
    items += [scored(f"drsy-new-{k}", headline("Drsy"), HOUR + timedelta(minutes=20 * k + 1), "DRSY", "neutral")
              for k in range(12)]
    return sorted(items, key=lambda s: s.item.published_at)


def test_day_level_attention_counts_distinct_stories_against_the_tickers_own_days(sqlite_url: str) -> None:
    """story_z measures the day's distinct stories against the ticker's previous days: 60 copies of one story
    are one story (volume_z soars, story_z does not), 12 new stories are a spike the shipped rule reports."""
    alerts, windows = replay(sqlite_url, load_rules(), day_level_feed())
    starts = pd.to_datetime(windows["window_start"], utc=True)
    day = windows[(windows["size"] == "1d") & (starts == HOUR.replace(hour=0))].set_index("key")
    acme, drsy = day.loc["ticker:ACME"], day.loc["ticker:DRSY"]
    assert (acme["count"], acme["n_stories"], drsy["count"], drsy["n_stories"]) == (60, 1, 12, 12)
    # baseline: the 24 days before, 8 of them with 2 stories (mean 2/3, std below the floor of 1)
    assert acme["volume_z"] == pytest.approx(60 - 2 / 3, abs=1e-5)  # z-scores are rounded to 6 places
    assert acme["story_z"] == pytest.approx(1 - 2 / 3, abs=1e-5)
    assert drsy["story_z"] == pytest.approx(12 - 2 / 3, abs=1e-5)
    assert drsy["story_sentiment_z"] == pytest.approx(0.0, abs=0.05)  # neutral news, as on every other day
    spikes = set(alerts.loc[alerts["rule"] == "daily-attention-spike", "key"])
    assert spikes == {"ticker:DRSY"}


# --- determinism --------------------------------------------------------------------------------------


def near_duplicate_feed(rng: random.Random) -> list[ScoredItem]:
    """Three source partitions over four hours: distinct headlines, copies of them (some across sources and
    partitions), two tickers, mixed labels; each partition time-ordered, as its source delivers it."""
    base = ["{c} raises dividend after record quarter", "{c} shares slide as iPhone sales disappoint",
            "{c} to cut 5,000 jobs in restructuring", "{c} wins $2 billion defense contract",
            "Regulators fine {c} over data breach", "{c} names new chief executive from rival"]
    companies = {"AAPL": "Apple", "MSFT": "Microsoft"}
    out, offsets = [], [0, 0, 0]
    t = HOUR
    for n in range(90):
        t += timedelta(seconds=rng.choice([20, 40, 90, 300]))
        ticker = rng.choice(list(companies))
        headline = rng.choice(base).format(c=companies[ticker])
        if rng.random() < 0.5:
            headline = rng.choice(["RT @desk: {h}", "{h} - Reuters", "{h} https://t.co/a{n}"]).format(h=headline, n=n)
        label = rng.choice(list(PROBS))
        part = rng.randrange(3)
        out.append(scored(f"n{n:03d}", headline, t, ticker, label, f"src{part}", part, offsets[part]))
        offsets[part] += 1
    return out


def deliveries(items: list[ScoredItem], rng: random.Random) -> list[list[ScoredItem]]:
    """A random interleaving of the partitions (each in order) cut into random batches."""
    queues = [[s for s in items if s.src_partition == p] for p in range(3)]
    merged = []
    while any(queues):
        merged.append(rng.choice([q for q in queues if q]).pop(0))
    batches, i = [], 0
    while i < len(merged):
        n = rng.randint(1, 12)
        batches.append(merged[i : i + n])
        i += n
    return batches


def marks_for(items: list[ScoredItem], idle: bool = False) -> list[tuple[int, SourceMark]]:
    """What a classify worker sends after `items`: per source partition, the newest event time delivered."""
    out = []
    for p in range(3):
        mine = [s for s in items if s.src_partition == p]
        if mine:
            last = max(s.item.published_at for s in mine)
            out.append((0, SourceMark("raw", p, max(s.src_offset for s in mine), last, idle, 1, last, 0, 3)))
    return out


def live_run(url: str, items: list[ScoredItem], rng: random.Random) -> tuple[pd.DataFrame, dict[str, Any]]:
    store = Store(url)
    store.create_schema()
    settings = load_settings(None, store_url=url)
    aggregator = WindowAggregator(store, settings.windows, "scored", settings.stories)
    seen: list[ScoredItem] = []
    for batch in deliveries(items, rng):
        seen += batch
        aggregator.apply([Delivery(0, s.src_offset, s) for s in batch], marks_for(seen))
    aggregator.apply([], marks_for(seen, idle=True))  # caught up: every source idle, everything settles
    with store.engine.connect() as conn:
        windows = wstore.all_windows(conn).drop(columns=["window_start", "window_end"]).reset_index(drop=True)
        stories = {r.item_id: (r.story_id, r.novelty) for r in conn.execute(aggregate_items.select())}
    store.dispose()
    return windows, stories


def reference(items: list[ScoredItem]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Brute force: stories in (event time, id) order in memory, then every window from scratch."""
    settings = load_settings(None)
    ordered = sorted(items, key=lambda s: (s.item.published_at, s.item.id))
    extractor = KeyExtractor(company_dictionary(settings.windows))
    keys = [list(extractor.keys(s)) for s in ordered]
    done = MemoryStories(settings.stories).assign(
        [StoryInput(s.item.id, s.item.text, s.item.source, s.item.published_at,
                    tuple(k.split(":", 1)[1] for k in k_ if k.startswith("ticker:")))
         for s, k_ in zip(ordered, keys, strict=True)])
    frame = items_frame([item_values(s) for s in ordered], keys)
    frame["novelty"] = [a.novelty for a in done]
    specs = parse_specs(settings.windows.sizes)
    windows = compute_windows(frame, specs, Baseline.from_settings(settings.windows))
    return windows, {a.item_id: (a.story_id, a.novelty) for a in done}


COMPARED = ["size", "key", "start_us", *WINDOW_SUMS, *WINDOW_DERIVED, "volume_z", "sentiment_z"]


def test_stories_and_windows_do_not_depend_on_batches_or_interleaving(store_url: str, tmp_path: Any) -> None:
    items = near_duplicate_feed(random.Random(11))
    want_windows, want_stories = reference(items)
    assert len(set(story for story, _ in want_stories.values())) < len(items) - 20  # copies did join stories
    want = want_windows[COMPARED].sort_values(["size", "key", "start_us"]).reset_index(drop=True)
    for seed in (1, 2, 3):
        url = store_url if seed == 1 else f"sqlite:///{tmp_path / f'run{seed}.db'}"
        got_windows, got_stories = live_run(url, items, random.Random(seed))
        assert got_stories == want_stories
        got = got_windows[COMPARED].sort_values(["size", "key", "start_us"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want, check_dtype=False, atol=1e-9)


def test_story_pass_settles_only_behind_stream_time(sqlite_url: str) -> None:
    """Before stream time passes an item, its story is open (null) and its windows count no story for it."""
    items = near_duplicate_feed(random.Random(5))
    assert {s.src_partition for s in items} == {0, 1, 2}
    store = Store(sqlite_url)
    store.create_schema()
    settings = load_settings(None, store_url=sqlite_url)
    aggregator = WindowAggregator(store, settings.windows, "scored", settings.stories)
    late = replace(scored("old", "Apple shares slide as iPhone sales disappoint", HOUR, "AAPL"), late=True)
    aggregator.apply([Delivery(0, s.src_offset, s) for s in items] + [Delivery(0, 999, late)], marks_for(items))
    complete = min(max(to_micros(s.item.published_at) for s in items if s.src_partition == p) for p in range(3))
    complete -= int(settings.windows.grace.total_seconds() * 1_000_000)
    with store.engine.connect() as conn:
        rows = {r.item_id: r for r in conn.execute(aggregate_items.select())}
    settled = {s.item.id: rows[s.item.id].story_id is not None for s in items}
    assert settled == {s.item.id: to_micros(s.item.published_at) < complete for s in items}
    assert 0 < sum(settled.values()) < len(items)
    assert rows["old"].story_id == "" and rows["old"].novelty is None  # late: in no window, never settled
    store.dispose()


@pytest.mark.parametrize("mode", ["wall", "stream"])
def test_wall_clock_alerting_settles_stories_at_processed_time(sqlite_url: str, mode: str) -> None:
    """Live (wall-clock alerting) a 5-minute story rule must see the news while it is news: the aggregate stage
    settles up to the processed time, not a grace behind it; stream-time alerting keeps the exact lag."""
    from monitor.stages.aggregate import settle_lag_us

    items = near_duplicate_feed(random.Random(5))
    store = Store(sqlite_url)
    store.create_schema()
    settings = load_settings(None, store_url=sqlite_url, alerts={"time_mode": mode})
    lag = settle_lag_us(settings)
    assert lag == (0 if mode == "wall" else int(settings.windows.grace.total_seconds() * 1_000_000))
    aggregator = WindowAggregator(store, settings.windows, "scored", settings.stories, lag)
    aggregator.apply([Delivery(0, s.src_offset, s) for s in items], marks_for(items))
    processed = min(max(to_micros(s.item.published_at) for s in items if s.src_partition == p) for p in range(3))
    with store.engine.connect() as conn:
        rows = {r.item_id: r for r in conn.execute(aggregate_items.select())}
    assert {s.item.id: rows[s.item.id].story_id is not None for s in items} == {
        s.item.id: to_micros(s.item.published_at) < processed - lag for s in items}
    store.dispose()


# --- migration -----------------------------------------------------------------------------------------


OLD_COLUMNS = {"aggregate_items": ("story_text", "source", "story_id", "novelty", "story_sent"),
               "windows": ("n_stories", "n_negative_stories", "sum_novelty", "sum_nov_score_u", "story_sentiment",
                           "story_negative_share")}


def test_a_store_from_before_stories_gains_the_columns(store_url: str) -> None:
    items = copies_and_distinct()[:10]
    store = Store(store_url)
    store.create_schema()
    settings = load_settings(None, store_url=store_url)
    WindowAggregator(store, settings.windows, "scored").apply([Delivery(0, i, s) for i, s in enumerate(items)])
    with store.engine.begin() as conn:  # back to the old schema: no story columns, no unsettled index
        conn.execute(text("DROP INDEX ix_aggregate_items_unsettled"))
        for table, columns in OLD_COLUMNS.items():
            for column in columns:
                conn.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))
    store.dispose()

    store = Store(store_url)
    store.create_schema()
    store.create_schema()  # idempotent
    with store.engine.connect() as conn:
        before = wstore.all_windows(conn)
    assert (before["n_stories"] == 0).all() and (before["sum_novelty"] == 0).all()
    assert before["story_sentiment"].isna().all()
    aggregator = WindowAggregator(store, settings.windows, "scored", settings.stories)
    later = scored("late-news", "Acme Biotech to appeal FDA decision", HOUR + timedelta(minutes=70), "ACME")
    aggregator.apply([Delivery(0, 99, later)])
    with store.engine.begin() as conn:
        aggregator.settle_stories(conn, to_micros(HOUR + timedelta(hours=2)))
    with store.engine.connect() as conn:
        after = wstore.all_windows(conn)
        rows = {r.item_id: r for r in conn.execute(aggregate_items.select())}
    # items stored before the upgrade have no text to match: retired (''), never settled; the new one settles
    assert {rows[s.item.id].story_id for s in items} == {""}
    assert rows["late-news"].story_id and rows["late-news"].novelty == 100
    day = parse_specs(("1D",))[0].label
    market = after[(after["key"] == "market") & (after["size"] == day)].iloc[0]
    assert market["count"] == 11 and market["n_stories"] == 1 and market["sum_novelty"] == 100
    store.dispose()


# --- compatibility ---------------------------------------------------------------------------------------


def test_window_messages_from_an_older_aggregate_stage_are_still_window_rows() -> None:
    """sentiment.windows rows published before the story fields existed are read, not dead-lettered."""
    from monitor.records import WINDOW_ROW_FIELDS, WindowRow
    from monitor.stages.alerting import _check

    now = datetime(2025, 6, 3, 14, tzinfo=UTC)
    row = WindowRow.from_mapping({"key": "market", "size": "5min", "window_start": now, "window_end": now,
                                  "count": 3, "n_negative": 1, "n_neutral": 1, "n_positive": 1,
                                  "mean_sentiment": 0.1, "negative_share": 1 / 3, "neutral_share": 1 / 3,
                                  "positive_share": 1 / 3, "sentiment_index": 0.1, "volume_z": None,
                                  "sentiment_z": None})
    assert row.n_stories == 0 and row.story_sentiment is None
    wire = row.to_wire()
    assert set(wire) == set(WINDOW_ROW_FIELDS)
    old = {k: v for k, v in wire.items() if not k.startswith(("n_stories", "n_negative_stories", "story_"))}
    assert _check(json.dumps(old).encode()) is None
    assert _check(json.dumps(wire).encode()) is None
    assert _check(json.dumps({"key": "market"}).encode()) is not None


def test_story_sums_are_exact_and_absent_until_novelty_is_known() -> None:
    """The arithmetic: heads count as stories, novelty x score / 100 rounds half away from zero."""
    settings = load_settings(None)
    specs = parse_specs(("1h",))
    items = [scored("a", "Apple shares slide as iPhone sales disappoint", HOUR, "AAPL"),
             scored("b", "RT @x: Apple shares slide as iPhone sales disappoint", HOUR + timedelta(minutes=1), "AAPL"),
             scored("c", "Apple wins antitrust appeal in Europe", HOUR + timedelta(minutes=2), "AAPL", "positive")]
    frame = items_frame([item_values(s) for s in items], [["ticker:AAPL"]] * 3)
    unsettled = compute_windows(frame, specs, Baseline.from_settings(settings.windows)).iloc[0]
    assert unsettled["count"] == 3 and unsettled["n_stories"] == 0 and unsettled["sum_novelty"] == 0
    assert pd.isna(unsettled["story_sentiment"]) and pd.isna(unsettled["story_negative_share"])
    frame["novelty"] = [100, 75, 100]
    window = compute_windows(frame, specs, Baseline.from_settings(settings.windows)).iloc[0]
    # scores: -0.84, -0.84, +0.76 (micro-units -840000, -840000, 760000)
    assert (window["n_stories"], window["n_negative_stories"], window["sum_novelty"]) == (2, 1, 275)
    assert window["sum_nov_score_u"] == -840000 - 630000 + 760000
    assert window["story_sentiment"] == pytest.approx(100 * -710000 / 275 / 1e6)
    assert window["story_negative_share"] == 0.5


def test_live_aggregator_and_stream_mode_alerting_count_stories_too(sqlite_url: str) -> None:
    """The live path: the aggregator settles stories with the marks, stream-mode alerting evaluates behind
    them, evaluated while the stream is half done and at its end: the same verdict as the backtest."""
    from monitor.alerts.service import AlertService, StreamClock

    settings = load_settings(None, store_url=sqlite_url, alerts={"time_mode": "stream", "stream_step_s": 300})
    store = Store(sqlite_url)
    store.create_schema()
    aggregator = WindowAggregator(store, settings.windows, "scored", settings.stories)
    service = AlertService(settings, store, StreamClock(store, "scored", settings.windows.grace), load_rules())
    closing = scored("close", "Markets close higher as oil prices ease", HOUR + timedelta(minutes=75), "SPY",
                     "positive")
    feed = [*copies_and_distinct(), closing]  # stream time must pass the end of the hour for its window
    items = [replace(s, src_partition=i % 3, src_offset=i // 3) for i, s in enumerate(feed)]
    for i in range(0, len(items), 7):
        aggregator.apply([Delivery(0, s.src_offset, s) for s in items[i : i + 7]], marks_for(items[: i + 7]))
        service.evaluate()
    aggregator.apply([], marks_for(items, idle=True))
    service.evaluate()
    fired = set(zip(fired_alerts(store)["rule"], fired_alerts(store)["key"], strict=True))
    assert ("negative-story-burst", "ticker:DRSY") in fired
    assert not [f for f in fired if f[1] == "ticker:ACME"], fired
    store.dispose()


def test_story_sums_small_batch_path_equals_the_pandas_path(monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.windows import engine

    rng = random.Random(4)
    n = 300
    frame = pd.DataFrame({
        "item_id": [f"i{i}" for i in range(n)],
        "t_us": [to_micros(HOUR) + rng.randrange(-10**10, 10**10) for _ in range(n)],
        "label": [rng.choice(list(PROBS)) for _ in range(n)],
        "score_u": [rng.randrange(-10**6, 10**6) for _ in range(n)],
        "novelty": [rng.choice([100, 75, 56, 1, 0, None]) for _ in range(n)],
        "keys": [rng.sample(["market", "ticker:A", "ticker:B"], rng.randint(1, 3)) for _ in range(n)],
    })
    rows = engine.explode_keys(frame)
    for spec in parse_specs(("5min", "1h/15min")):
        small = engine.story_sums(rows, spec)
        monkeypatch.setattr(engine, "_SMALL", 0)
        big = engine.story_sums(rows, spec)
        monkeypatch.undo()
        pd.testing.assert_frame_equal(small.reset_index(drop=True), big.reset_index(drop=True), check_dtype=False)


def test_finmon_stories_lists_a_keys_stories_newest_first(sqlite_url: str) -> None:
    """`finmon stories --key KEY --json`: the syndicated story once with its 60 copies, the 12 distinct ones."""
    import json

    from click.testing import CliRunner

    from pipelines.cli import cli

    replay(sqlite_url, load_rules(), copies_and_distinct())

    def stories(key: str, *extra: str) -> list[dict[str, Any]]:
        result = CliRunner().invoke(cli, ["stories", "--key", key, "--json", *extra],
                                    env={"FINMON_STORE_URL": sqlite_url})
        assert result.exit_code == 0, result.output
        rows: list[dict[str, Any]] = json.loads(result.output)
        return rows

    acme = stories("ticker:ACME")
    assert len(acme) == 1 and acme[0]["n_items"] == 60 and acme[0]["n_sources"] >= 2
    assert set(acme[0]) == {"story_id", "first_seen", "n_items", "n_sources", "headline", "sentiment"}
    drsy = stories("ticker:DRSY")
    assert len(drsy) == 12 and all(s["n_items"] == 1 for s in drsy)
    assert [s["first_seen"] for s in drsy] == sorted((s["first_seen"] for s in drsy), reverse=True)
    assert len(stories("market", "--limit", "100")) == 13
    assert stories("ticker:NOPE") == []
    assert len(stories("ticker:DRSY", "--since", drsy[2]["first_seen"])) == 3
    bad = CliRunner().invoke(cli, ["stories", "--key", "market", "--since", "yesterday"],
                             env={"FINMON_STORE_URL": sqlite_url})
    assert bad.exit_code != 0 and "not an ISO time" in bad.output
