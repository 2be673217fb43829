"""Replay scored items through the live windows and alert code in event time, on a throw-away store.

The clock is the feed's own time, stepped in multiples of `step` (UTC-epoch aligned, like the windows). The
real `AlertEvaluator` runs at `t - 1 microsecond` for each tick `t` on complete windows only, and the ticks
are chosen by monitor/core/ticks.py, the rule stream-mode alerting follows live: every step while an alert
is pending or firing, otherwise the tick at the end of the next window that holds an item. At a tick only
the rules whose decisions can change are evaluated (`EventTimeReplay._due`): the same transitions, in a
fraction of the queries. Two equivalent ways to feed the real `WindowAggregator`:

- interleaved: before evaluating at `t - 1 us`, apply every item with event time before `t`;
- prefilled (the default, faster): apply items ahead of the clock, `PREFILL_AHEAD` at a time. Rules see
  only windows that ended by the tick, which hold no item from `t` on, and a window's metrics and z-score
  depend only on itself and earlier windows, so the rules see the same windows as interleaved. It costs one
  aggregate transaction per `PREFILL_AHEAD` items instead of one per non-empty step (tests/test_backtest.py
  checks both agree).

Items carry the lateness live classify would decide for them (monitor/core/lateness.py); late ones are not
counted in the windows, as live. Before each evaluation the story pass (monitor/windows/stories.py) settles
the stories of every item before the tick, in event-time order, as live does behind stream time, so rules
that count stories see the same story columns as live.
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
from monitor.clock import INSTANT, to_micros
from monitor.config import StorySettings, WindowSettings
from monitor.core.ticks import following_tick, next_window_end
from monitor.records import ScoredItem
from monitor.store import Store
from monitor.store.alerts import list_alerts
from monitor.windows import parse_spec
from monitor.windows.aggregator import Delivery, WindowAggregator
from monitor.windows.spec import WindowSpec

TOPIC = "backtest.scored"
ALERT_COLUMNS = ["id", "rule", "severity", "key", "state", "started_at", "fired_at", "resolved_at", "summary"]
_ALL = 2**53  # settle every applied item (microseconds: year ~2255, within what pandas can convert)
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


class EventTimeReplay:
    """Feeds items to the aggregator and evaluates the rules tick by tick."""

    def __init__(self, store: Store, cfg: WindowSettings, rules: RuleSet, step: timedelta,
                 prefill: bool = True, stories: StorySettings | None = None) -> None:
        """`prefill=False` applies items tick by tick (the slow reference path, for tests)."""
        self.store = store
        self.aggregator = WindowAggregator(store, rule_windows(cfg, rules), TOPIC, stories)
        self.evaluator = AlertEvaluator(store, rules, complete_only=True)
        self.specs = [parse_spec(size) for size in dict.fromkeys(rule.window for rule in rules.rules)]
        self.rule_specs = {rule.name: parse_spec(rule.window) for rule in rules.rules}
        self.step, self.max_batch, self.prefill = step, cfg.max_batch, prefill
        self.active: set[tuple[str, str]] = set()
        self.pending: set[tuple[str, str]] = set()
        self.seen_view: dict[str, tuple[int, int]] = {}  # rule -> the windows it last saw (see _due)
        self.stats = StreamStats(mode="prefilled" if prefill else "interleaved")

    def run(self, items: Sequence[ScoredItem], progress: bool = True) -> StreamStats:
        """Apply `items` (in event-time order) and evaluate the rules at every tick that can change them."""
        if not self.evaluator.rules.rules or not items:
            return self.stats
        times = [s.item.published_at for s in items]
        accepted = [to_micros(s.item.published_at) for s in items if not s.late]  # what the windows will hold
        # prefilled runs apply `ahead` items beyond the tick, not all of them: the alert query scans the
        # windows ending after the tick, so a table full of future windows would make every tick slow
        ahead = PREFILL_AHEAD if self.prefill else 0
        done = applied = 0
        tick = following_tick(None, self.step, False, next_window_end(None, self.specs, accepted))
        with tqdm(total=len(items), desc="windows+alerts", unit="item", disable=not progress,
                  mininterval=1.0) as bar:
            while tick is not None:
                upto = bisect.bisect_left(times, tick)
                if applied < upto:
                    end = min(len(items), upto + ahead)
                    self._apply(items, applied, end)
                    applied = end
                    # stories of everything before the first item not applied yet: a later item is never
                    # earlier, so this is the (event time, id) order live settles in, in a few large passes
                    self._settle(to_micros(times[end]) if end < len(items) else None)
                bar.update(upto - done)
                done = upto
                self._evaluate(tick - INSTANT)
                tick = following_tick(tick, self.step, bool(self.active), next_window_end(tick, self.specs, accepted))
        return self.stats

    def _apply(self, items: Sequence[ScoredItem], start: int, end: int) -> None:
        for lo in range(start, end, self.max_batch):
            hi = min(end, lo + self.max_batch)
            self.aggregator.apply([Delivery(items[i].src_partition, items[i].src_offset, items[i])
                                   for i in range(lo, hi)])
            self.stats.batches += 1

    def _settle(self, until_us: int | None) -> None:
        """Stories of the items before `until_us` (None: all): all of them are applied, as behind live stream
        time. Every tick evaluated later is at or before `until_us`, so its windows' story counts are final."""
        with self.store.engine.begin() as conn:
            self.aggregator.settle_stories(conn, _ALL if until_us is None else until_us)

    def _due(self, now: datetime) -> list[str]:
        """The rules whose evaluation at `now` can change an alert's state: those whose windows in view are
        not the ones they saw at their last evaluation, and those with a pending alert (its `for` runs with
        time). For any other rule the same complete windows (final by now: every item before the tick is
        applied and settled) give the same decisions: no new alert, and a firing one keeps firing. So the
        transitions are those of evaluating every rule at every tick; what is not replayed is a firing alert's
        repeat notifications and `updated_at` between its window changes, which a backtest does not report.
        At a 5-minute step a 1-day rule's windows change at 2 ticks of 288."""
        busy = {rule for rule, _ in self.pending}
        due = []
        for name, spec in self.rule_specs.items():
            view = _view(to_micros(now), spec)
            if name in busy or self.seen_view.get(name) != view:
                self.seen_view[name] = view
                due.append(name)
        return due

    def _evaluate(self, now: datetime) -> None:
        due = self._due(now)
        self.stats.ticks += 1
        if not due:
            return
        for change in self.evaluator.evaluate(now, due):
            ident = (change["rule"], change["key"])
            if change["state"] in ("pending", "firing"):
                self.active.add(ident)
            else:
                self.active.discard(ident)
            if change["state"] == "pending":
                self.pending.add(ident)
            else:
                self.pending.discard(ident)
            self.stats.transitions += 1


def _view(now_us: int, spec: WindowSpec) -> tuple[int, int]:
    """The first and last window end a rule evaluated at `now_us` looks at: complete windows (end <= now + 1
    us) that ended less than one size before now (monitor/store/windows.py `windows_in_view`)."""
    hop = spec.hop_us
    last = (now_us + 1) // hop * hop
    first = -((now_us - spec.size_us) // -hop) * hop  # the first multiple of hop above now - size
    if first == now_us - spec.size_us:
        first += hop
    return first, last

def fired_alerts(store: Store) -> pd.DataFrame:
    """Alerts that fired (pending ones that never fired woke nobody), in firing order."""
    with store.engine.connect() as conn:
        rows = list_alerts(conn, states=("firing", "resolved"))
    frame = pd.DataFrame([{k: r.get(k) for k in ALERT_COLUMNS} for r in rows], columns=ALERT_COLUMNS)
    frame = frame[frame["fired_at"].notna()]
    for col in ("started_at", "fired_at", "resolved_at"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame.sort_values(["fired_at", "rule", "key"], kind="stable").reset_index(drop=True)
