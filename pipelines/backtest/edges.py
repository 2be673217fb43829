"""The edges of a backtest: does the feed meet the prices at all, and where did each item's time land?

`check_overlap` runs before the model: a feed whose tickers or dates miss the prices entirely is a user
error, explained with what was found on each side. `edge_table` reports, for the report and metrics, how
many item-ticker rows fell on a trading day before the close, after the close (next session), on a
non-trading day (next session), outside the price history (dropped), or about a ticker without prices.
"""

from __future__ import annotations

import pandas as pd

from monitor.records import RawItem
from pipelines.backtest.errors import BacktestError
from pipelines.backtest.prices import CLOSE_HOUR, NEW_YORK, session_of
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
    times = pd.Series([i.published_at for i in items if set(i.tickers) & priced])
    sessions = session_of(times, days)
    if sessions.isna().all():
        raise BacktestError(f"the feed ({times.min():%Y-%m-%d} to {times.max():%Y-%m-%d}) does not overlap the "
                            f"prices ({days[0]:%Y-%m-%d} to {days[-1]:%Y-%m-%d}); give prices for the feed's dates")


def _sample(values: set[str], n: int = 8) -> str:
    shown = sorted(values)[:n]
    return f"{shown}{' ...' if len(values) > n else ''} ({len(values)} in all)"


def edge_kind(published: pd.Series, days: pd.DatetimeIndex) -> pd.Series:
    """Where each UTC time falls relative to the trading calendar (see the module docstring)."""
    local = pd.to_datetime(published, utc=True).dt.tz_convert(NEW_YORK)
    date = local.dt.tz_localize(None).dt.normalize().astype("datetime64[ns]")
    trading = date.isin(days)
    minutes = local.dt.hour * 60 + local.dt.minute + (local.dt.second + local.dt.microsecond / 1e6) / 60
    kind = pd.Series("session", index=published.index)
    kind[trading & (minutes > CLOSE_HOUR * 60)] = "after_close"
    kind[~trading] = "non_trading_day"
    kind[session_of(published, days).isna()] = "outside_prices"
    return kind


def edge_table(frame: pd.DataFrame, days: pd.DatetimeIndex, cover: TickerCoverage) -> pd.DataFrame:
    """Counts of item-ticker rows per edge kind, plus one row per ticker without prices."""
    priced = frame[frame["ticker"].isin(set(cover.priced))]
    counts = edge_kind(priced["published_at"], days).value_counts()
    rows = [{"edge": kind, "ticker": "", "rows": int(counts.get(kind, 0))}
            for kind in ("session", "after_close", "non_trading_day", "outside_prices")]
    rows += [{"edge": "no_prices", "ticker": t, "rows": n} for t, n in sorted(cover.unpriced.items())]
    return pd.DataFrame(rows, columns=["edge", "ticker", "rows"])


def edge_counts(edges: pd.DataFrame) -> dict[str, int]:
    """The edge table as metrics: rows per kind (no_prices summed over tickers)."""
    return {f"edge_{k}": int(v) for k, v in edges.groupby("edge", sort=True)["rows"].sum().items()}
