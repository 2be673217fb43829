"""An alert rule's track record: how often it fired in a backtest and what prices did after it (issue #13).

`finmon backtest --save-track-record` measures it (pipelines/backtest/track.py) and stores one record per rule
(monitor/store/track.py); live alerts show their rule's record in notifications, `finmon alerts list --json`
(`track_record`) and on the dashboard, so a desk can tell a rule that has led prices from one that has not.

- `hit_rate_1d` / `hit_rate_5d`: the share of alert events whose abnormal return over the next 1 / 5 sessions
  after the alert session (CAR over days +1..+h) went the rule's way (`direction` down: below 0; up: above 0);
  None for a rule without a direction (a volume spike).
- `car_1d` / `car_5d`: the mean of those CARs (signed, fractions: -0.008 is -0.8%), `t_1d` / `t_5d` their
  t-statistics (mean / standard error; None below 2 events).
- `n_alerts`: alerts the rule fired in the backtest; `n_events`: those about a priced ticker with a full price
  window around them (what the rates are measured on).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

HORIZONS = (1, 5)


@dataclass(frozen=True, slots=True)
class TrackRecord:
    """One rule's record over one backtest (see the module docstring)."""

    rule: str
    source: str  # what it was measured on: the backtest's feed and price files
    computed_at: datetime
    direction: str | None  # "down", "up" or None
    n_alerts: int
    n_events: int
    hit_rate_1d: float | None
    hit_rate_5d: float | None
    car_1d: float | None
    car_5d: float | None
    t_1d: float | None
    t_5d: float | None

    @classmethod
    def from_mapping(cls, row: Any) -> TrackRecord:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["computed_at"] = self.computed_at.isoformat().replace("+00:00", "Z")
        return out

    def describe(self) -> str:
        """One line for a notification: what the rule's alerts were followed by."""
        head = f"track record ({self.source}): fired {self.n_alerts}x, {self.n_events} priced events"
        if self.n_events == 0:
            return head + "; no price history to judge it"
        parts = []
        for h in HORIZONS:
            car, t, hit = getattr(self, f"car_{h}d"), getattr(self, f"t_{h}d"), getattr(self, f"hit_rate_{h}d")
            text = f"{h}d CAR {_pct(car)}" + (f" (t={t:.1f})" if t is not None else "")
            if hit is not None:
                text += f", {hit:.0%} {'down' if self.direction == 'down' else 'up'}"
            parts.append(text)
        return head + "; " + "; ".join(parts)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:+.2f}%"
