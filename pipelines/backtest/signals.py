"""Daily per-ticker signals and their evaluation against forward returns (alphalens-style).

For each trading day D and ticker: the mean sentiment score (P(positive) - P(negative)) and the number of
items of the news counted for D, against the return from the close of D to the close of D+1 and D+5.
Per day, the rank IC is the Spearman correlation across tickers; its mean, t-stat and hit rate (share of days
with IC > 0) summarise it. Each day the tickers are also cut into sentiment quintiles; the long-short spread is
the mean daily return of the top minus the bottom quintile.

The story-aware signal (`story_signals`) is the one the windows count: per day and ticker the novelty-weighted
mean score of the items linked to the ticker at or above the relevance threshold (the `ticker:` keys the
windows counted), and the number of distinct stories; sixty copies of one tweet weigh about as much as four
distinct ones, and a ticker merely listed among eight cashtags not at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from monitor.records import ScoredItem
from pipelines.backtest.markets import market_days
from pipelines.backtest.prices import forward_returns, session_of

MIN_NAMES = 5  # a cross-section needs at least this many tickers for a rank IC or quintiles
QUANTILES = 5
HORIZONS = (1, 5)


@dataclass
class TickerCoverage:
    """Feed tickers with and without prices (the latter are reported and skipped)."""

    priced: list[str]
    unpriced: dict[str, int]  # ticker -> items about it


def item_frame(items: list[ScoredItem]) -> pd.DataFrame:
    """One row per (item, ticker named in the feed) with its time and sentiment score."""
    rows = [(s.item.id, s.item.published_at, t, s.sentiment_score) for s in items for t in s.item.tickers]
    frame = pd.DataFrame(rows, columns=["item_id", "published_at", "ticker", "sentiment"])
    frame["published_at"] = pd.to_datetime(frame["published_at"], utc=True)
    return frame


def coverage(frame: pd.DataFrame, prices: pd.DataFrame) -> TickerCoverage:
    known = set(prices["ticker"])
    counts = frame.groupby("ticker")["item_id"].nunique()
    return TickerCoverage(priced=sorted(t for t in counts.index if t in known),
                          unpriced={t: int(n) for t, n in counts.items() if t not in known})


def daily_signals(frame: pd.DataFrame, prices: pd.DataFrame, days: pd.DatetimeIndex) -> pd.DataFrame:
    """`date, ticker, n_items, sentiment, fwd_1d, fwd_5d, quintile` for priced tickers, in date/ticker order."""
    priced = _sessions(frame, prices, days)
    daily = (priced.groupby(["date", "ticker"], sort=True)
             .agg(n_items=("item_id", "nunique"), sentiment=("sentiment", "mean")).reset_index())
    return _with_returns(daily, prices)


def story_frame(rows: list[tuple[str, object, str, float, int]]) -> pd.DataFrame:
    """(item id, event time, ticker, score, novelty) per ticker key an item was counted in."""
    frame = pd.DataFrame(rows, columns=["item_id", "published_at", "ticker", "sentiment", "novelty"])
    frame["published_at"] = pd.to_datetime(frame["published_at"], utc=True)
    return frame


def story_signals(frame: pd.DataFrame, prices: pd.DataFrame, days: pd.DatetimeIndex) -> pd.DataFrame:
    """The story-aware daily signals (module docstring), in the columns of `daily_signals`: `n_items` holds the
    distinct stories and `sentiment` the novelty-weighted mean score."""
    priced = _sessions(frame, prices, days)
    priced = priced.assign(weighted=priced["sentiment"] * priced["novelty"],
                           new=(priced["novelty"] >= 100).astype(int))
    grouped = priced.groupby(["date", "ticker"], sort=True).agg(
        n_items=("new", "sum"), weighted=("weighted", "sum"), weight=("novelty", "sum")).reset_index()
    grouped = grouped[grouped["weight"] > 0]
    daily = grouped.assign(sentiment=grouped["weighted"] / grouped["weight"])[
        ["date", "ticker", "n_items", "sentiment"]].reset_index(drop=True)
    return _with_returns(daily, prices)


def _sessions(frame: pd.DataFrame, prices: pd.DataFrame, days: pd.DatetimeIndex) -> pd.DataFrame:
    """The rows about priced tickers, with the session (`date`) each counts for."""
    priced = frame[frame["ticker"].isin(set(prices["ticker"]))].copy()
    priced["date"] = session_of(priced["published_at"], days, priced["ticker"], market_days(prices))
    return priced.dropna(subset=["date"])


def _with_returns(daily: pd.DataFrame, prices: pd.DataFrame) -> pd.DataFrame:
    for h in HORIZONS:
        fwd = forward_returns(prices, h).stack().rename(f"fwd_{h}d")
        fwd.index = fwd.index.set_names(["date", "ticker"])
        daily = daily.merge(fwd.reset_index(), on=["date", "ticker"], how="left")
    daily["quintile"] = _quintiles(daily)
    return daily


def _quintiles(daily: pd.DataFrame) -> pd.Series:
    """Per day, 1 (most negative) to 5 (most positive); ties broken by ticker order (deterministic)."""
    out = pd.Series(np.nan, index=daily.index)
    for _, day in daily.groupby("date", sort=True):
        if len(day) >= MIN_NAMES:
            ranks = day["sentiment"].rank(method="first")
            out[day.index] = np.ceil(ranks * QUANTILES / len(day))
    return out.astype("Int64")


def daily_ic(daily: pd.DataFrame, factor: str, target: str) -> pd.Series:
    """Spearman rank IC per day between `factor` and `target` (days with too few names skipped)."""
    usable = daily.dropna(subset=[factor, target])
    values = {}
    for date, day in usable.groupby("date", sort=True):
        if len(day) < MIN_NAMES or day[factor].nunique() < 2 or day[target].nunique() < 2:
            continue
        values[date] = day[factor].rank().corr(day[target].rank())
    return pd.Series(values, dtype=float, name=f"ic_{factor}_{target}")


def summarize_ic(ic: pd.Series) -> dict[str, float | int | None]:
    """Mean, t-stat (mean / (std / sqrt(n))), hit rate (share of days with IC > 0) and day count."""
    n = int(ic.notna().sum())
    if n < 2:
        return {"mean": None, "tstat": None, "hit_rate": None, "days": n}
    std = float(ic.std(ddof=1))
    return {"mean": float(ic.mean()), "tstat": float(ic.mean() / (std / np.sqrt(n))) if std > 0 else None,
            "hit_rate": float((ic > 0).mean()), "days": n}


def quintile_returns(daily: pd.DataFrame, target: str) -> pd.DataFrame:
    """Per day and quintile the mean forward return (wide: date x quintile), days with all five only."""
    usable = daily.dropna(subset=["quintile", target])
    table = usable.pivot_table(index="date", columns="quintile", values=target, aggfunc="mean")
    return table.dropna()


def long_short(by_quintile: pd.DataFrame) -> pd.Series:
    """Daily top-minus-bottom quintile return."""
    if by_quintile.empty:
        return pd.Series(dtype=float)
    return by_quintile[QUANTILES] - by_quintile[1]
