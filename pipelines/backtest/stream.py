"""Replay scored items through the live windows and alert code in event time, on a throw-away store.

The clock is the feed's own time, stepped in multiples of `step` (UTC-epoch aligned, like the windows); the
real `AlertEvaluator` runs at `t - 1 microsecond` for each tick `t`, the last instant of the step, so that a
window ending at `t` is complete yet still in view for one more step (a `for: 5min` rule on a 5-minute window
can fire, as it does live where evaluation runs every few seconds). Two equivalent ways to feed the real
`WindowAggregator`:

- interleaved (always exact): before evaluating at `t - 1 us`, apply every item with event time before `t`;
  the rules see exactly the windows the live monitor would have had then, never a later item;
- prefilled (the fast path, used when every rule reads a tumbling window whose size divides `step`): apply
  items ahead of the clock, `PREFILL_AHEAD` at a time. The windows in view at `t - 1 us` are the one ending
  at `t` and earlier ones; none holds an item from `t` on, and a window's metrics and z-score depend only on
  itself and earlier windows, so the rules see the same windows as interleaved. It costs one aggregate transaction per
  `PREFILL_AHEAD` items instead of one per non-empty step (tests/test_backtest.py checks both agree).

Ticks where nothing can change are skipped: while no alert is pending or firing, the clock jumps to the tick
after the next item (see `_following`). One partition in event order means no late items.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
from tqdm import tqdm

from monitor.alerts.lifecycle import AlertEvaluator
from monitor.alerts.rules import RuleSet
from monitor.clock import INSTANT, next_tick
from monitor.config import WindowSettings
from monitor.records import ScoredItem
from monitor.store import Store
from monitor.store.alerts import list_alerts
from monitor.windows import parse_spec
from monitor.windows.aggregator import Delivery, WindowAggregator

TOPIC = "backtest.scored"
ALERT_COLUMNS = ["id", "rule", "severity", "key", "state", "started_at", "fired_at", "resolved_at", "summary"]
PREFILL_AHEAD = 500  # items applied beyond the current tick per aggregate transaction on the fast path


@dataclass
class StreamStats:
    """How much event-time work the replay did, and how."""

    ticks: int = 0
    batches: int = 0
    transitions: int = 0
    mode: str = ""


def rule_windows(cfg: WindowSettings, rules: RuleSet) -> WindowSettings:
    """Only the window sizes some rule reads: the others cannot change an alert and cost time."""
    needed = list(dict.fromkeys(rule.window for rule in rules.rules))
    return cfg.model_copy(update={"sizes": tuple(needed)})


def can_prefill(rules: RuleSet, step: timedelta) -> bool:
    """True when every rule window is tumbling and ends on every tick (see the module docstring)."""
    step_us = step // INSTANT
    specs = [parse_spec(rule.window) for rule in rules.rules]
    return all(spec.tumbling and step_us % spec.size_us == 0 for spec in specs)


class EventTimeReplay:
    """Feeds items to the aggregator and evaluates the rules tick by tick."""

    def __init__(self, store: Store, cfg: WindowSettings, rules: RuleSet, step: timedelta,
                 prefill: bool | None = None) -> None:
        """`prefill=None` picks the fast path when it is exact; False forces the interleaved one (tests)."""
        self.aggregator = WindowAggregator(store, rule_windows(cfg, rules), TOPIC)
        self.evaluator = AlertEvaluator(store, rules)
        self.step, self.max_batch = step, cfg.max_batch
        if prefill and not can_prefill(rules, step):
            raise ValueError("prefill needs tumbling rule windows whose sizes divide the step")
        self.prefill = can_prefill(rules, step) if prefill is None else prefill
        self.active: set[tuple[str, str]] = set()
        self.stats = StreamStats(mode="prefilled" if self.prefill else "interleaved")

    def run(self, items: Sequence[ScoredItem], progress: bool = True) -> StreamStats:
        if not self.evaluator.rules.rules or not items:
            return self.stats
        times = [s.item.published_at for s in items]
        # prefilled runs apply `ahead` items beyond the tick, not all of them: the alert query scans the
        # windows ending after the tick, so a table full of future windows would make every tick slow
        ahead = PREFILL_AHEAD if self.prefill else 0
        done = applied = 0
        tick = next_tick(times[0], self.step)
        with tqdm(total=len(items), desc="windows+alerts", unit="item", disable=not progress,
                  mininterval=1.0) as bar:
            while True:
                upto = bisect.bisect_left(times, tick)
                if applied < upto:
                    end = min(len(items), upto + ahead)
                    self._apply(items, applied, end)
                    applied = end
                bar.update(upto - done)
                done = upto
                self._evaluate(tick - INSTANT)
                following = self._following(tick, times, done)
                if following is None:
                    return self.stats
                tick = following

    def _following(self, tick: datetime, times: list[datetime], done: int) -> datetime | None:
        """Window metrics change only when items are applied; windows leaving view can only clear alerts.
        So with no alert pending or firing, the next tick that can change anything is the next item's."""
        if self.active:
            return tick + self.step
        return next_tick(times[done], self.step) if done < len(times) else None

    def _apply(self, items: Sequence[ScoredItem], start: int, end: int) -> None:
        for lo in range(start, end, self.max_batch):
            hi = min(end, lo + self.max_batch)
            self.aggregator.apply([Delivery(0, i, items[i]) for i in range(lo, hi)])
            self.stats.batches += 1

    def _evaluate(self, now: datetime) -> None:
        for change in self.evaluator.evaluate(now):
            ident = (change["rule"], change["key"])
            if change["state"] in ("pending", "firing"):
                self.active.add(ident)
            else:
                self.active.discard(ident)
            self.stats.transitions += 1
        self.stats.ticks += 1


def fired_alerts(store: Store) -> pd.DataFrame:
    """Alerts that fired (pending ones that never fired woke nobody), in firing order."""
    with store.engine.connect() as conn:
        rows = list_alerts(conn, states=("firing", "resolved"))
    frame = pd.DataFrame([{k: r.get(k) for k in ALERT_COLUMNS} for r in rows], columns=ALERT_COLUMNS)
    frame = frame[frame["fired_at"].notna()]
    for col in ("started_at", "fired_at", "resolved_at"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame.sort_values(["fired_at", "rule", "key"], kind="stable").reset_index(drop=True)
