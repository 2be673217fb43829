"""The window engine against a brute-force reference: plain pandas groupby over the full data.

Streams are randomised with hypothesis: event times out of order, several partitions interleaved, records
redelivered after simulated crashes (rewinds to an earlier offset) and ids published twice. Whatever the
delivery, the stored windows must equal the reference computed from the distinct, non-late items.
"""

from __future__ import annotations

import random
import tempfile
from collections import namedtuple
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from monitor.clock import ManualClock
from monitor.config import Settings, load_settings
from monitor.core.lateness import SourceTracker
from monitor.records import RawItem, ScoredItem, decode_deadletter, encode
from monitor.stages.aggregate import AggregateProcessor
from monitor.store import Store
from monitor.store import windows as wstore
from monitor.store.schema import aggregate_items
from monitor.windows import WindowError, parse_spec
from monitor.windows.engine import Baseline, compute_windows, item_values, items_frame
from monitor.windows.keys import KeyExtractor, company_dictionary

Record = namedtuple("Record", "topic partition offset key value")
BASE = datetime(2025, 1, 6, 12, tzinfo=UTC)
SIZES = ("5min", "15min/5min", "1h")
TOPIC = "news.scored"
TICKERS = ("AAA", "BBB", "CCC")


@dataclass(frozen=True)
class Entry:
    """One record in a partition's log."""

    item_id: str
    minute: float
    label: str
    probs: tuple[int, int, int]  # thousandths: exact in micro-units
    ticker: str
    topic: str


def scored(entry: Entry) -> ScoredItem:
    neg, neu, pos = (p / 1000 for p in entry.probs)
    item = RawItem(
        id=entry.item_id,
        title=f"headline {entry.item_id}",
        published_at=BASE + timedelta(minutes=entry.minute),
        tickers=(entry.ticker,),
    )
    return ScoredItem(
        item=item,
        topic=entry.topic,
        topic_probs={entry.topic: 1.0},
        sentiment=entry.label,
        sentiment_probs={"negative": neg, "neutral": neu, "positive": pos},
        model_version="t",
        scored_at=BASE,
    )


def window_settings(url: str, grace_min: float = 20.0) -> Settings:
    windows = {"sizes": SIZES, "grace": timedelta(minutes=grace_min), "baseline_windows": 4, "min_baseline_windows": 2}
    return load_settings(None, store_url=url, windows=windows)


# --- the reference -----------------------------------------------------------------------------------


def reference_accepted(logs: dict[int, list[Entry]], grace_min: float) -> list[Entry]:
    """Lateness by brute force: per partition in offset order, first occurrence of an id decides."""
    decided: dict[str, bool] = {}
    accepted = []
    for _, log in sorted(logs.items()):
        high: float | None = None
        for entry in log:
            if entry.item_id in decided:
                continue
            decided[entry.item_id] = late = high is not None and entry.minute < high - grace_min
            high = entry.minute if high is None else max(high, entry.minute)
            if not late:
                accepted.append(entry)
    return accepted


def reference_windows(entries: list[Entry], size: str, n_base: int, min_base: int) -> pd.DataFrame:
    spec = parse_spec(size)
    size_min, hop_min = spec.size_us / 60e6, spec.hop_us / 60e6
    rows = []
    for e in entries:
        score = (e.probs[2] - e.probs[0]) / 1000
        conf = max(e.probs) / 1000
        for key in ("market", f"topic:{e.topic}", f"ticker:{e.ticker}"):
            last = np.floor(e.minute / hop_min) * hop_min
            for k in range(int(size_min // hop_min)):
                rows.append(
                    {
                        "key": key,
                        "start": last - k * hop_min,
                        "label": e.label,
                        "score": score,
                        "conf": conf,
                        "cs": conf * score,
                    }
                )
    frame = pd.DataFrame(rows)
    grouped = frame.groupby(["key", "start"])
    out = grouped.agg(count=("score", "size"), mean_sentiment=("score", "mean"), cs=("cs", "sum"), conf=("conf", "sum"))
    for label in ("negative", "neutral", "positive"):
        out[f"{label}_share"] = grouped["label"].apply(lambda s, lab=label: float((s == lab).mean()))
    out["sentiment_index"] = out["cs"] / out["conf"]
    out = out.reset_index()
    out["volume_z"], out["sentiment_z"] = zip(
        *(_ref_z(out, r, hop_min, n_base, min_base) for r in out.itertuples()), strict=True
    )
    return out


def _ref_z(table: pd.DataFrame, row: Any, hop: float, n_base: int, min_base: int) -> tuple[float, float]:
    same = table[table["key"] == row.key].set_index("start")
    starts = [row.start - k * hop for k in range(1, n_base + 1)]
    present = [s for s in starts if s in same.index]
    if len(present) < min_base:
        return (np.nan, np.nan)
    counts = [float(same.loc[s, "count"]) if s in same.index else 0.0 for s in starts]
    index = [float(same.loc[s, "sentiment_index"]) for s in present]
    vz = (row.count - np.mean(counts)) / max(float(np.std(counts, ddof=1)), 1.0)
    sz = (row.sentiment_index - np.mean(index)) / max(float(np.std(index, ddof=1)), 0.05)
    return (vz, sz)


def assert_windows_equal(store: Store, accepted: list[Entry]) -> None:
    with store.engine.connect() as conn:
        stored = wstore.all_windows(conn)
    for size in SIZES:
        label = parse_spec(size).label
        ours = stored[stored["size"] == label].copy()
        ours["start"] = (ours["start_us"] - int(BASE.timestamp() * 1e6)) / 60e6
        if not accepted:
            assert ours.empty
            continue
        ref = reference_windows(accepted, size, 4, 2)
        merged = ref.merge(ours, on=["key", "start"], how="outer", suffixes=("_ref", ""), indicator=True)
        assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"][["key", "start", "_merge"]]
        assert (merged["count_ref"] == merged["count"]).all()
        for col in (
            "mean_sentiment",
            "negative_share",
            "neutral_share",
            "positive_share",
            "sentiment_index",
            "volume_z",
            "sentiment_z",
        ):
            a, b = merged[f"{col}_ref"].astype(float), merged[col].astype(float)
            assert ((a - b).abs() < 1e-5).fillna(False).where(a.notna(), b.isna()).all(), (size, col)


# --- delivering a stream -------------------------------------------------------------------------------


def source_scored(logs: dict[int, list[Entry]], grace_min: float) -> dict[int, list[ScoredItem]]:
    """Each log as its classify worker publishes it: lateness decided per source partition (monitor/core)."""
    tracker = SourceTracker(int(grace_min * 60e6))
    out: dict[int, list[ScoredItem]] = {}
    for p, log in logs.items():
        out[p] = []
        for offset, e in enumerate(log):
            verdict = tracker.observe(p, offset, int((BASE + timedelta(minutes=e.minute)).timestamp() * 1e6))
            out[p].append(replace(scored(e), late=verdict.late, src_partition=p, src_offset=offset))
    return out


def deliver(
    processor: AggregateProcessor, logs: dict[int, list[Entry]], rng: random.Random, crash_chance: float
) -> list[Any]:
    """Interleave partitions in random batches; sometimes rewind to an earlier offset (a crash). Here each
    log stands for both a source partition and the news.scored partition it reaches."""
    grace_min = processor.aggregator.grace_us / 60e6
    payloads = {p: [encode(item) for item in items] for p, items in source_scored(logs, grace_min).items()}
    position = dict.fromkeys(logs, 0)
    out: list[Any] = []
    while any(position[p] < len(logs[p]) for p in logs):
        batch = []
        for p in logs:
            take = rng.randint(0, 6)
            batch += [
                Record(TOPIC, p, o, b"k", payloads[p][o])
                for o in range(position[p], min(position[p] + take, len(logs[p])))
            ]
            position[p] = min(position[p] + take, len(logs[p]))
        out += processor.process(batch)
        if rng.random() < crash_chance:
            # redeliver from an older commit (at most 15 records back, so that the stream still ends)
            position = {p: rng.randint(max(0, position[p] - 15), position[p]) for p in logs}
    return out


entries = st.builds(
    Entry,
    item_id=st.sampled_from([f"id{i}" for i in range(40)]),
    minute=st.floats(0, 240).map(lambda m: round(m, 3)),
    label=st.sampled_from(["negative", "neutral", "positive"]),
    probs=st.sampled_from([(700, 200, 100), (100, 300, 600), (250, 500, 250), (34, 333, 633), (900, 50, 50)]),
    ticker=st.sampled_from(TICKERS),
    topic=st.sampled_from(["earnings", "m&a"]),
)


def _dedupe_ids(logs: dict[int, list[Entry]]) -> dict[int, list[Entry]]:
    """An id lives in one partition (its key decides it); repeats inside a partition are duplicate publishes."""
    owner: dict[str, int] = {}
    out: dict[int, list[Entry]] = {p: [] for p in logs}
    firsts: dict[str, Entry] = {}
    for p, log in logs.items():
        for e in log:
            if owner.setdefault(e.item_id, p) == p:
                out[p].append(firsts.setdefault(e.item_id, e))  # a duplicate publish repeats the same item
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    logs=st.dictionaries(st.integers(0, 2), st.lists(entries, max_size=25), min_size=1, max_size=3),
    seed=st.integers(0, 2**16),
    grace=st.sampled_from([5.0, 30.0, 1000.0]),
)
def test_random_streams_equal_the_brute_force_reference(logs: dict[int, list[Entry]], seed: int, grace: float) -> None:
    logs = _dedupe_ids(logs)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'w.db'}")
        store.create_schema()
        processor = AggregateProcessor(window_settings(store.url, grace), store, ManualClock(BASE))
        out = deliver(processor, logs, random.Random(seed), crash_chance=0.3)
        accepted = reference_accepted(logs, grace)
        assert_windows_equal(store, accepted)
        late_ids = {e.item_id for log in logs.values() for e in log} - {e.item_id for e in accepted}
        letters = [decode_deadletter(m.value) for m in out if m.topic.endswith("deadletter")]
        assert {letter.reason for letter in letters} <= {"late"}
        assert {scored_id(letter.payload) for letter in letters} == late_ids
        store.dispose()


def scored_id(payload: bytes) -> str:
    return payload.decode().split('"id":"', 1)[1].split('"', 1)[0]


# --- the same on both databases, plus late counts and bad input -------------------------------------------


def fixed_logs(n: int, seed: int) -> dict[int, list[Entry]]:
    rng = random.Random(seed)
    logs: dict[int, list[Entry]] = {0: [], 1: []}
    for i in range(n):
        minute = i * 0.5 + rng.uniform(-8, 8) + (-120 if i % 37 == 36 else 0)  # a few far too late
        logs[i % 2].append(
            Entry(
                f"n{i}",
                round(minute, 3),
                rng.choice(["negative", "neutral", "positive"]),
                rng.choice([(700, 200, 100), (100, 300, 600), (250, 500, 250)]),
                TICKERS[i % 3],
                rng.choice(["earnings", "m&a"]),
            )
        )
    return logs


def test_incremental_batches_with_crashes_equal_reference_on_both_stores(store_url: str) -> None:
    logs = fixed_logs(300, seed=7)
    store = Store(store_url)
    store.create_schema()
    processor = AggregateProcessor(window_settings(store_url, grace_min=20), store, ManualClock(BASE))
    out = deliver(processor, logs, random.Random(3), crash_chance=0.25)
    accepted = reference_accepted(logs, 20)
    assert len(accepted) < 300  # some really were late
    assert_windows_equal(store, accepted)
    late = [e for log in logs.values() for e in log if e not in accepted]
    with store.engine.connect() as conn:
        counts = wstore.late_counts(conn)
        stored_late = conn.execute(select(aggregate_items.c.item_id).where(aggregate_items.c.late)).scalars().all()
    assert counts["market"] == len(late) == len(stored_late)
    for ticker in TICKERS:
        assert counts.get(f"ticker:{ticker}", 0) == sum(1 for e in late if e.ticker == ticker)
    reasons = {decode_deadletter(m.value).reason for m in out if m.topic.endswith("deadletter")}
    assert reasons == {"late"}
    store.dispose()


def test_bad_records_are_dead_lettered_and_the_batch_goes_on(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    store.create_schema()
    processor = AggregateProcessor(window_settings(sqlite_url), store, ManualClock(BASE))
    good = Entry("g1", 1.0, "negative", (700, 200, 100), "AAA", "earnings")
    out = processor.process([Record(TOPIC, 0, 0, None, b"{not json"), Record(TOPIC, 0, 1, None, encode(scored(good)))])
    letters = [decode_deadletter(m.value) for m in out if m.topic.endswith("deadletter")]
    assert [letter.reason for letter in letters] == ["malformed_json"]
    windows_out = [m for m in out if m.topic == processor.settings.kafka.topics.windows]
    assert {m.key for m in windows_out} == {b"market", b"topic:earnings", b"ticker:AAA"}


def test_from_scratch_engine_equals_reference() -> None:
    logs = fixed_logs(400, seed=11)
    accepted = reference_accepted(logs, 1e9)
    frame = items_frame(
        [item_values(scored(e)) for e in accepted],
        [("market", f"topic:{e.topic}", f"ticker:{e.ticker}") for e in accepted],
    )
    result = compute_windows(frame, [parse_spec(s) for s in SIZES], Baseline(4, 2, 1.0, 0.05))
    for size in SIZES:
        ours = result[result["size"] == parse_spec(size).label].copy()
        ours["start"] = (ours["start_us"] - int(BASE.timestamp() * 1e6)) / 60e6
        ref = reference_windows(accepted, size, 4, 2).merge(ours, on=["key", "start"], suffixes=("_ref", ""))
        assert len(ref) == len(ours) == len(reference_windows(accepted, size, 4, 2))
        for col in ("count", "mean_sentiment", "sentiment_index", "volume_z", "sentiment_z"):
            a, b = ref[f"{col}_ref"].astype(float), ref[col].astype(float)
            assert np.allclose(a, b, atol=1e-6, equal_nan=True), (size, col)


# --- specs and keys ------------------------------------------------------------------------------------------


def test_specs_parse_and_explain_what_is_allowed() -> None:
    assert [parse_spec(s).label for s in ("5min", "1h", "1D", "24h", "1h/15min", "90s")] == [
        "5min",
        "1h",
        "1d",
        "1d",
        "1h/15min",
        "90s",
    ]
    for bad, hint in (
        ("5 parsecs", "pandas alias"),
        ("1h/7min", "multiple of the hop"),
        ("", "empty"),
        ("0s", "positive"),
    ):
        with pytest.raises(WindowError, match=hint):
            parse_spec(bad)


def test_keys_come_from_tickers_cashtags_and_an_extendable_dictionary(tmp_path: Path) -> None:
    extra = tmp_path / "companies.yaml"
    extra.write_text("Northwind Energy: NWND\n", encoding="utf-8")
    cfg = load_settings(None, windows={"companies_file": str(extra), "companies": {"Quorum Medical": "QMED"}}).windows
    extractor = KeyExtractor(company_dictionary(cfg))
    item = RawItem(
        id="x",
        title="Apple and Northwind Energy rally, $tsla flat; Quorum Medical slips; apple pie",
        published_at=BASE,
        tickers=("IBM",),
    )
    sc = ScoredItem(item, "markets", {}, "neutral", {"negative": 0.2, "neutral": 0.6, "positive": 0.2}, "t", BASE)
    assert extractor.keys(sc) == (
        "market",
        "topic:markets",
        "ticker:IBM",
        "ticker:TSLA",
        "ticker:AAPL",
        "ticker:NWND",
        "ticker:QMED",
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("Acme: not a ticker!\n", encoding="utf-8")
    with pytest.raises(WindowError, match="is not a ticker"):
        company_dictionary(load_settings(None, windows={"companies_file": str(bad)}).windows)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["market", "topic:a", "ticker:X"]),
                          st.integers(-3 * 86_400_000_000, 3 * 86_400_000_000),
                          st.sampled_from(["negative", "neutral", "positive"]),
                          st.integers(-1_000_000, 1_000_000), st.integers(0, 1_000_000)), min_size=1, max_size=60),
       st.sampled_from(["5min", "1h", "1h/15min", "1D"]))
def test_micro_batch_sums_equal_the_pandas_path(rows: list[tuple[str, int, str, int, int]], size: str) -> None:
    """The plain-Python sums used for micro-batches and pandas' groupby give the same frame, bit for bit
    (times before 1970 included: both floor to the window start)."""
    from monitor.windows import engine

    frame = pd.DataFrame([{"key": k, "t_us": t, "label": lab, "score_u": s, "conf_u": c, "conf_score_u": s * c // 10**6,
                           "item_id": f"i{i}"} for i, (k, t, lab, s, c) in enumerate(rows)])
    spec = parse_spec(size)
    small = engine._small_window_sums(frame, spec)
    old_small = engine._SMALL
    try:
        engine._SMALL = -1  # force the pandas path
        reference = engine.window_sums(frame, spec)
    finally:
        engine._SMALL = old_small
    assert int(small["count"].sum()) == len(frame) * spec.per_item
    pd.testing.assert_frame_equal(small.reset_index(drop=True), reference.reset_index(drop=True))
