"""Event study of the alerts: cumulative abnormal returns around each alert about a priced ticker.

Day 0 is the session the alert counts for (its firing time mapped like news: after the close or on a holiday
means the next session). The abnormal return of a day is the ticker's return minus the equal-weight mean
return of every priced ticker that day; CAR(tau) sums them from day -5 to tau. Curves are averaged over events
with 95% bands (mean +- 1.96 standard errors), overall and split by rule and by severity.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pipelines.backtest.prices import daily_returns, session_of

PRE, POST = 5, 10
OFFSETS = list(range(-PRE, POST + 1))
Z95 = 1.96


def abnormal_returns(prices: pd.DataFrame) -> pd.DataFrame:
    """Wide (date x ticker) daily return minus the equal-weight universe return of that day."""
    returns = daily_returns(prices)
    return returns.sub(returns.mean(axis=1), axis=0)


def alert_events(alerts: pd.DataFrame, abnormal: pd.DataFrame,
                 calendars: dict[str, pd.DatetimeIndex] | None = None) -> pd.DataFrame:
    """One row per alert on a priced ticker with a full -5..+10 window: its rule, severity, day 0 and ARs."""
    columns = ["alert_id", "rule", "severity", "ticker", "day0", *[f"ar_{k}" for k in OFFSETS]]
    if alerts.empty:
        return pd.DataFrame(columns=columns)
    tickers = alerts["key"].str.extract(r"^ticker:(.+)$")[0]
    keep = alerts[tickers.isin(set(abnormal.columns))].assign(ticker=tickers)
    days = pd.DatetimeIndex(abnormal.index)
    keep = keep.assign(day0=session_of(keep["fired_at"], days, keep["ticker"], calendars))
    rows = [row for row in (_event_row(r, abnormal, days) for r in keep.itertuples()) if row is not None]
    return pd.DataFrame(rows, columns=columns)


def _event_row(alert: Any, abnormal: pd.DataFrame, days: pd.DatetimeIndex) -> list[object] | None:
    day0 = alert.day0
    if pd.isna(day0):
        return None
    pos = int(days.searchsorted(day0))
    if pos - PRE < 0 or pos + POST >= len(days):
        return None  # not enough history or future around the event
    ticker = alert.ticker
    ars = abnormal[ticker].iloc[pos - PRE:pos + POST + 1].fillna(0.0).to_list()  # no trade that day: no AR
    return [alert.id, alert.rule, alert.severity, ticker, day0, *ars]


def car_curves(events: pd.DataFrame) -> pd.DataFrame:
    """Mean CAR and its 95% band per offset, for all events and per rule and severity."""
    groups = [("all", "all", events)]
    for field in ("rule", "severity"):
        groups += [(field, str(value), sub) for value, sub in events.groupby(field, sort=True)]
    frames = [_curve(sub).assign(group=field, value=value) for field, value, sub in groups if len(sub)]
    cols = ["group", "value", "offset", "n", "car_mean", "car_lo", "car_hi"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def _curve(events: pd.DataFrame) -> pd.DataFrame:
    car = events[[f"ar_{k}" for k in OFFSETS]].to_numpy(dtype=float).cumsum(axis=1)
    n = car.shape[0]
    mean = car.mean(axis=0)
    se = car.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.full(len(OFFSETS), np.nan)
    return pd.DataFrame({"offset": OFFSETS, "n": n, "car_mean": mean, "car_lo": mean - Z95 * se,
                         "car_hi": mean + Z95 * se})


def event_metrics(events: pd.DataFrame) -> dict[str, float | int | None]:
    """Mean abnormal return summed before (-5..-1), on (0) and after (+1..+5, +1..+10) the alert day."""
    if events.empty:
        return {"n_events": 0, "car_pre_5d": None, "ar_day0": None, "car_post_5d": None, "car_post_10d": None}

    def window(lo: int, hi: int) -> float:
        return float(events[[f"ar_{k}" for k in range(lo, hi + 1)]].sum(axis=1).mean())

    return {"n_events": len(events), "car_pre_5d": window(-PRE, -1), "ar_day0": window(0, 0),
            "car_post_5d": window(1, 5), "car_post_10d": window(1, POST)}
