"""The edges of a backtest: does the feed meet the prices at all, and where did each item's time land?

`check_overlap` runs before the model: a feed whose tickers or dates miss the prices entirely is a user
error, explained with what was found on each side. `edge_table` reports, for the report and metrics, how
many item-ticker rows fell on a trading day before the close, after the close (next session), on a
non-trading day (next session), outside the price history (dropped), or about a ticker without prices, each
on its ticker's market: its close in its time zone and its own trading days (markets.py).
"""

from __future__ import annotations

import pandas as pd

from monitor.records import RawItem
from pipelines.backtest.errors import BacktestError
from pipelines.backtest.markets import MARKETS, calendar_for, market_codes, market_days
from pipelines.backtest.prices import local_parts, session_of
from pipelines.backtest.signals import TickerCoverage


def check_overlap(items: list[RawItem], prices: pd.DataFrame, days: pd.DatetimeIndex) -> None:
    feed_tickers = {t for item in items for t in item.tickers}
    if not feed_tickers:
        raise BacktestError("no item in the feed names a ticker; map the ticker column with --ticker-col "
                            "(one symbol, or a comma-separated list, per row)")
    priced = feed_tickers & set(prices["ticker"])
    if not priced:
        raise BacktestError(f"no feed ticker has prices: feed {_sample(feed_tickers)}, prices "
                            f"{_sample(set(prices['ticker']))}; check --ticker-col and --price-ticker-col")
    rows = [(i.published_at, t) for i in items for t in i.tickers if t in priced]
    times, tickers = pd.Series([r[0] for r in rows]), pd.Series([r[1] for r in rows])
    sessions = session_of(times, days, tickers, market_days(prices))
    if sessions.isna().all():
        raise BacktestError(f"the feed ({times.min():%Y-%m-%d} to {times.max():%Y-%m-%d}) does not overlap the "
                            f"prices ({days[0]:%Y-%m-%d} to {days[-1]:%Y-%m-%d}); give prices for the feed's dates")


def _sample(values: set[str], n: int = 8) -> str:
    shown = sorted(values)[:n]
    return f"{shown}{' ...' if len(values) > n else ''} ({len(values)} in all)"


def edge_kind(published: pd.Series, days: pd.DatetimeIndex, tickers: pd.Series,
              calendars: dict[str, pd.DatetimeIndex]) -> pd.Series:
    """Where each UTC time falls relative to its ticker's market and calendar (see the module docstring)."""
    kind = pd.Series("session", index=published.index)
    for code, index in published.groupby(market_codes(tickers), sort=True).groups.items():
        own = calendar_for(str(code), days, calendars)
        date, after_close = local_parts(published[index], MARKETS[str(code)])
        trading = date.isin(own)
        kind[index[(trading & after_close).to_numpy()]] = "after_close"
        kind[index[(~trading).to_numpy()]] = "non_trading_day"
    kind[session_of(published, days, tickers, calendars).isna()] = "outside_prices"
    return kind


def edge_table(frame: pd.DataFrame, prices: pd.DataFrame, days: pd.DatetimeIndex, cover: TickerCoverage
               ) -> pd.DataFrame:
    """Counts of item-ticker rows per edge kind, plus one row per ticker without prices."""
    priced = frame[frame["ticker"].isin(set(cover.priced))]
    counts = edge_kind(priced["published_at"], days, priced["ticker"], market_days(prices)).value_counts()
    rows = [{"edge": kind, "ticker": "", "rows": int(counts.get(kind, 0))}
            for kind in ("session", "after_close", "non_trading_day", "outside_prices")]
    rows += [{"edge": "no_prices", "ticker": t, "rows": n} for t, n in sorted(cover.unpriced.items())]
    return pd.DataFrame(rows, columns=["edge", "ticker", "rows"])


def edge_counts(edges: pd.DataFrame) -> dict[str, int]:
    """The edge table as metrics: rows per kind (no_prices summed over tickers)."""
    return {f"edge_{k}": int(v) for k, v in edges.groupby("edge", sort=True)["rows"].sum().items()}
