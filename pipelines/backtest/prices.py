"""Daily prices (long format) for a backtest, the trading calendar, and mapping news times to sessions.

A news item belongs to the session whose close is the first one at or after it: news during a session or
before the open counts for that day's close, news after the close or on a non-trading day counts for the
next session. The close is that of the ticker's market in its own time zone (markets.py: 16:00 New York,
15:00 Shanghai, 17:30 Frankfurt, ...), and the next session is the next date its market has prices for.
Times not about one ticker (market-wide alerts) use New York. The calendar is the set of dates present in
the price files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from monitor.errors import SourceError
from monitor.sources.files import read_table
from pipelines.backtest.errors import BacktestError
from pipelines.backtest.markets import MARKETS, US, Market, calendar_for, market_codes


@dataclass(frozen=True, slots=True)
class PriceColumns:
    """Which columns of the price files hold the date, the ticker and the (adjusted) close."""

    date: str = "date"
    ticker: str = "ticker"
    price: str | None = None  # None: adj_close if present, else close


def load_prices(path: str | Path, cols: PriceColumns) -> pd.DataFrame:
    """Long frame `date, ticker, close` sorted by ticker and date; bad rows dropped, errors explained."""
    try:
        raw = read_table(path)
    except SourceError as exc:
        raise BacktestError(f"prices: {exc}") from exc
    price_col = _price_column(raw, cols, path)
    frame = pd.DataFrame({
        "date": _dates(raw[cols.date]),
        "ticker": raw[cols.ticker].astype(str).str.strip().str.lstrip("$").str.upper(),
        "close": pd.to_numeric(raw[price_col], errors="coerce"),
    })
    frame = frame.dropna()
    frame = frame[frame["close"] > 0]
    if frame.empty:
        raise BacktestError(f"prices in {path} have no usable rows: check --price-date-col (YYYY-MM-DD dates) "
                            f"and --price-col {price_col!r} (positive numbers)")
    frame = frame.drop_duplicates(["ticker", "date"], keep="last")
    return frame.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)


def _dates(values: pd.Series) -> pd.Series:
    """Calendar dates (naive, ns); a time of day or a zone in the file is dropped, not shifted."""
    parsed = pd.to_datetime(values.astype(str).str.slice(0, 10), errors="coerce", format="%Y-%m-%d")
    return parsed.astype("datetime64[ns]")


def _price_column(raw: pd.DataFrame, cols: PriceColumns, path: str | Path) -> str:
    columns = [str(c) for c in raw.columns]
    price = cols.price or ("adj_close" if "adj_close" in columns else "close")
    for flag, name in (("--price-date-col", cols.date), ("--price-ticker-col", cols.ticker),
                       ("--price-col", price)):
        if name not in columns:
            raise BacktestError(f"prices in {path} have no column {name!r} (columns: {columns}); "
                                f"name it with {flag}")
    return price


def calendar(prices: pd.DataFrame) -> pd.DatetimeIndex:
    """Trading days: every date on which some ticker has a price."""
    return pd.DatetimeIndex(np.unique(prices["date"].to_numpy(dtype="datetime64[ns]")))


def local_parts(times: pd.Series, market: Market) -> tuple[pd.Series, pd.Series]:
    """Each UTC time's local date (naive) on `market`, and whether it is after that day's close."""
    local = pd.to_datetime(times, utc=True).dt.tz_convert(market.tz)
    date = local.dt.tz_localize(None).dt.normalize().astype("datetime64[ns]")
    minutes = local.dt.hour * 60 + local.dt.minute + local.dt.second / 60 + local.dt.microsecond / 6e7
    return date, minutes > market.close_minutes(date)


def session_of(times: pd.Series, days: pd.DatetimeIndex, tickers: pd.Series | None = None,
               calendars: Mapping[str, pd.DatetimeIndex] | None = None) -> pd.Series:
    """The trading day each UTC time counts for (NaT past the last day of prices): on New York's close and
    `days`, or, with `tickers` (aligned with `times`), on each ticker's market and its calendar."""
    if tickers is None:
        return _sessions(times, days, US)
    out = pd.Series(pd.NaT, index=times.index, dtype="datetime64[ns]")
    for code, index in times.groupby(market_codes(tickers), sort=True).groups.items():
        out[index] = _sessions(times[index], calendar_for(str(code), days, calendars), MARKETS[str(code)])
    return out


def _sessions(times: pd.Series, days: pd.DatetimeIndex, market: Market) -> pd.Series:
    date, after_close = local_parts(times, market)
    day = date + pd.to_timedelta(after_close.astype(int), unit="D")
    values = day.to_numpy(dtype="datetime64[ns]")
    pos = days.searchsorted(values, side="left")  # the first trading day on or after `day`
    out = pd.Series(pd.NaT, index=times.index, dtype="datetime64[ns]")
    # before the first price date there is no previous close to measure from: outside the history
    valid = (pos < len(days)) & (values >= days[0].to_datetime64()) if len(days) else pos < 0
    out[valid] = days[pos[valid]]
    return out


def daily_returns(prices: pd.DataFrame) -> pd.DataFrame:
    """Wide frame (date x ticker) of close-to-close returns on each ticker's own trading days."""
    wide = prices.pivot(index="date", columns="ticker", values="close").sort_index()
    returns = pd.DataFrame(index=wide.index, columns=wide.columns, dtype=float)
    for ticker in wide.columns:
        series = wide[ticker].dropna()
        returns.loc[series.index, ticker] = series.pct_change().to_numpy()
    return returns


def forward_returns(prices: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Wide frame: return from the close of day D to the close `horizon` trading days later (per ticker)."""
    wide = prices.pivot(index="date", columns="ticker", values="close").sort_index()
    out = pd.DataFrame(index=wide.index, columns=wide.columns, dtype=float)
    for ticker in wide.columns:
        series = wide[ticker].dropna()
        out.loc[series.index, ticker] = (series.shift(-horizon) / series - 1.0).to_numpy()
    return out
