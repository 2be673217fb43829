"""The backtest's session rule per market (pipelines/backtest/markets.py): news counts for the session of its
ticker's market, on that market's close in its own time zone and its own trading days."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.backtest.edges import edge_kind
from pipelines.backtest.markets import market_days, market_of
from pipelines.backtest.prices import session_of
from pipelines.backtest.signals import daily_signals
from tests.test_backtest import DAYS, NEGATIVE, NEUTRAL, backtest, write_feed

UTC_DAYS = pd.DatetimeIndex(DAYS)


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def sessions(rows: list[tuple[str, str]], days: pd.DatetimeIndex = UTC_DAYS,
             calendars: dict[str, pd.DatetimeIndex] | None = None) -> list[str]:
    times = pd.Series([utc(t) for t, _ in rows])
    tickers = pd.Series([s for _, s in rows])
    return [d.strftime("%Y-%m-%d") if not pd.isna(d) else "" for d in session_of(times, days, tickers, calendars)]


@pytest.mark.parametrize(
    ("ticker", "code"),
    [("600519.SH", "CN"), ("000001.SZ", "CN"), ("600519.SS", "CN"), ("0700.HK", "HK"), ("SAP.DE", "DE"),
     ("HSBA.L", "GB"), ("7203.T", "JP"), ("MC.PA", "FR"), ("AAPL", "US"), ("BRK.B", "US"), ("XYZ.QQ", "US")],
)
def test_market_of_ticker(ticker: str, code: str) -> None:
    assert market_of(ticker).code == code


def test_each_market_closes_in_its_own_time_zone() -> None:
    """Tuesday 5 March 2024 (no DST anywhere yet): one time just before and one just after each close."""
    rows = [
        ("2024-03-05T06:59:59Z", "600519.SH"), ("2024-03-05T07:00:01Z", "600519.SH"),  # 15:00 Shanghai
        ("2024-03-05T07:59:00Z", "0700.HK"), ("2024-03-05T08:01:00Z", "0700.HK"),      # 16:00 Hong Kong
        ("2024-03-05T16:29:00Z", "SAP.DE"), ("2024-03-05T16:31:00Z", "SAP.DE"),        # 17:30 Berlin (CET)
        ("2024-03-05T16:29:00Z", "HSBA.L"), ("2024-03-05T16:31:00Z", "HSBA.L"),        # 16:30 London (GMT)
        ("2024-03-05T16:29:00Z", "MC.PA"), ("2024-03-05T16:31:00Z", "MC.PA"),          # 17:30 Paris (CET)
        ("2024-03-05T20:59:00Z", "AAPL"), ("2024-03-05T21:01:00Z", "AAPL"),            # 16:00 New York (EST)
    ]
    assert sessions(rows) == ["2024-03-05", "2024-03-06"] * 6


def test_summer_time_moves_the_utc_close() -> None:
    """Berlin and New York both on summer time in July: 17:30 CEST is 15:30 UTC, 16:00 EDT is 20:00 UTC."""
    days = pd.bdate_range("2024-07-01", periods=10)
    rows = [("2024-07-02T15:29:00Z", "SAP.DE"), ("2024-07-02T15:31:00Z", "SAP.DE"),
            ("2024-07-02T19:59:00Z", "AAPL"), ("2024-07-02T20:01:00Z", "AAPL")]
    assert sessions(rows, days) == ["2024-07-02", "2024-07-03"] * 2


def test_tokyo_closes_at_15_30_since_november_2024() -> None:
    days = pd.bdate_range("2024-10-01", periods=40)
    rows = [("2024-10-01T06:15:00Z", "7203.T"),  # 15:15 Tokyo, when the close was 15:00: next session
            ("2024-11-06T06:15:00Z", "7203.T"),  # 15:15 Tokyo after the change: the same session
            ("2024-11-06T06:31:00Z", "7203.T")]  # 15:31: after the new close
    assert sessions(rows, days) == ["2024-10-02", "2024-11-06", "2024-11-07"]


def test_after_close_news_on_a_shanghai_ticker_lands_on_the_next_shanghai_session() -> None:
    """The same UTC instant is after the Shanghai close and before the New York open; a Shanghai holiday is a
    New York trading day, and Shanghai's next session is the day after it."""
    cn_days = UTC_DAYS.drop(pd.Timestamp("2024-03-06"))  # Shanghai closed on Wednesday 6 March
    calendars = {"CN": cn_days, "US": UTC_DAYS}
    rows = [("2024-03-05T07:30:00Z", "600519.SH"), ("2024-03-05T07:30:00Z", "AAPL")]
    assert sessions(rows, UTC_DAYS, calendars) == ["2024-03-07", "2024-03-05"]
    assert sessions(rows, UTC_DAYS) == ["2024-03-06", "2024-03-05"]  # without a calendar of its own
    assert session_of(pd.Series([utc("2024-03-05T07:30:00Z")]), UTC_DAYS).iloc[0] == pd.Timestamp("2024-03-05")


def _prices() -> pd.DataFrame:
    """600519.SH without Wednesday 6 March (a Shanghai holiday), AAPL every day; closes rise 1% a day."""
    rows = [{"date": d, "ticker": t, "close": 100 * 1.01**i} for t in ("600519.SH", "AAPL")
            for i, d in enumerate(UTC_DAYS) if not (t == "600519.SH" and d == pd.Timestamp("2024-03-06"))]
    return pd.DataFrame(rows)


def test_market_days_and_daily_signals_use_the_tickers_market() -> None:
    prices = _prices()
    calendars = market_days(prices)
    assert len(calendars["US"]) == len(UTC_DAYS) and len(calendars["CN"]) == len(UTC_DAYS) - 1
    frame = pd.DataFrame({
        "item_id": ["a", "b", "c"], "ticker": ["600519.SH", "AAPL", "600519.SH"], "sentiment": [-0.5, 0.2, 0.1],
        "published_at": [utc("2024-03-05T07:30:00Z"), utc("2024-03-05T07:30:00Z"), utc("2024-03-05T06:00:00Z")],
    })
    daily = daily_signals(frame, prices, UTC_DAYS)
    got = {(r.ticker, r.date.strftime("%Y-%m-%d")): r.n_items for r in daily.itertuples()}
    assert got == {("600519.SH", "2024-03-05"): 1, ("600519.SH", "2024-03-07"): 1, ("AAPL", "2024-03-05"): 1}
    kinds = edge_kind(frame["published_at"], UTC_DAYS, frame["ticker"], calendars)
    assert list(kinds) == ["after_close", "session", "session"]


def test_backtest_assigns_shanghai_news_to_shanghai_sessions(tmp_path: Path) -> None:
    """`finmon backtest` end to end: after-close news about 600519.SH counts for the next Shanghai session;
    news at the same instant about a US ticker for New York's same-day session."""
    rows = [("2024-03-05T07:30:00Z", "600519.SH", NEGATIVE[0].format(t="600519.SH")),  # 15:30 Shanghai
            ("2024-03-05T07:30:00Z", "EDG", NEGATIVE[0].format(t="$EDG")),              # 02:30 New York
            ("2024-03-05T06:00:00Z", "600519.SH", NEUTRAL[0].format(t="600519.SH"))]    # 14:00 Shanghai
    feed = write_feed(tmp_path / "feed.csv", rows)
    prices = _prices().replace({"ticker": {"AAPL": "EDG"}})
    prices["date"] = prices["date"].dt.strftime("%Y-%m-%d")
    prices.to_csv(tmp_path / "prices.csv", index=False)
    metrics = backtest(feed, tmp_path / "prices.csv", tmp_path / "out", tmp_path / "cache")
    signals = pd.read_parquet(tmp_path / "out" / "signals.parquet")
    got = {(r.ticker, r.date.strftime("%Y-%m-%d")): r.n_items for r in signals.itertuples()}
    assert got == {("600519.SH", "2024-03-05"): 1, ("600519.SH", "2024-03-07"): 1, ("EDG", "2024-03-05"): 1}
    assert metrics["edge_after_close"] == 1 and metrics["edge_session"] == 2
    one_day = signals.set_index(["ticker", "date"])["fwd_1d"]
    assert one_day[("600519.SH", pd.Timestamp("2024-03-07"))] == pytest.approx(0.01)
    assert not np.isnan(one_day[("EDG", pd.Timestamp("2024-03-05"))])
