"""`finmon backtest` on small feeds and prices written here, where the right answers are known by construction.

Everything runs for real: the shipped model (int8), the live window aggregator and alert evaluator on a
temporary SQLite store, the signal evaluation, the report. Feeds reuse a few headline templates, so the
score cache keeps the model's work to a few dozen unique texts.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from monitor.sources.files import ColumnMap
from pipelines.cli import cli

NY = ZoneInfo("America/New_York")
NEGATIVE = ["{t} shares plunge after accounting fraud probe, CEO resigns",
            "{t} stock crashes as company warns of bankruptcy",
            "{t} slumps after profit warning and job cuts",
            "{t} downgraded to sell amid falling sales",
            "{t} plunges as regulators sue over misleading investors",
            "{t} shares tumble after massive product recall and losses",
            "{t} collapses after auditor quits and earnings restated",
            "{t} stock sinks on weak outlook and dividend cut"]
POSITIVE = ["{t} shares jump after record quarterly revenue", "Analysts upgrade {t} to buy on strong demand",
            "{t} beats earnings estimates and raises full-year guidance"]
NEUTRAL = ["{t} to present at investor conference next week", "{t} annual shareholder meeting scheduled for May",
           "{t} announces quarterly dividend of 20 cents per share"]
COLUMNS = ["--text-col", "text", "--time-col", "created_at", "--ticker-col", "ticker", "--id-col", "tweet_id"]
TIMINGS = {"wall_seconds", "texts_per_s", "timings"}
DAYS = pd.bdate_range("2024-03-01", periods=30)  # no US holiday in March 2024
BURST_DAY = 15  # the planted negative burst: room for -5..+10 trading days around it


def backtest(feed: Path, prices: Path, out: Path, cache: Path, *extra: str) -> dict[str, Any]:
    args = ["backtest", "--feed", str(feed), "--prices", str(prices), "--out", str(out), "--cache-dir",
            str(cache), "--quantize", "--no-progress", *COLUMNS, *extra]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    metrics: dict[str, Any] = json.loads((out / "metrics.json").read_text())
    return metrics


def fails(tmp_path: Path, feed: Path, prices: Path, *extra: str) -> str:
    args = ["backtest", "--feed", str(feed), "--prices", str(prices), "--out", str(tmp_path / "x"),
            "--cache-dir", str(tmp_path / "cache"), "--no-progress", *COLUMNS, *extra]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0
    return result.output


def at(day: pd.Timestamp, hour: int, minute: int = 0, second: int = 0) -> str:
    """An ISO UTC time on `day` at a New York wall-clock time (DST handled)."""
    local = datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=NY)
    return local.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_prices(path: Path, returns: dict[str, np.ndarray], days: pd.DatetimeIndex = DAYS) -> Path:
    rows = []
    for ticker, rets in returns.items():
        closes = 100 * np.cumprod(1 + rets)
        rows += [{"date": d.date().isoformat(), "ticker": ticker, "close": c * 1.01, "adj_close": c}
                 for d, c in zip(days, closes, strict=True)]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def write_feed(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    frame = pd.DataFrame(rows, columns=["created_at", "ticker", "text"])
    frame["tweet_id"] = [f"t{i}" for i in range(len(frame))]
    frame.to_csv(path, index=False)
    return path


# --- a planted negative burst before a planted price drop ----------------------------------------------------

TICKERS = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF", "GGG", "BAD"]


def planted(tmp: Path) -> tuple[Path, Path]:
    """Daily neutral chatter about every ticker; on BURST_DAY at 10:00 New York eight distinct negative stories
    about BAD within four minutes (the shipped rules count stories); BAD then falls 3% a day for three days
    while the others drift randomly."""
    rng = np.random.default_rng(7)
    rows = [(at(day, 9 + i % 6, 7 * (i % 8)), t, NEUTRAL[(i + d) % 3].format(t=f"${t}"))
            for d, day in enumerate(DAYS) for i, t in enumerate(TICKERS)]
    burst = DAYS[BURST_DAY]
    rows += [(at(burst, 10, k // 2, 30 * (k % 2)), "BAD", NEGATIVE[k].format(t="$BAD")) for k in range(8)]
    returns = {t: rng.normal(0, 0.004, len(DAYS)) for t in TICKERS}
    returns["BAD"][BURST_DAY + 1:BURST_DAY + 4] -= 0.03
    return write_feed(tmp / "feed.csv", rows), write_prices(tmp / "prices.csv", returns)


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("planted")
    feed, prices = planted(tmp)
    metrics = backtest(feed, prices, tmp / "out", tmp / "cache")
    return {"tmp": tmp, "feed": feed, "prices": prices, "metrics": metrics, "out": tmp / "out"}


def test_planted_burst_alerts_and_shows_negative_car(planted_run: dict[str, Any]) -> None:
    out, metrics = planted_run["out"], planted_run["metrics"]
    alerts = pd.read_csv(out / "alerts.csv")
    bad = alerts[alerts["key"] == "ticker:BAD"]
    assert "negative-share-surge" in set(bad["rule"])
    assert "negative-story-burst" in set(bad["rule"])  # eight distinct negative stories within the hour
    fired = pd.to_datetime(bad["fired_at"], utc=True).dt.tz_convert(NY)
    # fired from the burst, in event time: minutes after 10:00 New York on the burst day (the 5-minute rules),
    # when its 1-hour window completes (negative-story-burst), or when the burst day's 1-day window completes
    # (the day-level rules: after the close, so their session is the next one), not later
    hourly, daily = (bad["rule"] == "negative-story-burst").to_numpy(), bad["rule"].str.startswith("daily-").to_numpy()
    quick = ~hourly & ~daily
    burst = DAYS[BURST_DAY]
    assert ((fired[quick] >= pd.Timestamp(at(burst, 10, 4))) & (fired[quick] <= pd.Timestamp(at(burst, 10, 15)))).all()
    assert (fired[hourly] < pd.Timestamp(at(burst, 11))).all()
    assert "daily-sentiment-drop" in set(bad["rule"])  # the day-level rule sees the bad day against BAD's own days
    assert (fired[daily] < pd.Timestamp(burst.tz_localize("UTC") + pd.Timedelta(days=1))).all()
    assert set(bad["session"][~daily]) == {burst.date().isoformat()}
    assert set(bad["session"][daily]) == {DAYS[BURST_DAY + 1].date().isoformat()}
    assert not alerts["key"].isin([f"ticker:{t}" for t in TICKERS if t != "BAD"]).any()  # chatter is quiet
    events = pd.read_csv(out / "events.csv")
    assert (events["ticker"] == "BAD").all() and len(events) == metrics["n_events"] >= 1
    # three -3% days against a flat universe: about -9% (less the 1/8 weight BAD has in the universe)
    assert metrics["car_post_5d"] < -0.06
    assert abs(metrics["car_pre_5d"]) < 0.03
    assert metrics["n_alerts"] == len(alerts) and metrics["n_items"] == len(TICKERS) * len(DAYS) + 8


def test_report_files_are_complete_and_self_contained(planted_run: dict[str, Any]) -> None:
    out, metrics = planted_run["out"], planted_run["metrics"]
    for key in ("n_items", "n_tickers", "n_alerts", "ic_mean_1d", "ic_tstat_1d", "hit_rate_1d", "ic_mean_5d",
                "long_short_1d", "wall_seconds", "texts_per_s"):
        assert key in metrics
    assert metrics["n_tickers"] == len(TICKERS)
    signals = pd.read_parquet(out / "signals.parquet")
    assert {"date", "ticker", "n_items", "sentiment", "fwd_1d", "fwd_5d", "quintile"} <= set(signals.columns)
    assert len(signals) == metrics["n_signal_rows"] == len(TICKERS) * len(DAYS)  # one row per ticker and day
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") >= 7  # 2 IC, 2 quintile, 3 event-study plots
    assert "http://" not in html and "https://" not in html and "<script" not in html  # readable offline


def test_second_run_with_other_rules_never_runs_the_model(planted_run: dict[str, Any], tmp_path: Path) -> None:
    first = planted_run["metrics"]
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: any-negative\n    scope: ticker\n    window: 5min\n"
                     "    when: ['negative_share >= 0.5']\n    min_count: 1\n    severity: critical\n")
    second = backtest(planted_run["feed"], planted_run["prices"], tmp_path / "out", planted_run["tmp"] / "cache",
                      "--rules", str(rules))
    assert first["cache_misses"] > 0 and first["cache_hits"] == 0
    assert second["cache_misses"] == 0 and second["cache_hits"] == first["cache_misses"]
    assert second["timings"]["model_seconds"] == 0
    assert second["n_alerts_by_rule"] == {"any-negative": second["n_alerts"]} and second["n_alerts"] >= 1
    assert second["ic_mean_1d"] == first["ic_mean_1d"]  # same scores, same signal


def test_same_input_same_output(planted_run: dict[str, Any], tmp_path: Path) -> None:
    """A cold rerun (its own empty cache: the model runs again) writes the same metrics, alerts and signals."""
    again = backtest(planted_run["feed"], planted_run["prices"], tmp_path / "out", tmp_path / "cache")
    first = planted_run["metrics"]
    assert again["cache_misses"] == first["cache_misses"] > 0
    strip = {"cache_hits", "cache_misses"} | TIMINGS
    assert {k: v for k, v in again.items() if k not in strip} == {k: v for k, v in first.items() if k not in strip}
    out = planted_run["out"]
    assert (tmp_path / "out" / "alerts.csv").read_bytes() == (out / "alerts.csv").read_bytes()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "out" / "signals.parquet"),
                                  pd.read_parquet(out / "signals.parquet"))


# --- random news: no information, IC about 0; the same news driving prices: IC clearly positive -----------------

def random_feed(tmp: Path, n_tickers: int = 15) -> tuple[Path, list[str], np.ndarray]:
    rng = np.random.default_rng(11)
    tickers = [f"R{chr(65 + i)}X" for i in range(n_tickers)]
    pools = [NEGATIVE, NEUTRAL, POSITIVE]
    tone = rng.integers(0, 3, size=(len(DAYS), n_tickers))  # 0 negative, 1 neutral, 2 positive
    rows = [(at(day, 11, 3 * j), t, pools[tone[d, j]][(d + j) % 3].format(t=f"${t}"))
            for d, day in enumerate(DAYS) for j, t in enumerate(tickers)]
    return write_feed(tmp / "feed.csv", rows), tickers, tone


def test_random_news_has_no_ic_and_informative_news_has_some(tmp_path: Path) -> None:
    feed, tickers, tone = random_feed(tmp_path)
    rng = np.random.default_rng(12)
    noise = {t: rng.normal(0, 0.01, len(DAYS)) for t in tickers}
    random = backtest(feed, write_prices(tmp_path / "random.csv", noise), tmp_path / "random", tmp_path / "c")
    assert random["ic_days_1d"] == len(DAYS) - 1  # the last day has no next-day return
    assert abs(random["ic_mean_1d"]) < 0.1 and abs(random["ic_tstat_1d"]) < 2.5
    assert abs(random["long_short_1d"]) < 0.005
    # control: day d's news moves day d+1's price by +-1% (same feed, same noise): the IC must see it
    informed = {t: noise[t] + np.r_[0.0, 0.01 * (tone[:-1, j] - 1)] for j, t in enumerate(tickers)}
    control = backtest(feed, write_prices(tmp_path / "informed.csv", informed), tmp_path / "informed",
                       tmp_path / "c")
    assert control["cache_misses"] == 0
    assert control["ic_mean_1d"] > 0.5 and control["ic_tstat_1d"] > 10 and control["hit_rate_1d"] > 0.9
    assert control["long_short_1d"] > 0.015
    q = control["quintile_mean_1d"]
    assert q["5"] > q["3"] > q["1"]
    # the story-aware signal (novelty-weighted, relevance-gated: what the windows count) sees the same
    assert abs(random["story_ic_mean_1d"]) < 0.1 and control["story_ic_mean_1d"] > 0.5
    assert control["story_ic_days_1d"] == control["ic_days_1d"]
    report = (tmp_path / "informed" / "report.html").read_text(encoding="utf-8")
    assert "Story-aware signal" in report and "story-aware" in report


# --- edges: weekends, after the close, bare dates, tickers without prices ---------------------------------------

def test_edges_map_to_the_next_session_and_unpriced_tickers_are_reported(tmp_path: Path) -> None:
    tue, fri, mon = pd.Timestamp("2024-03-05"), pd.Timestamp("2024-03-08"), pd.Timestamp("2024-03-11")
    sat = pd.Timestamp("2024-03-09")
    rows = [(at(tue, 10), "EDG", NEGATIVE[0].format(t="$EDG")),       # in session -> Tuesday
            (at(tue, 15, 59, 59), "EDG", NEGATIVE[1].format(t="$EDG")),  # just before the close -> Tuesday
            ("2024-03-06", "EDG", NEUTRAL[0].format(t="$EDG")),      # bare date = Wednesday's close -> Wednesday
            (at(fri, 16, 0, 1), "EDG", POSITIVE[0].format(t="$EDG")),  # after Friday's close -> Monday
            (at(sat, 12), "EDG", POSITIVE[1].format(t="$EDG")),       # Saturday -> Monday
            (at(mon, 9), "EDG", NEUTRAL[1].format(t="$EDG")),         # Monday before the open -> Monday
            (at(tue, 11), "NOPX", NEGATIVE[2].format(t="$NOPX")),     # no prices: reported, skipped
            (at(tue, 12), "NOPX", NEGATIVE[3].format(t="$NOPX"))]
    feed = write_feed(tmp_path / "feed.csv", rows)
    prices = write_prices(tmp_path / "prices.csv", {"EDG": np.zeros(len(DAYS)), "OTH": np.zeros(len(DAYS))})
    metrics = backtest(feed, prices, tmp_path / "out", tmp_path / "cache")
    signals = pd.read_parquet(tmp_path / "out" / "signals.parquet")
    counts = dict(zip(signals["date"].dt.strftime("%Y-%m-%d"), signals["n_items"], strict=True))
    assert counts == {"2024-03-05": 2, "2024-03-06": 1, "2024-03-11": 3}
    assert set(signals["ticker"]) == {"EDG"}
    assert metrics["unpriced_tickers"] == {"NOPX": 2} and metrics["n_tickers"] == 1
    assert metrics["edge_session"] == 4 and metrics["edge_after_close"] == 1
    assert metrics["edge_non_trading_day"] == 1 and metrics["edge_no_prices"] == 2
    assert "NOPX" in (tmp_path / "out" / "report.html").read_text(encoding="utf-8")


# --- user errors say what and how to fix ---------------------------------------------------------------------

def test_user_errors_explain_the_fix(tmp_path: Path) -> None:
    feed = write_feed(tmp_path / "feed.csv", [(at(DAYS[3], 10), "AAA", NEUTRAL[0].format(t="$AAA"))])
    prices = write_prices(tmp_path / "prices.csv", {"AAA": np.zeros(len(DAYS))})
    assert "--price-col" in fails(tmp_path, feed, prices, "--price-col", "last")
    assert "--text-col" in fails(tmp_path, feed, prices, "--text-col", "headline")
    other = write_prices(tmp_path / "other.csv", {"ZZZ": np.zeros(len(DAYS))})
    message = fails(tmp_path, feed, other)
    assert "no feed ticker has prices" in message and "--price-ticker-col" in message
    late = write_prices(tmp_path / "late.csv", {"AAA": np.zeros(10)}, pd.bdate_range("2025-01-02", periods=10))
    assert "does not overlap the prices" in fails(tmp_path, feed, late)
    empty = tmp_path / "empty.csv"
    empty.write_text("created_at,ticker,tweet_id,text\n")
    assert "holds no rows" in fails(tmp_path, empty, prices)
    assert "does not exist" in fails(tmp_path, tmp_path / "missing.csv", prices)


def test_prefilled_windows_give_the_same_alerts_as_tick_by_tick(planted_run: dict[str, Any], tmp_path: Path
                                                                 ) -> None:
    """The fast path (all items applied first, rules evaluated just before each tick) equals applying the items
    tick by tick, on the planted feed (scores from the warm cache) with the shipped rules."""
    from monitor.alerts.rules import load_rules
    from monitor.config import load_settings
    from monitor.store import Store
    from pipelines.backtest.feed import load_feed
    from pipelines.backtest.run import BacktestConfig, score_items
    from pipelines.backtest.scoring import ScoreStats
    from pipelines.backtest.stream import EventTimeReplay, fired_alerts

    settings = load_settings(None)
    cfg = BacktestConfig(feed=planted_run["feed"], prices=planted_run["prices"], out=tmp_path,
                         cache_dir=planted_run["tmp"] / "cache", progress=False)
    items = load_feed(cfg.feed, ColumnMap("text", "created_at", "ticker", "tweet_id"), settings.limits).items
    stats = ScoreStats()
    scored = score_items(cfg, settings, items, stats)
    assert stats.misses == 0
    results = []
    for prefill in (True, False):
        store = Store(f"sqlite:///{tmp_path / f'{prefill}.db'}")
        store.create_schema()
        replay = EventTimeReplay(store, settings.windows, load_rules(None), cfg.step, prefill=prefill)
        replay.run(scored, progress=False)
        alerts = fired_alerts(store)
        store.dispose()
        results.append(alerts)
        assert replay.stats.mode == ("prefilled" if prefill else "interleaved")
    assert len(results[0]) >= 2
    pd.testing.assert_frame_equal(results[0], results[1])


def test_track_record_is_reported_and_saved_for_live_alerts(planted_run: dict[str, Any], tmp_path: Path) -> None:
    """Each rule's record: the planted bad news is followed by three -3% days, so the surge rule's alerts went
    its way; `--save-track-record` puts the records where live alerts read them."""
    from monitor.store import Store
    from monitor.store.track import track_records

    record = planted_run["metrics"]["track_record"]["negative-share-surge"]
    assert record["direction"] == "down" and record["n_alerts"] >= 1 and record["n_events"] >= 1
    assert record["hit_rate_5d"] == 1.0 and record["car_5d"] < -0.06
    assert set(planted_run["metrics"]["track_record"]) == {"negative-share-surge", "sentiment-drop", "volume-spike",
                                                           "negative-story-burst", "daily-sentiment-drop",
                                                           "daily-attention-spike"}
    assert planted_run["metrics"]["track_record"]["negative-story-burst"]["direction"] == "down"

    url = f"sqlite:///{tmp_path / 'live.db'}"
    args = ["backtest", "--feed", str(planted_run["feed"]), "--prices", str(planted_run["prices"]), "--out",
            str(tmp_path / "out"), "--cache-dir", str(planted_run["tmp"] / "cache"), "--quantize", "--no-progress",
            *COLUMNS, "--save-track-record"]
    result = CliRunner().invoke(cli, args, env={"FINMON_STORE_URL": url})
    assert result.exit_code == 0, result.output + repr(result.exception)
    with Store(url).engine.connect() as conn:
        saved = track_records(conn)
    assert saved["negative-share-surge"]["car_5d"] == pytest.approx(record["car_5d"])
    assert saved["negative-share-surge"]["source"] == f"backtest of {planted_run['feed'].name}"
