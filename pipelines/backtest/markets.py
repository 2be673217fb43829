"""Which market a ticker trades on, when that market closes, and its own trading calendar.

A news item counts for the session of the ticker it is about, closing in the market's own time zone: news at
15:30 Shanghai time is after the Shanghai close (15:00) and counts for the next Shanghai session, even though
New York has not opened yet. The market is read from the ticker's Yahoo suffix (monitor/entities/symbols.py);
a ticker without one, or with a suffix not listed here, is a US listing (New York, 16:00), as the backtest
assumed for every ticker before.

Closes are the end of continuous trading, local time (the closing auctions that follow a few minutes later in
London, Frankfurt, Paris and Hong Kong set the closing price, but news in those minutes can no longer be
traded on in the session). Tokyo moved its close from 15:00 to 15:30 on 5 November 2024: dates before that
use 15:00. Holidays need no table: a market's trading days are the dates on which
any of its tickers has a price (`market_days`), so news on a Shanghai holiday counts for the next day
Shanghai trades, whatever New York does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, time

import numpy as np
import pandas as pd


@dataclass(frozen=True, slots=True)
class Market:
    """A market's time zone and its close: (first date, local close) pairs, oldest first."""

    code: str
    tz: str
    closes: tuple[tuple[date, time], ...]

    def close_minutes(self, local_dates: pd.Series) -> np.ndarray:
        """Minutes after local midnight of the close in force on each local date (naive datetimes)."""
        out = np.full(len(local_dates), _minutes(self.closes[0][1]), dtype=np.float64)
        for since, close in self.closes[1:]:
            out[(local_dates >= pd.Timestamp(since)).to_numpy()] = _minutes(close)
        return out


def _minutes(at: time) -> int:
    return at.hour * 60 + at.minute


def _market(code: str, tz: str, hour: int, minute: int = 0) -> Market:
    return Market(code, tz, ((date.min, time(hour, minute)),))


US = _market("US", "America/New_York", 16)
MARKETS: dict[str, Market] = {m.code: m for m in (
    US,
    _market("CN", "Asia/Shanghai", 15),  # Shanghai and Shenzhen
    _market("HK", "Asia/Hong_Kong", 16),
    Market("JP", "Asia/Tokyo", ((date.min, time(15)), (date(2024, 11, 5), time(15, 30)))),
    _market("DE", "Europe/Berlin", 17, 30),  # XETRA
    _market("GB", "Europe/London", 16, 30),
    _market("FR", "Europe/Paris", 17, 30),
    _market("NL", "Europe/Amsterdam", 17, 30),
    _market("ES", "Europe/Madrid", 17, 30),
    _market("IT", "Europe/Rome", 17, 30),
    _market("CH", "Europe/Zurich", 17, 30),
    _market("CA", "America/Toronto", 16),
    _market("KR", "Asia/Seoul", 15, 30),
    _market("TW", "Asia/Taipei", 13, 30),
    _market("AU", "Australia/Sydney", 16),
)}
SUFFIX_MARKET = {
    "SH": "CN", "SS": "CN", "SZ": "CN", "HK": "HK", "T": "JP", "DE": "DE", "F": "DE", "L": "GB", "PA": "FR",
    "AS": "NL", "MC": "ES", "MI": "IT", "SW": "CH", "TO": "CA", "KS": "KR", "KQ": "KR", "TW": "TW", "AX": "AU",
}


def market_of(ticker: str) -> Market:
    """The market of a Yahoo-form ticker: '600519.SH' -> CN, 'SAP.DE' -> DE; 'AAPL' and 'BRK.B' -> US."""
    head, dot, suffix = str(ticker).upper().rpartition(".")
    return MARKETS[SUFFIX_MARKET.get(suffix, "US")] if dot and head else US


def market_codes(tickers: pd.Series) -> pd.Series:
    """The market code of each ticker."""
    return tickers.map(lambda t: market_of(t).code)


def market_days(prices: pd.DataFrame) -> dict[str, pd.DatetimeIndex]:
    """Each market's trading days: the dates on which any of its tickers has a price."""
    codes = market_codes(prices["ticker"])
    return {str(code): pd.DatetimeIndex(np.unique(group.to_numpy(dtype="datetime64[ns]")))
            for code, group in prices["date"].groupby(codes, sort=True)}


def calendar_for(code: str, days: pd.DatetimeIndex, calendars: Mapping[str, pd.DatetimeIndex] | None
                 ) -> pd.DatetimeIndex:
    """A market's own calendar when the prices have one, else the calendar of all prices."""
    own = calendars.get(code) if calendars else None
    return own if own is not None and len(own) else days
