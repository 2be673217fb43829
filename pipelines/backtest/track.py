"""Each rule's track record over a backtest (monitor/alerts/track.py says what the numbers mean).

A rule's direction comes from its conditions: a rising negative share or a falling sentiment metric is a
bearish rule ("down"), the opposite a bullish one ("up"); volume-only rules have none. A rule may say it
outright with the label `direction: down|up|none`.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from monitor.alerts.rules import Rule, RuleSet
from monitor.alerts.track import HORIZONS, TrackRecord

_SENTIMENT = {"sentiment_index", "mean_sentiment", "sentiment_z", "story_sentiment", "story_sentiment_z"}
_BEARISH_SHARE = {"negative_share", "story_negative_share"}


def direction(rule: Rule) -> str | None:
    """"down", "up" or None (see the module docstring)."""
    label = str(rule.labels.get("direction", "")).lower()
    if label in ("down", "up"):
        return label
    if label == "none":
        return None
    votes = set()
    for cond in rule.when:
        rising = cond.op in (">", ">=")
        if cond.metric in _BEARISH_SHARE:
            votes.add("down" if rising else "up")
        elif cond.metric == "positive_share" or cond.metric in _SENTIMENT:
            votes.add("up" if rising else "down")
    return votes.pop() if len(votes) == 1 else None


def track_records(rules: RuleSet, alerts: pd.DataFrame, events: pd.DataFrame, source: str,
                  computed_at: datetime) -> list[TrackRecord]:
    """One record per rule of `rules` (also those that never fired: a rule that stays quiet is a fact too)."""
    fired = alerts["rule"].value_counts() if len(alerts) else pd.Series(dtype=int)
    out = []
    for rule in rules.rules:
        sub = events[events["rule"] == rule.name] if len(events) else events
        way = direction(rule)
        values: dict[str, float | None] = {}
        for h in HORIZONS:
            car = sub[[f"ar_{k}" for k in range(1, h + 1)]].to_numpy(dtype=float).sum(axis=1) if len(sub) else \
                np.array([])
            values[f"car_{h}d"], values[f"t_{h}d"] = _mean_t(car)
            values[f"hit_rate_{h}d"] = _hit_rate(car, way)
        out.append(TrackRecord(rule=rule.name, source=source, computed_at=computed_at, direction=way,
                               n_alerts=int(fired.get(rule.name, 0)), n_events=len(sub), **values))
    return out


def _mean_t(car: np.ndarray) -> tuple[float | None, float | None]:
    if len(car) == 0:
        return None, None
    mean = float(car.mean())
    if len(car) < 2:
        return mean, None
    se = float(car.std(ddof=1)) / np.sqrt(len(car))
    return mean, (mean / se if se > 0 else None)


def _hit_rate(car: np.ndarray, way: str | None) -> float | None:
    if way is None or len(car) == 0:
        return None
    return float(np.mean(car < 0)) if way == "down" else float(np.mean(car > 0))
